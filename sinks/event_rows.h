#pragma once
// What a writer sends PostgreSQL for one stored event, rendered without any
// connection so that the micro-benchmark and unit tests run the same code:
// a row of `COPY audit.event_ids` and a row of `COPY audit.events` (the
// validator's rendered tail behind the sequence the writer assigned).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/record.h"

namespace trail {

inline constexpr const char* kEventIdsCopy =
    "COPY audit.event_ids (tenant_id, id_digest, ce_source, ce_id, sequence, occurred_at) FROM STDIN";

// The key of an event's identity within its tenant: the first 16 bytes of
// SHA-256 over "<byte length of source>:<source><id>", as
// audit.identity_digest() computes it in SQL (store/migrations/0003).
using identity_digest_t = std::array<uint8_t, 16>;
identity_digest_t identity_digest(std::string_view source, std::string_view id);
// 32 lowercase hex digits: a uuid as PostgreSQL reads it.
std::string digest_hex(const identity_digest_t& d);

// Appends the record's two rows to `events_copy` and `ids_copy`.
void render_rows(const audit_record& r, int64_t sequence, std::string& events_copy, std::string& ids_copy);

}  // namespace trail
