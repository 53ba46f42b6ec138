#include "api/export_format.h"

#include "common/time.h"
#include "decode/event_json.h"

namespace trail {
namespace {

using F = event_field;

// The columns after sequence, occurred_at and recorded_at, in order.
constexpr std::pair<const char*, F> kColumns[] = {
    {"tenant_id", F::tenant_id},
    {"ce_source", F::ce_source},
    {"ce_id", F::ce_id},
    {"ce_type", F::ce_type},
    {"ce_subject", F::ce_subject},
    {"action", F::action},
    {"category", F::category},
    {"severity", F::severity},
    {"actor_type", F::actor_type},
    {"actor_id", F::actor_id},
    {"actor_display_name", F::actor_display_name},
    {"actor_ip", F::actor_ip},
    {"actor_user_agent", F::actor_user_agent},
    {"actor_session_id", F::actor_session_id},
    {"resource_type", F::resource_type},
    {"resource_id", F::resource_id},
    {"related_resources", F::related_resources},
    {"changes", F::changes},
    {"outcome_status", F::outcome_status},
    {"outcome_error_code", F::outcome_error_code},
    {"description", F::description},
    {"metadata", F::metadata},
    {"correlation_id", F::correlation_id},
    {"request_id", F::request_id},
    {"source_service", F::source_service},
    {"trace_id", F::trace_id},
};

void field(std::string_view v, std::string& out) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

const std::string& csv_header() {
  static const std::string header = [] {
    std::string h = "sequence,occurred_at,recorded_at,ingest_mode";
    for (const auto& [name, f] : kColumns) h += std::string(",") + name;
    return h + ",extra\r\n";
  }();
  return header;
}

void append_csv_row(const stored_event& ev, std::string& out) {
  out += std::to_string(ev.sequence);
  out.push_back(',');
  out.append(ev.event.get(F::occurred_at));
  out.push_back(',');
  out += format_rfc3339_us(ev.recorded_at_us);
  out.push_back(',');
  out += to_string(ev.event.mode);
  for (const auto& [name, f] : kColumns) {
    out.push_back(',');
    field(ev.event.get(f), out);
  }
  out.push_back(',');
  if (has_extra(ev.event)) {
    std::string extra;
    render_extra(ev.event, extra);
    field(extra, out);
  }
  out += "\r\n";
}

void append_ndjson_row(const stored_event& ev, std::string& out) {
  render_committed_event(ev.event, padded_sequence(ev.sequence), format_rfc3339_us(ev.recorded_at_us), out);
  out.push_back('\n');
}

}  // namespace trail
