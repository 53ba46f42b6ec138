#pragma once
// What a writer sends PostgreSQL for one stored event, rendered from the
// typed event (decode/audit_event.h) without any connection, so that the
// micro-benchmark and unit tests run the same code: a row of
// `COPY audit.event_ids` and a row of `COPY audit.events`. The column lists
// and the renderers live together here, so they cannot drift apart;
// store/migrations define the columns themselves.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "decode/audit_event.h"
#include "decode/canonical.h"

namespace trail {

inline constexpr const char* kEventsCopy =
    "COPY audit.events (sequence, tenant_id, occurred_at, ce_source, ce_id, ce_type, ce_subject, ingest_mode, "
    "action, category, severity, actor_type, actor_id, actor_display_name, actor_ip, "
    "actor_user_agent, actor_session_id, resource_type, resource_id, related_resources, "
    "changes, outcome_status, outcome_error_code, description, metadata, correlation_id, "
    "request_id, source_service, trace_id, extra, prev_hash, hash) FROM STDIN";

inline constexpr const char* kEventIdsCopy =
    "COPY audit.event_ids (tenant_id, id_digest, ce_source, ce_id, sequence, occurred_at) FROM STDIN";

// The key of an event's identity within its tenant: the first 16 bytes of
// SHA-256 over "<byte length of source>:<source><id>", as
// audit.identity_digest() computes it in SQL (store/migrations/0003).
using identity_digest_t = std::array<uint8_t, 16>;
identity_digest_t identity_digest(std::string_view source, std::string_view id);
// 32 lowercase hex digits: a uuid as PostgreSQL reads it.
std::string digest_hex(const identity_digest_t& d);

// Appends the event's row to `events_copy` (kEventsCopy's columns, with its
// chain links `prev` and `hash`) and its identity row to `ids_copy`
// (kEventIdsCopy's columns).
// `extra_json`: the `extra` column's JSON when the caller has it already (the
// canonical text hashing wrote); rendered here when empty.
void render_rows(const audit_event& e, int64_t sequence, const chain_hash& prev, const chain_hash& hash,
                 std::string& events_copy, std::string& ids_copy, std::string_view extra_json = {});

}  // namespace trail
