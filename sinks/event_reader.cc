#include "sinks/event_reader.h"

#include <cstdlib>
#include <iterator>
#include <string_view>

#include "decode/event_json.h"

namespace trail {

#define TRAIL_STORED_EVENT_COLUMNS                                                                                \
  "e.sequence, (extract(epoch FROM e.recorded_at) * 1000000)::bigint, "                                           \
  "(extract(epoch FROM e.occurred_at) * 1000000)::bigint, "                                                       \
  "to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), e.ingest_mode, "                 \
  "e.tenant_id, e.ce_source, e.ce_id, e.ce_type, e.ce_subject, e.action, e.category, e.severity, e.actor_type, "  \
  "e.actor_id, e.actor_display_name, host(e.actor_ip), e.actor_user_agent, e.actor_session_id, e.resource_type, " \
  "e.resource_id, e.related_resources, e.changes, e.outcome_status, e.outcome_error_code, e.description, "         \
  "e.metadata, e.correlation_id, e.request_id, e.source_service, e.trace_id, e.extra"

const char* const kStoredEventColumns = TRAIL_STORED_EVENT_COLUMNS;
const char* const kStoredEventWithLinksColumns =
    TRAIL_STORED_EVENT_COLUMNS ", encode(e.prev_hash, 'hex'), encode(e.hash, 'hex')";

bool read_stored_event(const PGresult* res, int row, stored_event& out, std::string* error) {
  using F = event_field;
  // The text columns after the fixed ones, in kStoredEventColumns' order.
  static constexpr F kText[] = {F::tenant_id,         F::ce_source,          F::ce_id,           F::ce_type,
                                F::ce_subject,        F::action,             F::category,        F::severity,
                                F::actor_type,        F::actor_id,           F::actor_display_name, F::actor_ip,
                                F::actor_user_agent,  F::actor_session_id,   F::resource_type,   F::resource_id,
                                F::related_resources, F::changes,            F::outcome_status,  F::outcome_error_code,
                                F::description,       F::metadata,           F::correlation_id,  F::request_id,
                                F::source_service,    F::trace_id};
  constexpr int kFirstText = 5;
  constexpr int kColumns = kFirstText + static_cast<int>(std::size(kText)) + 1;
  const bool links = PQnfields(res) == kColumns + 2;
  if (PQnfields(res) != kColumns && !links) {
    if (error) *error = "unexpected column count";
    return false;
  }
  auto text = [&](int col) { return std::string_view(PQgetvalue(res, row, col), static_cast<size_t>(PQgetlength(res, row, col))); };
  out = stored_event();
  out.sequence = std::strtoll(PQgetvalue(res, row, 0), nullptr, 10);
  out.recorded_at_us = std::strtoll(PQgetvalue(res, row, 1), nullptr, 10);
  audit_event& e = out.event;
  e.occurred_at_us = std::strtoll(PQgetvalue(res, row, 2), nullptr, 10);
  e.set(F::occurred_at, text(3));
  const std::string_view mode = text(4);
  e.mode = mode == "binary" ? ingest_mode::binary
           : mode == "batch" ? ingest_mode::batch
           : mode == "bare"  ? ingest_mode::bare
                             : ingest_mode::structured;
  for (size_t i = 0; i < std::size(kText); ++i) {
    const int col = kFirstText + static_cast<int>(i);
    if (!PQgetisnull(res, row, col)) e.set(kText[i], text(col));
  }
  const int extra = kFirstText + static_cast<int>(std::size(kText));
  if (!PQgetisnull(res, row, extra) && !parse_extra(text(extra), e)) {
    if (error) *error = "the extra column is not what Trail writes";
    return false;
  }
  if (links) {
    // A link that is not 32 bytes (someone else wrote the row) reads as zeros:
    // verification then names the row.
    out.has_links = true;
    if (auto p = chain_hash_from_hex(text(kColumns))) out.prev_hash = *p;
    if (auto h = chain_hash_from_hex(text(kColumns + 1))) out.hash = *h;
  }
  return true;
}

}  // namespace trail
