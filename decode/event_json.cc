#include "decode/event_json.h"

#include <algorithm>
#include <charconv>

#include "decode/json_out.h"

#include <rapidjson/document.h>

namespace trail {

using F = event_field;

padded_sequence::padded_sequence(int64_t sequence) {
  char tmp[20];
  const auto end = std::to_chars(tmp, tmp + sizeof tmp, sequence).ptr;
  const size_t n = static_cast<size_t>(end - tmp);
  std::fill(digits, digits + 19, '0');
  std::copy(tmp, end, digits + (19 - n));
  digits[19] = '\0';
}

namespace {

void member(json_out& w, const char* key, std::string_view v) {
  w.Key(key);
  write_string(w, v);
}
void optional_member(json_out& w, const audit_event& e, const char* key, F f) {
  if (e.has(f)) member(w, key, e.get(f));
}
void raw_member(json_out& w, const audit_event& e, const char* key, F f, rapidjson::Type type) {
  if (!e.has(f)) return;
  const auto v = e.get(f);
  w.Key(key);
  w.RawValue(v.data(), v.size(), type);
}
// Object members rendered at decode ("\"a\":1,…"), spliced into the object
// being written. Only after a member has been written: the writer then puts
// the comma before whatever member follows.
void splice_members(rapidjson::StringBuffer& sb, const audit_event& e, F f) {
  if (!e.has(f) || e.get(f).empty()) return;
  sb.Put(',');
  append_raw(sb, e.get(f));
}

}  // namespace

void render_committed_event(const audit_event& e, const padded_sequence& sequence, std::string_view recorded_time,
                            std::string& out) {
  thread_local rapidjson::StringBuffer sb;
  sb.Clear();
  json_out w(sb);
  w.StartObject();
  w.Key("specversion");
  w.String("1.0");
  member(w, "id", e.get(F::ce_id));
  member(w, "source", e.get(F::ce_source));
  member(w, "type", e.get(F::ce_type));
  member(w, "time", e.get(F::occurred_at));
  optional_member(w, e, "subject", F::ce_subject);
  w.Key("datacontenttype");
  w.String("application/json");
  member(w, "tenantid", e.get(F::tenant_id));
  splice_members(sb, e, F::committed_extensions);
  member(w, "sequence", sequence.text());
  member(w, "recordedtime", recorded_time);
  w.Key("data");
  w.StartObject();
  member(w, "tenant_id", e.get(F::tenant_id));
  member(w, "occurred_at", e.get(F::occurred_at));
  member(w, "action", e.get(F::action));
  member(w, "category", e.get(F::category));
  member(w, "severity", e.get(F::severity));
  w.Key("actor");
  w.StartObject();
  member(w, "type", e.get(F::actor_type));
  member(w, "id", e.get(F::actor_id));
  optional_member(w, e, "display_name", F::actor_display_name);
  optional_member(w, e, "ip", F::actor_ip);
  optional_member(w, e, "user_agent", F::actor_user_agent);
  optional_member(w, e, "session_id", F::actor_session_id);
  w.EndObject();
  w.Key("primary_resource");
  w.StartObject();
  member(w, "type", e.get(F::resource_type));
  member(w, "id", e.get(F::resource_id));
  w.EndObject();
  raw_member(w, e, "related_resources", F::related_resources, rapidjson::kArrayType);
  raw_member(w, e, "changes", F::changes, rapidjson::kObjectType);
  if (e.has(F::outcome_status)) {
    w.Key("outcome");
    w.StartObject();
    member(w, "status", e.get(F::outcome_status));
    optional_member(w, e, "error_code", F::outcome_error_code);
    w.EndObject();
  }
  optional_member(w, e, "description", F::description);
  raw_member(w, e, "metadata", F::metadata, rapidjson::kObjectType);
  optional_member(w, e, "correlation_id", F::correlation_id);
  optional_member(w, e, "request_id", F::request_id);
  member(w, "source_service", e.get(F::source_service));
  optional_member(w, e, "trace_id", F::trace_id);
  splice_members(sb, e, F::unknown);
  w.EndObject();
  w.EndObject();
  out.append(text_of(sb));
}

bool is_trail_set_extension(std::string_view name) {
  return name == "tenantid" || name == "sequence" || name == "recordedtime";
}

size_t committed_event_bound(const audit_event& e) {
  // Keys, quotes, braces and the Trail-set values: well under 1 KiB.
  constexpr size_t kFixed = 1024;
  return kFixed + 6 * e.text_bytes();
}

bool has_extra(const audit_event& e) {
  return e.has(F::ce_dataschema) || e.has(F::extensions) || e.has(F::unknown);
}

void render_extra(const audit_event& e, std::string& out) {
  thread_local rapidjson::StringBuffer sb;
  sb.Clear();
  json_out w(sb);
  w.StartObject();
  optional_member(w, e, "dataschema", F::ce_dataschema);
  if (e.has(F::extensions)) {
    w.Key("extensions");
    w.StartObject();
    append_raw(sb, e.get(F::extensions));  // the object is empty so far: no comma
    w.EndObject();
  }
  if (e.has(F::unknown)) {
    w.Key("unknown");
    w.StartObject();
    append_raw(sb, e.get(F::unknown));
    w.EndObject();
  }
  w.EndObject();
  out.append(text_of(sb));
}

bool parse_extra(std::string_view extra_json, audit_event& e) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(extra_json.data(), extra_json.size());
  if (doc.HasParseError() || !doc.IsObject()) return false;
  thread_local rapidjson::StringBuffer sb;
  // An object's members, rendered compact, without its braces; `skip` leaves some out.
  auto members = [&](const rapidjson::Value& obj, F f, auto&& skip) {
    sb.Clear();
    json_out w(sb);
    w.StartObject();
    bool any = false;
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) {
      const std::string_view name(m->name.GetString(), m->name.GetStringLength());
      if (skip(name)) continue;
      write_key(w, name);
      m->value.Accept(w);
      any = true;
    }
    w.EndObject();
    if (any) e.set(f, text_of(sb).substr(1, sb.GetSize() - 2));
  };
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    const std::string_view name(m->name.GetString(), m->name.GetStringLength());
    if (name == "dataschema" && m->value.IsString()) {
      e.set(F::ce_dataschema, std::string_view(m->value.GetString(), m->value.GetStringLength()));
    } else if (name == "extensions" && m->value.IsObject()) {
      members(m->value, F::extensions, [](std::string_view) { return false; });
      members(m->value, F::committed_extensions, is_trail_set_extension);
    } else if (name == "unknown" && m->value.IsObject()) {
      members(m->value, F::unknown, [](std::string_view) { return false; });
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace trail
