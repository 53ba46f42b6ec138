#pragma once
// Stored events read back as typed events (decode/audit_event.h), so that an
// event rendered from the table (the outbox keeper's republish; the query
// API) comes from the same codec as one rendered at ingest. JSON columns come
// back as PostgreSQL prints jsonb (keys sorted, a space after ':' and ','):
// the same values, not the same bytes as the original publish.

#include <libpq-fe.h>

#include <cstdint>
#include <string>

#include "decode/audit_event.h"
#include "decode/canonical.h"

namespace trail {

// The select list, for `SELECT <kStoredEventColumns> FROM audit.events e …`.
extern const char* const kStoredEventColumns;
// kStoredEventColumns followed by the row's two chain links.
extern const char* const kStoredEventWithLinksColumns;

struct stored_event {
  audit_event event;
  int64_t sequence = 0;
  int64_t recorded_at_us = 0;
  bool has_links = false;  // read with kStoredEventWithLinksColumns
  chain_hash prev_hash{}, hash{};
};

// Row `row` of a result selected with kStoredEventColumns. False (with
// `error`) when a column cannot be read back.
bool read_stored_event(const PGresult* res, int row, stored_event& out, std::string* error);

}  // namespace trail
