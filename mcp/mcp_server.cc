#include "mcp/mcp_server.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <utility>

#include "common/time.h"
#include "common/uuid.h"
#include "decode/json_limits.h"

namespace trail::mcp {
namespace {

using rapidjson::Document;
using rapidjson::Value;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

// A string member's value is `s` (rapidjson's own operator== is avoided:
// under C++20's rewritten comparisons some of its overloads recurse).
bool is(const Value& v, std::string_view s) {
  return v.IsString() && std::string_view(v.GetString(), v.GetStringLength()) == s;
}

// A message from a client: tool arguments are small and flat.
constexpr json_bounds kMessageBounds{32, 100000};

// JSON-RPC's codes, and MCP's for an unknown resource.
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kResourceNotFound = -32002;
// Implementation-defined (the -32000…-32099 range): the API refused the caller.
constexpr int kForbidden = -32001;

const char* const kInstructions =
    "Trail is an immutable, tenant-isolated audit log. Use query_events to find who did what (filters: actor_id, "
    "actions, resource_type/resource_id, severities, a time range such as last='24h' or from/to in RFC 3339), "
    "get_event_diff for the before/after of one event, verify_chain to check a tenant's hash chain against its signed "
    "checkpoints, export_events for a bounded NDJSON or CSV export, and record_event to write an event (it returns "
    "after the event is committed, with its sequence). Every read is itself recorded in the tenant's audit trail. "
    "Resources: audit://tenants/{tenant}/events/{sequence}, audit://tenants/{tenant}/timeline and "
    "audit://tenants/{tenant}/actors/{actor_id}/activity.";

// ---- tool definitions (JSON Schema; checked by the SDK client's validator) ----

const char* const kTenantProp =
    R"("tenant_id":{"type":"string","description":"The tenant. Optional when the credentials name one tenant only."})";

const char* const kFilterProps =
    R"("actor_id":{"type":"string","description":"Who acted (actor.id)."},)"
    R"("actor_type":{"type":"string","description":"user, service, system or api_key (or ACTOR_TYPE_…)."},)"
    R"("actions":{"description":"One action or a list (any of them), e.g. billing.plan.changed.","anyOf":[{"type":"string"},{"type":"array","items":{"type":"string"}}]},)"
    R"("categories":{"description":"One category or a list, e.g. CATEGORY_DATA_ACCESS or data_access.","anyOf":[{"type":"string"},{"type":"array","items":{"type":"string"}}]},)"
    R"("severities":{"description":"One severity or a list: debug, info, notice, warning, error, critical, security.","anyOf":[{"type":"string"},{"type":"array","items":{"type":"string"}}]},)"
    R"("resource_type":{"type":"string","description":"The primary resource's type."},)"
    R"("resource_id":{"type":"string","description":"The primary resource's id."},)"
    R"("source_service":{"type":"string"},)"
    R"("correlation_id":{"type":"string"},)"
    R"("trace_id":{"type":"string"},)"
    R"("outcome":{"type":"string","description":"SUCCESS or FAILURE."},)"
    R"("last":{"type":"string","description":"A range ending now: 90s, 15m, 24h, 7d (last_24h works too). Not with from."},)"
    R"("from":{"type":"string","description":"occurred_at at or after this RFC 3339 time."},)"
    R"("to":{"type":"string","description":"occurred_at before this RFC 3339 time."})";

const char* const kEventList =
    R"({"type":"array","items":{"type":"object","description":"A committed CloudEvent: its data is the audit payload; sequence is the tenant's position."}})";

std::string tools_json() {
  std::string t = "[";
  // record_event
  t += R"({"name":"record_event","title":"Record an audit event",)"
       R"("description":"Writes one audit event synchronously: it is validated like any published event and the call returns once it is committed, with its sequence. Give an idempotency_key to make a retry safe (the same key returns the stored event).",)"
       R"("inputSchema":{"type":"object","properties":{)";
  t += kTenantProp;
  t += R"(,"action":{"type":"string","description":"What was done, e.g. billing.plan.changed."},)"
       R"("actor":{"type":"object","description":"Who did it: type (user, service, system, api_key) and id; optional display_name, ip, user_agent, session_id.","properties":{"type":{"type":"string"},"id":{"type":"string"}},"required":["type","id"]},)"
       R"("primary_resource":{"type":"object","description":"What it was done to: type and id.","properties":{"type":{"type":"string"},"id":{"type":"string"}},"required":["type","id"]},)"
       R"("category":{"type":"string"},"severity":{"type":"string"},)"
       R"("occurred_at":{"type":"string","description":"RFC 3339; default now."},)"
       R"("outcome":{"type":"object","description":"status SUCCESS or FAILURE, optional error_code."},)"
       R"("changes":{"type":"object","description":"old_value and new_value (objects), optional changed_fields."},)"
       R"("description":{"type":"string"},"metadata":{"type":"object"},"related_resources":{"type":"array","items":{"type":"object"}},)"
       R"("source_service":{"type":"string"},"correlation_id":{"type":"string"},"request_id":{"type":"string"},"trace_id":{"type":"string"},)"
       R"("idempotency_key":{"type":"string","description":"The event's id; a retry with the same key does not write twice."}},)"
       R"("required":["action","actor","primary_resource"]},)"
       R"("outputSchema":{"type":"object","properties":{"tenant_id":{"type":"string"},"sequence":{"type":"integer"},"ce_source":{"type":"string"},"ce_id":{"type":"string"},"occurred_at":{"type":"string"},"already_stored":{"type":"boolean"}},"required":["tenant_id","sequence","ce_source","ce_id","occurred_at","already_stored"]},)"
       R"("annotations":{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false}},)";
  // query_events
  t += R"({"name":"query_events","title":"Query audit events",)"
       R"("description":"Lists a tenant's events, newest first, with the query API's filters. Returns at most page_size events and a cursor for the next page (null on the last page).",)"
       R"("inputSchema":{"type":"object","properties":{)";
  t += kTenantProp;
  t += ",";
  t += kFilterProps;
  t += R"(,"page_size":{"type":"integer","minimum":1,"maximum":1000,"description":"Default 50."},)"
       R"("cursor":{"type":"string","description":"next_cursor of the previous page, with the same filters."}}},)"
       R"("outputSchema":{"type":"object","properties":{"tenant_id":{"type":"string"},"count":{"type":"integer"},"events":)";
  t += kEventList;
  t += R"(,"next_cursor":{"type":["string","null"]}},"required":["tenant_id","count","events","next_cursor"]},)"
       R"("annotations":{"readOnlyHint":true,"openWorldHint":false}},)";
  // get_event_diff
  t += R"({"name":"get_event_diff","title":"Before and after of one event",)"
       R"("description":"The structured change one event recorded: old_value, new_value and, field by field (JSON pointers), what was removed, added or changed.",)"
       R"("inputSchema":{"type":"object","properties":{)";
  t += kTenantProp;
  t += R"(,"sequence":{"type":"integer","minimum":1,"description":"The event's sequence in its tenant."}},"required":["sequence"]},)"
       R"("outputSchema":{"type":"object","properties":{"tenant_id":{"type":"string"},"sequence":{"type":"integer"},"has_changes":{"type":"boolean"},)"
       R"("old_value":{},"new_value":{},"changed_fields":{"type":"array","items":{"type":"string"}},)"
       R"("fields":{"type":"array","items":{"type":"object","properties":{"field":{"type":"string"},"old":{},"new":{}},"required":["field"]}}},)"
       R"("required":["tenant_id","sequence","has_changes","fields"]},)"
       R"("annotations":{"readOnlyHint":true,"openWorldHint":false}},)";
  // verify_chain
  t += R"({"name":"verify_chain","title":"Verify a tenant's hash chain",)"
       R"("description":"Recomputes the tenant's hash chain over a range of sequences (default: all of it) and checks it against the signed checkpoints (and, with against_broker, the broker's copies). verified=false names the first break.",)"
       R"("inputSchema":{"type":"object","properties":{)";
  t += kTenantProp;
  t += R"(,"from_sequence":{"type":"integer","minimum":1},"to_sequence":{"type":"integer","minimum":1},)"
       R"("against_broker":{"type":"boolean","description":"Also compare with the checkpoints the broker holds."}}},)"
       R"("outputSchema":{"type":"object","properties":{"tenant":{"type":"string"},"verified":{"type":"boolean"},"from_sequence":{"type":"integer"},"to_sequence":{"type":"integer"},)"
       R"("events_checked":{"type":"integer"},"checkpoints_checked":{"type":"integer"},"first_break":{}},"required":["tenant","verified"]},)"
       R"("annotations":{"readOnlyHint":true,"openWorldHint":false}},)";
  // export_events
  t += R"({"name":"export_events","title":"Export audit events",)"
       R"("description":"A bounded export (oldest first) of the events matching the filters, as NDJSON or CSV, returned as a resource link to read with resources/read. A relative range (last) is fixed to absolute times when the export is made.",)"
       R"("inputSchema":{"type":"object","properties":{)";
  t += kTenantProp;
  t += ",";
  t += kFilterProps;
  t += R"(,"format":{"type":"string","enum":["ndjson","csv"],"description":"Default ndjson."},)"
       R"("max_rows":{"type":"integer","minimum":1,"description":"At most this many events (default 1000)."}}},)"
       R"("outputSchema":{"type":"object","properties":{"uri":{"type":"string"},"format":{"type":"string"},"mime_type":{"type":"string"},"rows":{"type":"integer"},)"
       R"("truncated":{"type":"boolean"},"bytes":{"type":"integer"},"http_path":{"type":"string"}},"required":["uri","format","rows","truncated"]},)"
       R"("annotations":{"readOnlyHint":true,"openWorldHint":false}})";
  t += "]";
  return t;
}

const char* const kTemplates =
    R"([{"uriTemplate":"audit://tenants/{tenant}/events/{sequence}","name":"event","title":"One audit event",)"
    R"("description":"The committed CloudEvent at this sequence of the tenant.","mimeType":"application/json"},)"
    R"({"uriTemplate":"audit://tenants/{tenant}/timeline{?cursor}","name":"timeline","title":"A tenant's timeline",)"
    R"("description":"The tenant's events, newest first, a page at a time: next_uri reads the next page.","mimeType":"application/json"},)"
    R"({"uriTemplate":"audit://tenants/{tenant}/actors/{actor_id}/activity{?cursor}","name":"actor-activity","title":"What one actor did",)"
    R"("description":"The events of one actor in the tenant, newest first, a page at a time.","mimeType":"application/json"}])";

// ---- small helpers ----

void put(json_writer& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

// RFC 3986: everything but the unreserved characters is %-encoded.
std::string encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// RFC 3986 percent-decoding ('+' is a plus sign, not a space).
std::optional<std::string> decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      unsigned v = 0;
      const auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec != std::errc() || r.ptr != s.data() + i + 3) return std::nullopt;
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

using params = std::vector<std::pair<std::string, std::string>>;

std::string query_string(const params& p) {
  std::string q;
  for (const auto& [k, v] : p) q += (q.empty() ? "" : "&") + k + "=" + encode(v);
  return q;
}

// "90s", "15m", "24h", "7d" in seconds.
std::optional<int64_t> duration_s(std::string_view v) {
  if (v.size() < 2) return std::nullopt;
  int64_t n = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size() - 1, n);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() - 1 || n <= 0) return std::nullopt;
  switch (v.back()) {
    case 's': return n;
    case 'm': return n * 60;
    case 'h': return n * 3600;
    case 'd': return n * 86400;
    default: return std::nullopt;
  }
}

// The API's {"code","message"} as one line an agent can act on.
std::string api_problem(const api_response& r) {
  if (r.status == 0) return "the query API cannot be reached: " + r.error;
  Document d;
  d.Parse(r.body.c_str(), r.body.size());
  if (!d.HasParseError() && d.IsObject() && d.HasMember("message") && d["message"].IsString()) {
    std::string code = d.HasMember("code") && d["code"].IsString() ? d["code"].GetString() : "error";
    return std::string(d["message"].GetString()) + " (HTTP " + std::to_string(r.status) + ", " + code + ")";
  }
  return "the query API answered HTTP " + std::to_string(r.status);
}

// ---- a tool call's result ----

struct tool_result {
  bool error = false;
  std::string text;        // the first content block
  std::string structured;  // JSON object, or ""
  std::string link;        // a resource_link content block (JSON), or ""
};

tool_result failure(std::string message) {
  tool_result r;
  r.error = true;
  r.text = std::move(message);
  return r;
}

tool_result success(std::string structured) {
  tool_result r;
  r.text = structured;  // the serialized JSON, for clients that read only text
  r.structured = std::move(structured);
  return r;
}

// The arguments of one tool call: typed getters that record the first problem.
class arguments {
 public:
  arguments(const Value* obj, const caller& who) : obj_(obj), who_(who) {}
  const std::string& problem() const { return problem_; }
  bool ok() const { return problem_.empty(); }
  void fail(std::string p) {
    if (problem_.empty()) problem_ = std::move(p);
  }
  const Value* get(const char* key) const {
    if (!obj_ || !obj_->IsObject()) return nullptr;
    auto it = obj_->FindMember(key);
    return it == obj_->MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
  }
  std::optional<std::string> str(const char* key) {
    const Value* v = get(key);
    if (!v) return std::nullopt;
    if (!v->IsString()) return fail(std::string(key) + " must be a string"), std::nullopt;
    return std::string(v->GetString(), v->GetStringLength());
  }
  // A string or a list of strings, joined with commas (the API's list form).
  std::optional<std::string> list(const char* key) {
    const Value* v = get(key);
    if (!v) return std::nullopt;
    if (v->IsString()) return std::string(v->GetString(), v->GetStringLength());
    if (!v->IsArray()) return fail(std::string(key) + " must be a string or a list of strings"), std::nullopt;
    std::string joined;
    for (const auto& x : v->GetArray()) {
      if (!x.IsString()) return fail(std::string(key) + " must be a string or a list of strings"), std::nullopt;
      joined += (joined.empty() ? "" : ",") + std::string(x.GetString(), x.GetStringLength());
    }
    return joined;
  }
  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) {
    const Value* v = get(key);
    if (!v) return std::nullopt;
    if (!v->IsInt64() || v->GetInt64() < lo || v->GetInt64() > hi)
      return fail(std::string(key) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi)),
             std::nullopt;
    return v->GetInt64();
  }
  std::optional<bool> boolean(const char* key) {
    const Value* v = get(key);
    if (!v) return std::nullopt;
    if (!v->IsBool()) return fail(std::string(key) + " must be true or false"), std::nullopt;
    return v->GetBool();
  }
  std::string tenant() {
    if (auto t = str("tenant_id")) {
      if (t->empty()) fail("tenant_id must not be empty");
      return *t;
    }
    if (!who_.default_tenant.empty()) return who_.default_tenant;
    fail("tenant_id is required (these credentials do not name a single tenant)");
    return "";
  }
  // Unknown names are refused, so a misspelt filter is not silently ignored.
  void only(std::initializer_list<const char*> known) {
    if (!obj_ || !obj_->IsObject()) return;
    for (const auto& m : obj_->GetObject()) {
      bool found = false;
      for (const char* k : known) found = found || is(m.name, k);
      if (!found) fail("unknown argument " + std::string(m.name.GetString()) + " (see the tool's inputSchema)");
    }
  }

 private:
  const Value* obj_;
  const caller& who_;
  std::string problem_;
};

#define TRAIL_FILTER_NAMES                                                                                            \
  "actor_id", "actor_type", "actions", "categories", "severities", "resource_type", "resource_id", "source_service", \
      "correlation_id", "trace_id", "outcome", "last", "from", "to"

// The list filters as the API's parameters; `absolute` turns `last` into from/to.
params filter_params(arguments& a, bool absolute) {
  params p;
  for (const char* k : {"actor_id", "actor_type", "resource_type", "resource_id", "source_service", "correlation_id",
                        "trace_id", "outcome"})
    if (auto v = a.str(k)) p.emplace_back(k, *v);
  for (const char* k : {"actions", "categories", "severities"})
    if (auto v = a.list(k)) p.emplace_back(k, *v);
  auto from = a.str("from");
  auto to = a.str("to");
  if (auto last = a.str("last")) {
    std::string d = *last;
    if (d.rfind("last_", 0) == 0) d = d.substr(5);
    const auto secs = duration_s(d);
    if (!secs) a.fail("last must be a duration such as 90s, 15m, 24h or 7d (last_24h works too)");
    if (from) a.fail("give either last or from, not both");
    if (secs && absolute) {
      const int64_t now = now_unix_us();
      p.emplace_back("from", format_rfc3339_us(now - *secs * 1000000));
      if (!to) to = format_rfc3339_us(now);
    } else if (secs) {
      p.emplace_back("last", d);
    }
  }
  if (from) p.emplace_back("from", *from);
  if (to) p.emplace_back("to", *to);
  return p;
}

// Cuts an export's body after `limit` records (NDJSON lines, or CSV records
// after the header, quote-aware) or `max_bytes`, at a record boundary.
class record_cutter {
 public:
  record_cutter(bool csv, int64_t limit, size_t max_bytes) : csv_(csv), limit_(limit), max_bytes_(max_bytes) {}
  bool feed(std::string_view chunk) {
    for (char c : chunk) {
      if (records_ >= limit_ || out_.size() >= max_bytes_) {
        truncated_ = true;
        out_.resize(boundary_);
        return false;
      }
      out_ += c;
      if (csv_ && c == '"') quoted_ = !quoted_;
      if (c == '\n' && !quoted_) {
        boundary_ = out_.size();
        if (csv_ && !header_seen_) header_seen_ = true;
        else ++records_;
      }
    }
    return true;
  }
  // After the last chunk: a record without a final newline is dropped (never happens with Trail's exports).
  std::string& body() {
    out_.resize(boundary_);
    return out_;
  }
  int64_t records() const { return records_; }
  bool truncated() const { return truncated_; }

 private:
  bool csv_;
  int64_t limit_;
  size_t max_bytes_;
  std::string out_;
  size_t boundary_ = 0;
  int64_t records_ = 0;
  bool quoted_ = false, header_seen_ = false, truncated_ = false;
};

std::string tenant_path(const std::string& tenant) { return "/v1/tenants/" + encode(tenant); }

// ---- the resources' URIs ----

struct audit_uri {
  enum kind { event, timeline, activity, export_ } what = event;
  std::string tenant;
  int64_t sequence = 0;
  std::string actor_id;
  std::string format;
  params query;
};

std::optional<audit_uri> parse_uri(std::string_view uri) {
  constexpr std::string_view prefix = "audit://tenants/";
  if (uri.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = uri.substr(prefix.size());
  audit_uri u;
  const auto q = rest.find('?');
  if (q != std::string_view::npos) {
    std::string_view qs = rest.substr(q + 1);
    rest = rest.substr(0, q);
    while (!qs.empty()) {
      const auto amp = qs.find('&');
      const std::string_view pair = qs.substr(0, amp);
      const auto eq = pair.find('=');
      auto k = decode(pair.substr(0, eq));
      auto v = decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      if (!k || !v) return std::nullopt;
      if (!k->empty()) u.query.emplace_back(*k, *v);
      if (amp == std::string_view::npos) break;
      qs = qs.substr(amp + 1);
    }
  }
  std::vector<std::string> seg;
  while (true) {
    const auto slash = rest.find('/');
    auto s = decode(rest.substr(0, slash));
    if (!s || s->empty()) return std::nullopt;
    seg.push_back(*s);
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  u.tenant = seg[0];
  if (seg.size() == 3 && seg[1] == "events") {
    u.what = audit_uri::event;
    const auto r = std::from_chars(seg[2].data(), seg[2].data() + seg[2].size(), u.sequence);
    if (r.ec != std::errc() || r.ptr != seg[2].data() + seg[2].size() || u.sequence < 1) return std::nullopt;
  } else if (seg.size() == 2 && seg[1] == "timeline") {
    u.what = audit_uri::timeline;
  } else if (seg.size() == 4 && seg[1] == "actors" && seg[3] == "activity") {
    u.what = audit_uri::activity;
    u.actor_id = seg[2];
  } else if (seg.size() == 3 && seg[1] == "exports" && (seg[2] == "ndjson" || seg[2] == "csv")) {
    u.what = audit_uri::export_;
    u.format = seg[2];
  } else {
    return std::nullopt;
  }
  if (u.what != audit_uri::export_)
    for (const auto& [k, v] : u.query)
      if (k != "cursor") return std::nullopt;
  return u;
}

std::string timeline_uri(const audit_uri& u, const std::string& cursor) {
  std::string s = "audit://tenants/" + encode(u.tenant) +
                  (u.what == audit_uri::timeline ? "/timeline" : "/actors/" + encode(u.actor_id) + "/activity");
  if (!cursor.empty()) s += "?cursor=" + encode(cursor);
  return s;
}

// ---- responses ----

// {"jsonrpc":"2.0","id":…,"<member>":…}, the member written by `body`.
template <typename Body>
std::string envelope(const Value* id, const char* member, Body&& body) {
  rapidjson::StringBuffer sb;
  json_writer w(sb);
  w.StartObject();
  w.Key("jsonrpc");
  w.String("2.0");
  w.Key("id");
  if (id) id->Accept(w);
  else w.Null();
  w.Key(member);
  body(w);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

template <typename Body>
std::string reply(const Value& id, Body&& body) {
  return envelope(&id, "result", std::forward<Body>(body));
}

std::string reply_error(const Value* id, int code, const std::string& message, const std::string& data_json = "") {
  return envelope(id, "error", [&](json_writer& w) {
    w.StartObject();
    w.Key("code");
    w.Int(code);
    w.Key("message");
    put(w, message);
    if (!data_json.empty()) {
      w.Key("data");
      w.RawValue(data_json.data(), data_json.size(), rapidjson::kObjectType);
    }
    w.EndObject();
  });
}

struct resource_error {
  int code;
  std::string message;
};

}  // namespace

const std::vector<std::string>& protocol_versions() {
  static const std::vector<std::string> v = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return v;
}

bool supported_version(std::string_view v) {
  for (const auto& x : protocol_versions())
    if (x == v) return true;
  return false;
}

message_kind classify(std::string_view message) {
  Document d;
  if (!parse_json_bounded(d, message, kMessageBounds, nullptr)) return message_kind::invalid;
  if (d.IsArray()) return message_kind::batch;
  if (!d.IsObject()) return message_kind::invalid;
  const bool has_id = d.HasMember("id");
  if (d.HasMember("method") && d["method"].IsString()) {
    if (!has_id) return message_kind::notification;
    return is(d["method"], "initialize") ? message_kind::initialize : message_kind::request;
  }
  if (has_id && (d.HasMember("result") || d.HasMember("error"))) return message_kind::response;
  return message_kind::invalid;
}

std::string error_message(int code, const std::string& message) { return reply_error(nullptr, code, message); }

server::server(api_fn api, server_options opt) : api_(std::move(api)), opt_(std::move(opt)) {}

namespace {

// What one tools/call or resources/read needs besides its arguments.
struct call_context {
  const api_fn& api;
  const server_options& opt;
  const caller& who;
};

// Every call carries the caller's own credentials.
api_response call(const call_context& c, api_request r) {
  if (!c.who.authorization.empty()) r.headers.emplace_back("Authorization", c.who.authorization);
  return c.api(r);
}

api_response get(const call_context& c, const std::string& target) {
  api_request r;
  r.target = target;
  return call(c, std::move(r));
}

tool_result record_event(const call_context& c, arguments& a, const Value* args) {
  a.only({"tenant_id", "action", "actor", "primary_resource", "category", "severity", "occurred_at", "outcome", "changes",
          "description", "metadata", "related_resources", "source_service", "correlation_id", "request_id", "trace_id",
          "idempotency_key"});
  const std::string tenant = a.tenant();
  auto key = a.str("idempotency_key");
  for (const char* k : {"action", "actor", "primary_resource"})
    if (!a.get(k)) a.fail(std::string(k) + " is required");
  if (!a.ok()) return failure(a.problem());
  // The payload is the arguments as given, with the tenant and without the key:
  // the API validates it exactly as it validates a published event.
  rapidjson::StringBuffer sb;
  json_writer w(sb);
  w.StartObject();
  w.Key("tenant_id");
  put(w, tenant);
  for (const auto& m : args->GetObject()) {
    if (is(m.name, "tenant_id") || is(m.name, "idempotency_key")) continue;
    w.Key(m.name.GetString(), m.name.GetStringLength());
    m.value.Accept(w);
  }
  w.EndObject();
  // Without a key, one is made here, so that the answer to a call that timed
  // out can name the key that makes its retry safe.
  const std::string id = key ? *key : uuid_v7_random();
  api_request r;
  r.method = "POST";
  r.target = tenant_path(tenant) + "/events";
  r.body.assign(sb.GetString(), sb.GetSize());
  r.headers = {{"Content-Type", "application/json"}, {"Idempotency-Key", id}};
  const api_response res = call(c, std::move(r));
  if (res.status == 200 || res.status == 201) return success(res.body);
  if (res.status == 504)
    return failure("the event is stored by the broker but was not committed in time; call record_event again with "
                   "idempotency_key \"" + id + "\" to learn its sequence (it will not be written twice)");
  if (res.status == 503)
    return failure("Trail cannot take the event right now; retry with idempotency_key \"" + id + "\": " + api_problem(res));
  if (res.status == 400) return failure("the event was refused: " + api_problem(res));
  return failure(api_problem(res));
}

tool_result query_events(const call_context& c, arguments& a) {
  a.only({"tenant_id", TRAIL_FILTER_NAMES, "page_size", "cursor"});
  const std::string tenant = a.tenant();
  params p = filter_params(a, false);
  const int64_t page_size = a.integer("page_size", 1, 1000).value_or(50);
  auto cursor = a.str("cursor");
  if (!a.ok()) return failure(a.problem());
  p.emplace_back("page_size", std::to_string(page_size));
  if (cursor) p.emplace_back("page_token", *cursor);
  const api_response res = get(c, tenant_path(tenant) + "/events?" + query_string(p));
  if (res.status != 200) return failure(api_problem(res));
  Document d;
  d.Parse(res.body.c_str(), res.body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("events") || !d["events"].IsArray())
    return failure("the query API's answer was not a page of events");
  rapidjson::StringBuffer sb;
  json_writer w(sb);
  w.StartObject();
  w.Key("tenant_id");
  put(w, tenant);
  w.Key("count");
  w.Uint(d["events"].Size());
  w.Key("events");
  d["events"].Accept(w);
  w.Key("next_cursor");
  if (d.HasMember("next_page_token") && d["next_page_token"].IsString()) d["next_page_token"].Accept(w);
  else w.Null();
  w.EndObject();
  return success(std::string(sb.GetString(), sb.GetSize()));
}

tool_result get_event_diff(const call_context& c, arguments& a) {
  a.only({"tenant_id", "sequence"});
  const std::string tenant = a.tenant();
  const auto seq = a.integer("sequence", 1, INT64_MAX);
  if (!seq) a.fail("sequence is required (the event's sequence in its tenant)");
  if (!a.ok()) return failure(a.problem());
  const api_response res = get(c, tenant_path(tenant) + "/events/" + std::to_string(*seq) + "/diff");
  if (res.status == 404) return failure("no event " + std::to_string(*seq) + " in tenant " + tenant);
  if (res.status != 200) return failure(api_problem(res));
  return success(res.body);
}

tool_result verify_chain(const call_context& c, arguments& a) {
  a.only({"tenant_id", "from_sequence", "to_sequence", "against_broker"});
  const std::string tenant = a.tenant();
  params p;
  if (auto v = a.integer("from_sequence", 1, INT64_MAX)) p.emplace_back("from_sequence", std::to_string(*v));
  if (auto v = a.integer("to_sequence", 1, INT64_MAX)) p.emplace_back("to_sequence", std::to_string(*v));
  if (a.boolean("against_broker").value_or(false)) p.emplace_back("against", "broker");
  if (!a.ok()) return failure(a.problem());
  const api_response res = get(c, tenant_path(tenant) + "/verify" + (p.empty() ? "" : "?" + query_string(p)));
  if (res.status != 200) return failure(api_problem(res));
  return success(res.body);
}

// Reads one export through the sink, cut at `max_rows`.
api_response read_export(const call_context& c, const std::string& tenant, const std::string& format, const params& p,
                         record_cutter& cut) {
  api_request r;
  r.target = tenant_path(tenant) + "/export?format=" + format + (p.empty() ? "" : "&" + query_string(p));
  r.sink = [&cut](std::string_view chunk) { return cut.feed(chunk); };
  return call(c, std::move(r));
}

tool_result export_events(const call_context& c, arguments& a) {
  a.only({"tenant_id", TRAIL_FILTER_NAMES, "format", "max_rows"});
  const std::string tenant = a.tenant();
  params p = filter_params(a, true);
  const std::string format = a.str("format").value_or("ndjson");
  if (format != "ndjson" && format != "csv") a.fail("format must be ndjson or csv");
  const int64_t max_rows = a.integer("max_rows", 1, c.opt.export_max_rows).value_or(std::min<int64_t>(1000, c.opt.export_max_rows));
  if (!a.ok()) return failure(a.problem());
  // Without an end, the range ends now: reading the link later gives the same range.
  bool has_to = false;
  for (const auto& [k, v] : p) has_to = has_to || k == "to";
  if (!has_to) p.emplace_back("to", format_rfc3339_us(now_unix_us()));
  record_cutter cut(format == "csv", max_rows, c.opt.export_max_bytes);
  const api_response res = read_export(c, tenant, format, p, cut);
  if (res.status != 200) return failure(api_problem(res));
  params link_params = p;
  link_params.emplace_back("max_rows", std::to_string(max_rows));
  const std::string uri = "audit://tenants/" + encode(tenant) + "/exports/" + format + "?" + query_string(link_params);
  const std::string mime = format == "csv" ? "text/csv" : "application/x-ndjson";
  rapidjson::StringBuffer sb;
  json_writer w(sb);
  w.StartObject();
  w.Key("uri");
  put(w, uri);
  w.Key("format");
  put(w, format);
  w.Key("mime_type");
  put(w, mime);
  w.Key("rows");
  w.Int64(cut.records());
  w.Key("truncated");
  w.Bool(cut.truncated());
  w.Key("bytes");
  w.Uint64(cut.body().size());
  w.Key("http_path");
  put(w, tenant_path(tenant) + "/export?format=" + format + "&" + query_string(p));
  w.EndObject();
  tool_result r = success(std::string(sb.GetString(), sb.GetSize()));
  rapidjson::StringBuffer lb;
  json_writer l(lb);
  l.StartObject();
  l.Key("type");
  l.String("resource_link");
  l.Key("uri");
  put(l, uri);
  l.Key("name");
  put(l, "export-" + tenant + "." + format);
  l.Key("description");
  put(l, std::to_string(cut.records()) + " events of tenant " + tenant + (cut.truncated() ? " (cut at max_rows)" : ""));
  l.Key("mimeType");
  put(l, mime);
  l.Key("size");
  l.Uint64(cut.body().size());
  l.EndObject();
  r.link.assign(lb.GetString(), lb.GetSize());
  return r;
}

void write_tool_result(json_writer& w, const tool_result& r) {
  w.StartObject();
  w.Key("content");
  w.StartArray();
  w.StartObject();
  w.Key("type");
  w.String("text");
  w.Key("text");
  put(w, r.text);
  w.EndObject();
  if (!r.link.empty()) w.RawValue(r.link.data(), r.link.size(), rapidjson::kObjectType);
  w.EndArray();
  if (!r.structured.empty()) {
    w.Key("structuredContent");
    w.RawValue(r.structured.data(), r.structured.size(), rapidjson::kObjectType);
  }
  w.Key("isError");
  w.Bool(r.error);
  w.EndObject();
}

// resources/read: the contents, or an error.
std::optional<resource_error> read_resource(const call_context& c, const std::string& uri, std::string& mime, std::string& text) {
  const auto u = parse_uri(uri);
  if (!u) return resource_error{kResourceNotFound, "no such resource: " + uri + " (see resources/templates/list)"};
  auto refused = [&](const api_response& res) -> resource_error {
    if (res.status == 404) return {kResourceNotFound, "no such resource: " + uri};
    if (res.status == 401 || res.status == 403) return {kForbidden, api_problem(res)};
    if (res.status == 400) return {kInvalidParams, api_problem(res)};
    return {kInternalError, api_problem(res)};
  };
  mime = "application/json";
  if (u->what == audit_uri::event) {
    const api_response res = get(c, tenant_path(u->tenant) + "/events/" + std::to_string(u->sequence));
    if (res.status == 404) return resource_error{kResourceNotFound, "no event " + std::to_string(u->sequence) + " in tenant " + u->tenant};
    if (res.status != 200) return refused(res);
    text = res.body;
    return std::nullopt;
  }
  if (u->what == audit_uri::export_) {
    params p;
    int64_t max_rows = std::min<int64_t>(1000, c.opt.export_max_rows);
    for (const auto& [k, v] : u->query) {
      if (k != "max_rows") {
        p.emplace_back(k, v);
        continue;
      }
      int64_t n = 0;
      const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
      if (r.ec != std::errc() || r.ptr != v.data() + v.size() || n < 1 || n > c.opt.export_max_rows)
        return resource_error{kInvalidParams, "max_rows: 1 to " + std::to_string(c.opt.export_max_rows)};
      max_rows = n;
    }
    record_cutter cut(u->format == "csv", max_rows, c.opt.export_max_bytes);
    const api_response res = read_export(c, u->tenant, u->format, p, cut);
    if (res.status != 200) return refused(res);
    mime = u->format == "csv" ? "text/csv" : "application/x-ndjson";
    text = std::move(cut.body());
    return std::nullopt;
  }
  params p = {{"page_size", std::to_string(c.opt.timeline_page)}};
  if (u->what == audit_uri::activity) p.emplace_back("actor_id", u->actor_id);
  for (const auto& [k, v] : u->query) p.emplace_back("page_token", v);
  const api_response res = get(c, tenant_path(u->tenant) + "/events?" + query_string(p));
  if (res.status != 200) return refused(res);
  Document d;
  d.Parse(res.body.c_str(), res.body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("events"))
    return resource_error{kInternalError, "the query API's answer was not a page of events"};
  rapidjson::StringBuffer sb;
  json_writer w(sb);
  w.StartObject();
  w.Key("tenant_id");
  put(w, u->tenant);
  if (u->what == audit_uri::activity) {
    w.Key("actor_id");
    put(w, u->actor_id);
  }
  w.Key("events");
  d["events"].Accept(w);
  const bool more = d.HasMember("next_page_token") && d["next_page_token"].IsString();
  w.Key("next_cursor");
  if (more) d["next_page_token"].Accept(w);
  else w.Null();
  w.Key("next_uri");
  if (more) put(w, timeline_uri(*u, d["next_page_token"].GetString()));
  else w.Null();
  w.EndObject();
  text.assign(sb.GetString(), sb.GetSize());
  return std::nullopt;
}

}  // namespace

std::string server::handle(std::string_view message, const caller& who, std::string* negotiated) const {
  Document d;
  std::string why;
  if (!parse_json_bounded(d, message, kMessageBounds, &why))
    return reply_error(nullptr, kParseError, "parse error: the message is not JSON within bounds (" + why + ")");
  if (d.IsArray()) return reply_error(nullptr, kInvalidRequest, "JSON-RPC batches are not supported: send one message at a time");
  if (!d.IsObject() || !d.HasMember("jsonrpc") || !is(d["jsonrpc"], "2.0"))
    return reply_error(nullptr, kInvalidRequest, "not a JSON-RPC 2.0 message");
  const Value* id = d.HasMember("id") ? &d["id"] : nullptr;
  if (id && !id->IsString() && !id->IsInt64()) return reply_error(nullptr, kInvalidRequest, "the id must be a string or an integer");
  if (!d.HasMember("method")) return "";  // a response to us: Trail sends no requests, so nothing waits for it
  if (!d["method"].IsString()) return reply_error(id, kInvalidRequest, "method must be a string");
  const std::string method = d["method"].GetString();
  if (!id) return "";  // notifications (initialized, cancelled, …) need no answer
  const Value* params = d.HasMember("params") ? &d["params"] : nullptr;
  if (params && !params->IsObject()) return reply_error(id, kInvalidParams, "params must be an object");
  auto param = [&](const char* key) -> const Value* {
    if (!params) return nullptr;
    auto it = params->FindMember(key);
    return it == params->MemberEnd() ? nullptr : &it->value;
  };
  const call_context c{api_, opt_, who};

  if (method == "initialize") {
    const Value* asked = param("protocolVersion");
    if (!asked || !asked->IsString()) return reply_error(id, kInvalidParams, "initialize: protocolVersion is required");
    const std::string version = supported_version(asked->GetString()) ? asked->GetString() : protocol_versions().front();
    if (negotiated) *negotiated = version;
    return reply(*id, [&](json_writer& w) {
      w.StartObject();
      w.Key("protocolVersion");
      put(w, version);
      w.Key("capabilities");
      w.StartObject();
      w.Key("tools");
      w.StartObject();
      w.Key("listChanged");
      w.Bool(false);
      w.EndObject();
      w.Key("resources");
      w.StartObject();
      w.Key("subscribe");
      w.Bool(false);
      w.Key("listChanged");
      w.Bool(false);
      w.EndObject();
      w.EndObject();
      w.Key("serverInfo");
      w.StartObject();
      w.Key("name");
      w.String("trail");
      w.Key("title");
      w.String("Trail audit log");
      w.Key("version");
      put(w, opt_.version);
      w.EndObject();
      w.Key("instructions");
      w.String(kInstructions);
      w.EndObject();
    });
  }
  if (method == "ping") return reply(*id, [](json_writer& w) { w.StartObject(), w.EndObject(); });
  if (method == "tools/list") {
    static const std::string tools = tools_json();
    return reply(*id, [&](json_writer& w) {
      w.StartObject();
      w.Key("tools");
      w.RawValue(tools.data(), tools.size(), rapidjson::kArrayType);
      w.EndObject();
    });
  }
  if (method == "tools/call") {
    const Value* name = param("name");
    if (!name || !name->IsString()) return reply_error(id, kInvalidParams, "tools/call: name is required");
    const Value* args = param("arguments");
    if (args && !args->IsObject()) return reply_error(id, kInvalidParams, "tools/call: arguments must be an object");
    static const Value kEmpty(rapidjson::kObjectType);
    if (!args) args = &kEmpty;
    arguments a(args, who);
    const std::string tool = name->GetString();
    tool_result r;
    if (tool == "record_event") r = record_event(c, a, args);
    else if (tool == "query_events") r = query_events(c, a);
    else if (tool == "get_event_diff") r = get_event_diff(c, a);
    else if (tool == "verify_chain") r = verify_chain(c, a);
    else if (tool == "export_events") r = export_events(c, a);
    else return reply_error(id, kInvalidParams, "unknown tool: " + tool + " (see tools/list)");
    return reply(*id, [&](json_writer& w) { write_tool_result(w, r); });
  }
  if (method == "resources/list") {
    return reply(*id, [&](json_writer& w) {
      w.StartObject();
      w.Key("resources");
      w.StartArray();
      for (const auto& t : who.tenants) {
        w.StartObject();
        w.Key("uri");
        put(w, "audit://tenants/" + encode(t) + "/timeline");
        w.Key("name");
        put(w, "timeline-" + t);
        w.Key("title");
        put(w, "Timeline of tenant " + t);
        w.Key("description");
        put(w, "The events of tenant " + t + ", newest first, a page at a time.");
        w.Key("mimeType");
        w.String("application/json");
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
    });
  }
  if (method == "resources/templates/list") {
    return reply(*id, [&](json_writer& w) {
      w.StartObject();
      w.Key("resourceTemplates");
      w.RawValue(kTemplates, std::char_traits<char>::length(kTemplates), rapidjson::kArrayType);
      w.EndObject();
    });
  }
  if (method == "resources/read") {
    const Value* uri = param("uri");
    if (!uri || !uri->IsString()) return reply_error(id, kInvalidParams, "resources/read: uri is required");
    std::string mime, text;
    if (auto e = read_resource(c, uri->GetString(), mime, text)) {
      rapidjson::StringBuffer sb;
      json_writer w(sb);
      w.StartObject();
      w.Key("uri");
      w.String(uri->GetString());
      w.EndObject();
      return reply_error(id, e->code, e->message, std::string(sb.GetString(), sb.GetSize()));
    }
    return reply(*id, [&](json_writer& w) {
      w.StartObject();
      w.Key("contents");
      w.StartArray();
      w.StartObject();
      w.Key("uri");
      w.String(uri->GetString());
      w.Key("mimeType");
      put(w, mime);
      w.Key("text");
      put(w, text);
      w.EndObject();
      w.EndArray();
      w.EndObject();
    });
  }
  return reply_error(id, kMethodNotFound, "method not found: " + method);
}

}  // namespace trail::mcp
