#pragma once
// What a writer sends PostgreSQL for one stored event, rendered without any
// connection so that the micro-benchmark and unit tests run the same code:
// a row of `COPY audit.event_ids` and a row of `COPY audit.events` (the
// validator's rendered tail behind the sequence the writer assigned).

#include <cstdint>
#include <string>

#include "common/record.h"

namespace trail {

inline constexpr const char* kEventIdsCopy =
    "COPY audit.event_ids (tenant_id, ce_source, ce_id, sequence, occurred_at) FROM STDIN";

// Appends the record's two rows to `events_copy` and `ids_copy`.
void render_rows(const audit_record& r, int64_t sequence, std::string& events_copy, std::string& ids_copy);

}  // namespace trail
