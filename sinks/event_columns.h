#pragma once
// The column order of every COPY into audit.events. The validator renders rows
// in exactly this order (actors/event_decoder.cc, render_copy_tail) and the
// writer prepends `sequence`; store/migrations define the columns themselves.

namespace trail {

inline constexpr const char* kEventCopyColumns =
    "sequence, tenant_id, occurred_at, ce_source, ce_id, ce_type, ce_subject, ingest_mode, "
    "action, category, severity, actor_type, actor_id, actor_display_name, actor_ip, "
    "actor_user_agent, actor_session_id, resource_type, resource_id, related_resources, "
    "changes, outcome_status, outcome_error_code, description, metadata, correlation_id, "
    "request_id, source_service, trace_id, extra";

}  // namespace trail
