#include "api/export_format.h"

#include "decode/canonical.h"
#include "integrity/verify.h"

#include "common/time.h"
#include "decode/event_json.h"

namespace trail {
namespace {

constexpr const char* kUtc = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

// A text cell a spreadsheet would take for a formula (one beginning with
// =, +, -, @, a tab or a CR) gets a leading apostrophe, so that opening an
// export never runs what an event's author wrote. Only the CSV rendering
// changes: the stored value, the API and the NDJSON and ledger exports keep
// it exactly.
std::string inert(const char* column) {
  const std::string c = std::string("e.") + column;
  return "CASE WHEN left(" + c + ", 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN '''' || " + c + " ELSE " + c + " END";
}

}  // namespace

const std::string& csv_select_list() {
  static const std::string list = [] {
    auto utc = [](const char* column) { return std::string("to_char(e.") + column + " AT TIME ZONE 'UTC', " + kUtc + ")"; };
    const std::pair<std::string, std::string> columns[] = {
        {"sequence", "e.sequence"},
        {"occurred_at", utc("occurred_at")},
        {"recorded_at", utc("recorded_at")},
        {"ingest_mode", "e.ingest_mode"},
        {"tenant_id", "e.tenant_id"},
        {"ce_source", inert("ce_source")},
        {"ce_id", inert("ce_id")},
        {"ce_type", inert("ce_type")},
        {"ce_subject", inert("ce_subject")},
        {"action", inert("action")},
        {"category", inert("category")},
        {"severity", inert("severity")},
        {"actor_type", inert("actor_type")},
        {"actor_id", inert("actor_id")},
        {"actor_display_name", inert("actor_display_name")},
        {"actor_ip", "host(e.actor_ip)"},
        {"actor_user_agent", inert("actor_user_agent")},
        {"actor_session_id", inert("actor_session_id")},
        {"resource_type", inert("resource_type")},
        {"resource_id", inert("resource_id")},
        {"related_resources", "e.related_resources"},
        {"changes", "e.changes"},
        {"outcome_status", inert("outcome_status")},
        {"outcome_error_code", inert("outcome_error_code")},
        {"description", inert("description")},
        {"metadata", "e.metadata"},
        {"correlation_id", inert("correlation_id")},
        {"request_id", inert("request_id")},
        {"source_service", inert("source_service")},
        {"trace_id", inert("trace_id")},
        {"extra", "e.extra"},
    };
    std::string out;
    for (const auto& [name, expr] : columns) out += (out.empty() ? "" : ", ") + expr + " AS " + name;
    return out;
  }();
  return list;
}

void crlf_records::convert(std::string_view in, std::string& out) {
  for (char c : in) {
    if (c == '"') quoted_ = !quoted_;  // a doubled quote toggles twice
    if (c == '\n' && !quoted_) {
      out += "\r\n";
      ++records_;
      continue;
    }
    out.push_back(c);
  }
}

bool append_ledger_row(const stored_event& ev, std::string& out) {
  thread_local std::string canonical;
  canonical.clear();
  if (!append_canonical_event(ev.event, ev.sequence, ev.recorded_at_us, canonical)) return false;
  integrity::append_ledger_line(canonical, ev.prev_hash, ev.hash, out);
  out.push_back('\n');
  return true;
}

void append_ndjson_row(const stored_event& ev, std::string& out) {
  render_committed_event(ev.event, padded_sequence(ev.sequence), format_rfc3339_us(ev.recorded_at_us), out);
  out.push_back('\n');
}

}  // namespace trail
