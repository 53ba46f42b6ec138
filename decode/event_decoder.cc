#include "decode/event_decoder.h"

#include "decode/canonical.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "common/time.h"
#include "common/uuid.h"
#include "decode/event_json.h"

namespace trail {
namespace {

using rapidjson::Value;

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseFullPrecisionFlag;
constexpr size_t kMaxIdLength = 256;
constexpr size_t kMaxTenantLength = 128;
constexpr size_t kMaxActionLength = 128;
// Room for the committed subject's prefix ("audit.committed." by default).
constexpr size_t kCommittedSubjectAllowance = 64;

std::string_view sv(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

rejection payload_error(std::string msg) { return {reason::payload_invalid, std::move(msg)}; }

// Field-by-field reader of one JSON object of the payload; the first error wins.
class fields {
 public:
  fields(const Value& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  const Value* get(const char* name) const {
    auto it = obj_.FindMember(name);
    if (it == obj_.MemberEnd() || it->value.IsNull()) return nullptr;
    return &it->value;
  }

  // A string field. Returns false (and records the error) if present with the
  // wrong type or length, or missing while required.
  bool string(const char* name, std::optional<std::string_view>& out, bool required, size_t max_len,
              std::optional<rejection>& err) const {
    const Value* v = get(name);
    if (!v) {
      if (required) err = payload_error(path(name) + " is required");
      return !required;
    }
    if (!v->IsString()) {
      err = payload_error(path(name) + " must be a string");
      return false;
    }
    if (required && v->GetStringLength() == 0) {
      err = payload_error(path(name) + " must not be empty");
      return false;
    }
    if (max_len && v->GetStringLength() > max_len) {
      err = payload_error(path(name) + " is longer than " + std::to_string(max_len) + " bytes");
      return false;
    }
    out.emplace(v->GetString(), v->GetStringLength());  // valid while the document lives
    return true;
  }

  bool only_known(std::initializer_list<std::string_view> known, std::optional<rejection>& err) const {
    for (auto m = obj_.MemberBegin(); m != obj_.MemberEnd(); ++m) {
      const auto name = sv(m->name);
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        err = payload_error(path(std::string(name).c_str()) + " is not a known field");
        return false;
      }
    }
    return true;
  }

  std::string path(const char* name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

 private:
  const Value& obj_;
  std::string prefix_;
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// "SEVERITY_INFO", "INFO" or "info" -> "SEVERITY_INFO" when INFO is allowed.
std::optional<std::string> normalize_enum(std::string_view value, std::string_view prefix,
                                          std::initializer_list<std::string_view> allowed) {
  std::string u = upper(value);
  if (u.compare(0, prefix.size(), prefix) == 0) u.erase(0, prefix.size());
  for (auto a : allowed)
    if (u == a) return std::string(prefix) + u;
  return std::nullopt;
}

// A tenant id is one token of the committed subject (audit.committed.<tenant_id>):
// no '.', which would split it into tokens another tenant's wildcard matches.
bool valid_tenant_id(std::string_view t) {
  if (t.empty() || t.size() > kMaxTenantLength) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-';
  });
}

std::optional<std::string> trace_id_from_traceparent(std::string_view tp) {
  // version "-" trace-id(32 hex) "-" parent-id(16 hex) "-" flags(2 hex)
  if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
  auto id = tp.substr(3, 32);
  const bool hex = std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (!hex || id.find_first_not_of('0') == std::string_view::npos) return std::nullopt;
  return std::string(id);
}

bool valid_ip(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::optional<std::string> decode_base64(std::string_view in) {
  std::string clean;
  clean.reserve(in.size());
  for (char c : in)
    if (!std::isspace(static_cast<unsigned char>(c))) clean.push_back(c);
  if (clean.size() % 4 != 0) return std::nullopt;
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return std::nullopt;
  size_t len = static_cast<size_t>(n);
  if (!clean.empty() && clean.back() == '=') --len;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

struct resource_ref {
  std::string_view type, id;
};

std::optional<rejection> read_resource(const Value& v, const std::string& path, resource_ref& out) {
  if (!v.IsObject()) return payload_error(path + " must be an object with 'type' and 'id'");
  fields f(v, path);
  std::optional<rejection> err;
  std::optional<std::string_view> type, id;
  if (!f.string("type", type, true, kMaxIdLength, err) || !f.string("id", id, true, kMaxIdLength, err) ||
      !f.only_known({"type", "id"}, err))
    return err;
  out.type = *type;
  out.id = *id;
  return std::nullopt;
}

constexpr std::string_view kKnownPayloadFields[] = {
    "tenant_id",    "action",       "category",  "severity",      "actor",
    "primary_resource", "resource", "related_resources", "changes", "outcome",
    "description",  "metadata",     "correlation_id", "request_id", "source_service",
    "trace_id",     "occurred_at"};

bool is_known_payload_field(std::string_view n) {
  return std::find(std::begin(kKnownPayloadFields), std::end(kKnownPayloadFields), n) !=
         std::end(kKnownPayloadFields);
}

}  // namespace

namespace {
// True when no byte has its high bit set. ASCII is valid UTF-8 whatever it
// holds, so such a text needs no per-character encoding check while parsing
// (most audit events are ASCII); anything else is parsed with the check.
bool all_ascii(std::string_view s) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    acc |= w;
  }
  for (; i < s.size(); ++i) acc |= static_cast<unsigned char>(s[i]);
  return (acc & 0x8080808080808080ULL) == 0;
}
}  // namespace

std::optional<rejection> parse_json(std::string_view text, json_document& doc) {
  if (all_ascii(text))
    doc.Parse<kParseFlags & ~static_cast<unsigned>(rapidjson::kParseValidateEncodingFlag)>(text.data(), text.size());
  else
    doc.Parse<kParseFlags>(text.data(), text.size());
  if (doc.HasParseError()) {
    const auto code = doc.GetParseError();
    std::string msg = std::string("not valid JSON: ") + rapidjson::GetParseError_En(code) +
                      " at byte " + std::to_string(doc.GetErrorOffset());
    const bool encoding = code == rapidjson::kParseErrorStringInvalidEncoding ||
                          code == rapidjson::kParseErrorStringUnicodeSurrogateInvalid;
    return rejection{encoding ? reason::unstorable : reason::malformed_json, std::move(msg)};
  }
  return std::nullopt;
}

namespace {

// Small objects are compared by scanning; larger ones through their names
// sorted once, so that no object costs more than O(n log n).
constexpr size_t kLinearMembers = 16;

std::vector<const Value::Member*> sorted_members(const Value& obj) {
  std::vector<const Value::Member*> out;
  out.reserve(obj.MemberCount());
  for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m) out.push_back(&*m);
  std::sort(out.begin(), out.end(), [](const Value::Member* a, const Value::Member* b) { return sv(a->name) < sv(b->name); });
  return out;
}

}  // namespace

std::optional<rejection> check_storable(const Value& root, size_t max_depth, size_t max_keys) {
  struct frame {
    const Value* v;
    size_t depth;
  };
  thread_local std::vector<frame> stack;
  thread_local std::vector<std::string_view> names;
  stack.clear();
  stack.push_back({&root, 1});
  // The parser has validated UTF-8; what is left is what PostgreSQL refuses.
  auto check_string = [](std::string_view s) -> std::optional<rejection> {
    if (const char* flaw = unstorable_text_flaw(s)) return rejection{reason::unstorable, std::string("a string contains ") + flaw};
    return std::nullopt;
  };
  while (!stack.empty()) {
    const frame f = stack.back();
    stack.pop_back();
    if (f.depth > max_depth)
      return rejection{reason::payload_invalid,
                       "JSON nesting is deeper than the limit of " + std::to_string(max_depth)};
    const Value& v = *f.v;
    if (v.IsString()) {
      if (auto r = check_string(sv(v))) return r;
    } else if (v.IsObject()) {
      const size_t n = v.MemberCount();
      if (n > max_keys)
        return rejection{reason::payload_invalid, "a JSON object has " + std::to_string(n) +
                                                      " members, more than the limit of " + std::to_string(max_keys) +
                                                      " (validate.max_object_keys)"};
      // A repeated name would be validated at its first occurrence and
      // stored (jsonb keeps the last) at its second: refused.
      names.clear();
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        if (auto r = check_string(sv(m->name))) return r;
        names.push_back(sv(m->name));
        stack.push_back({&m->value, f.depth + 1});
      }
      bool repeated = false;
      std::string_view which;
      if (n <= kLinearMembers) {
        for (size_t i = 0; i < n && !repeated; ++i)
          for (size_t j = i + 1; j < n && !repeated; ++j)
            if (names[i] == names[j]) repeated = true, which = names[i];
      } else {
        std::sort(names.begin(), names.end());
        for (size_t i = 1; i < n && !repeated; ++i)
          if (names[i] == names[i - 1]) repeated = true, which = names[i];
      }
      if (repeated) {
        std::string shown(which.substr(0, 64));
        return rejection{reason::payload_invalid, "a JSON object has the member '" + shown +
                                                      "' more than once (duplicate names are ambiguous)"};
      }
    } else if (v.IsArray()) {
      for (auto e = v.Begin(); e != v.End(); ++e) stack.push_back({e, f.depth + 1});
    }
  }
  return std::nullopt;
}

bool json_equal(const Value& a, const Value& b) {
  if (a.GetType() != b.GetType()) return false;
  if (a.IsObject()) {
    const size_t n = a.MemberCount();
    if (n != b.MemberCount()) return false;
    if (n <= kLinearMembers) {
      for (auto m = a.MemberBegin(); m != a.MemberEnd(); ++m) {
        auto it = b.FindMember(m->name);
        if (it == b.MemberEnd() || !json_equal(m->value, it->value)) return false;
      }
      return true;
    }
    const auto sa = sorted_members(a), sb = sorted_members(b);
    for (size_t i = 0; i < n; ++i)
      if (sv(sa[i]->name) != sv(sb[i]->name) || !json_equal(sa[i]->value, sb[i]->value)) return false;
    return true;
  }
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i)
      if (!json_equal(a[i], b[i])) return false;
    return true;
  }
  if (a.IsString()) return sv(a) == sv(b);
  return a == b;  // numbers, booleans, null
}

std::vector<std::string> compute_changed_fields(const Value& old_value, const Value& new_value) {
  std::vector<std::string> out;
  const auto so = sorted_members(old_value), sn = sorted_members(new_value);
  size_t i = 0, j = 0;
  while (i < so.size() || j < sn.size()) {
    if (j == sn.size() || (i < so.size() && sv(so[i]->name) < sv(sn[j]->name))) {
      out.emplace_back(sv(so[i++]->name));  // removed
    } else if (i == so.size() || sv(sn[j]->name) < sv(so[i]->name)) {
      out.emplace_back(sv(sn[j++]->name));  // added
    } else {
      if (!json_equal(so[i]->value, sn[j]->value)) out.emplace_back(sv(so[i]->name));
      ++i, ++j;
    }
  }
  return out;
}

std::optional<rejection> build_event(const ce_envelope& env, const Value& data, ingest_mode mode,
                                     int64_t receive_time_us, size_t size_hint, audit_event& out) {
  if (!data.IsObject()) return payload_error("the audit payload (data) must be a JSON object");
  fields f(data, "data");
  std::optional<rejection> err;

  // ---- tenant ----
  std::optional<std::string_view> tenant;
  if (!f.string("tenant_id", tenant, false, 0, err)) return err;
  if (const auto* ext = env.extension("tenantid")) {
    if (ext->type != ce_extension::kind::string)
      return payload_error("extension 'tenantid' must be a string");
    if (tenant && *tenant != ext->text)
      return payload_error("data.tenant_id '" + std::string(*tenant) + "' does not match extension tenantid '" + ext->text + "'");
    tenant = ext->text;
  }
  if (!tenant) return payload_error("tenant_id is required (data.tenant_id or the tenantid extension)");
  if (!valid_tenant_id(*tenant))
    return payload_error("tenant_id must be 1-128 characters of [A-Za-z0-9_:-] (no '.': it is a token of the subject "
                         "audit.committed.<tenant_id>)");

  // ---- what happened ----
  std::optional<std::string_view> action, category_in, severity_in, description, correlation_id,
      request_id, source_service, trace_id, occurred_text;
  if (!f.string("action", action, true, kMaxActionLength, err) ||
      !f.string("category", category_in, false, 0, err) ||
      !f.string("severity", severity_in, false, 0, err) ||
      !f.string("description", description, false, 0, err) ||
      !f.string("correlation_id", correlation_id, false, kMaxIdLength, err) ||
      !f.string("request_id", request_id, false, kMaxIdLength, err) ||
      !f.string("source_service", source_service, false, kMaxIdLength, err) ||
      !f.string("trace_id", trace_id, false, kMaxIdLength, err) ||
      !f.string("occurred_at", occurred_text, false, 0, err))
    return err;

  std::string category = "CATEGORY_UNSPECIFIED";
  if (category_in) {
    std::string u = upper(*category_in);
    if (u.rfind("CATEGORY_", 0) != 0) u = "CATEGORY_" + u;
    const bool ok = u.size() > 9 && u.size() <= 64 &&
                    std::all_of(u.begin(), u.end(), [](char c) {
                      return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
                    });
    if (!ok) return payload_error("data.category must be CATEGORY_<NAME> with NAME of [A-Z0-9_]");
    category = std::move(u);
  }
  std::string severity = "SEVERITY_INFO";
  if (severity_in) {
    auto s = normalize_enum(*severity_in, "SEVERITY_",
                            {"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "SECURITY"});
    if (!s)
      return payload_error("data.severity '" + std::string(*severity_in) +
                           "' is not one of SEVERITY_DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL|SECURITY");
    severity = std::move(*s);
  }

  // ---- who ----
  const Value* actor_v = f.get("actor");
  if (!actor_v) return payload_error("data.actor is required");
  if (!actor_v->IsObject()) return payload_error("data.actor must be an object");
  fields af(*actor_v, "data.actor");
  std::optional<std::string_view> actor_type_in, actor_id, actor_name, actor_ip, actor_ua, actor_session;
  if (!af.string("type", actor_type_in, true, 0, err) || !af.string("id", actor_id, true, kMaxIdLength, err) ||
      !af.string("display_name", actor_name, false, kMaxIdLength, err) ||
      !af.string("ip", actor_ip, false, 64, err) || !af.string("user_agent", actor_ua, false, 2048, err) ||
      !af.string("session_id", actor_session, false, kMaxIdLength, err) ||
      !af.only_known({"type", "id", "display_name", "ip", "user_agent", "session_id"}, err))
    return err;
  auto actor_type = normalize_enum(*actor_type_in, "ACTOR_TYPE_", {"USER", "SYSTEM", "SERVICE", "API_KEY"});
  if (!actor_type)
    return payload_error("data.actor.type '" + std::string(*actor_type_in) + "' is not one of ACTOR_TYPE_USER|SYSTEM|SERVICE|API_KEY");
  if (actor_ip && !valid_ip(std::string(*actor_ip)))
    return payload_error("data.actor.ip '" + std::string(*actor_ip) + "' is not an IPv4 or IPv6 address");

  // ---- to what ----
  const Value* res_v = f.get("primary_resource");
  const char* res_name = "data.primary_resource";
  if (!res_v) {
    res_v = f.get("resource");
    res_name = "data.resource";
  }
  if (!res_v) return payload_error("data.primary_resource is required");
  resource_ref resource;
  if (auto r = read_resource(*res_v, res_name, resource)) return r;

  const Value* related_v = f.get("related_resources");
  if (related_v) {
    if (!related_v->IsArray()) return payload_error("data.related_resources must be an array");
    resource_ref tmp;
    for (rapidjson::SizeType i = 0; i < related_v->Size(); ++i)
      if (auto r = read_resource((*related_v)[i], "data.related_resources[" + std::to_string(i) + "]", tmp))
        return r;
  }

  // ---- the change ----
  const Value* changes_v = f.get("changes");
  std::vector<std::string> computed_fields;
  bool add_changed_fields = false;
  if (changes_v) {
    if (!changes_v->IsObject()) return payload_error("data.changes must be an object");
    auto cf = changes_v->FindMember("changed_fields");
    if (cf != changes_v->MemberEnd() && !cf->value.IsNull()) {
      if (!cf->value.IsArray()) return payload_error("data.changes.changed_fields must be an array of strings");
      for (auto e = cf->value.Begin(); e != cf->value.End(); ++e)
        if (!e->IsString()) return payload_error("data.changes.changed_fields must be an array of strings");
    } else {
      auto ov = changes_v->FindMember("old_value");
      auto nv = changes_v->FindMember("new_value");
      if (ov != changes_v->MemberEnd() && nv != changes_v->MemberEnd() && ov->value.IsObject() &&
          nv->value.IsObject()) {
        computed_fields = compute_changed_fields(ov->value, nv->value);
        add_changed_fields = true;
      }
    }
  }

  // ---- the result ----
  std::optional<std::string_view> outcome_status, outcome_code;
  if (const Value* oc = f.get("outcome")) {
    if (oc->IsString()) {
      const std::string u = upper(sv(*oc));
      if (u == "SUCCESS" || u == "FAILURE") {
        outcome_status = u == "SUCCESS" ? "SUCCESS" : "FAILURE";
      } else if (u == "DENIED") {  // shorthand for an authorization refusal
        outcome_status = "FAILURE";
        outcome_code = "denied";
      } else {
        return payload_error("data.outcome '" + std::string(sv(*oc)) + "' is not SUCCESS or FAILURE");
      }
    } else if (oc->IsObject()) {
      fields of(*oc, "data.outcome");
      std::optional<std::string_view> status;
      if (!of.string("status", status, true, 0, err) || !of.string("error_code", outcome_code, false, kMaxIdLength, err) ||
          !of.only_known({"status", "error_code"}, err))
        return err;
      const std::string u = upper(*status);
      if (u != "SUCCESS" && u != "FAILURE")
        return payload_error("data.outcome.status '" + std::string(*status) + "' is not SUCCESS or FAILURE");
      outcome_status = u == "SUCCESS" ? "SUCCESS" : "FAILURE";
    } else {
      return payload_error("data.outcome must be an object {status, error_code}");
    }
  }

  const Value* metadata_v = f.get("metadata");
  if (metadata_v && !metadata_v->IsObject()) return payload_error("data.metadata must be an object");

  // ---- defaults from the envelope ----
  if (!source_service) source_service = env.source;
  std::optional<std::string> trace_storage;
  if (!trace_id)
    if (const auto* tp = env.extension("traceparent"); tp && tp->type == ce_extension::kind::string)
      if ((trace_storage = trace_id_from_traceparent(tp->text))) trace_id = *trace_storage;
  int64_t occurred_us;
  if (occurred_text) {
    auto t = parse_rfc3339_us(*occurred_text);
    if (!t) return payload_error("data.occurred_at '" + std::string(*occurred_text) + "' is not an RFC 3339 timestamp");
    occurred_us = *t;
  } else if (env.time_us) {
    occurred_us = *env.time_us;
  } else {
    occurred_us = receive_time_us;
  }

  // ---- the typed event ----
  using F = event_field;
  out = audit_event();
  out.reserve(size_hint + 256);
  out.occurred_at_us = occurred_us;
  out.mode = mode;
  out.set(F::tenant_id, *tenant);
  out.set(F::ce_source, env.source);
  out.set(F::ce_id, env.id);
  out.set(F::ce_type, env.type);
  if (env.subject) out.set(F::ce_subject, *env.subject);
  if (env.dataschema) out.set(F::ce_dataschema, *env.dataschema);
  out.set(F::occurred_at, format_rfc3339_us(occurred_us));
  out.set(F::action, *action);
  out.set(F::category, category);
  out.set(F::severity, severity);
  out.set(F::actor_type, *actor_type);
  out.set(F::actor_id, *actor_id);
  out.set_optional(F::actor_display_name, actor_name);
  out.set_optional(F::actor_ip, actor_ip);
  out.set_optional(F::actor_user_agent, actor_ua);
  out.set_optional(F::actor_session_id, actor_session);
  out.set(F::resource_type, resource.type);
  out.set(F::resource_id, resource.id);
  // An object's members, canonical (sorted, canonical values), without its
  // braces: the `extra` column composed of them is then canonical as it is.
  thread_local std::string members;
  auto members_field = [&](F f, auto&& write) {
    members.clear();
    {
      canonical_json_writer w(members);
      w.StartObject();
      write(w);
      w.EndObject(0);
    }
    out.set(f, std::string_view(members).substr(1, members.size() - 2));
  };
  // The JSON columns are written in canonical form (decode/canonical.h)
  // straight away: the writers' hash covers them so, and copies them then.
  thread_local std::string canon;
  auto canonical_field = [&](F f, auto&& write) {
    canon.clear();
    {
      canonical_json_writer w(canon);
      write(w);
    }
    out.set(f, canon);
  };
  if (related_v) canonical_field(F::related_resources, [&](canonical_json_writer& w) { related_v->Accept(w); });
  if (changes_v)
    canonical_field(F::changes, [&](canonical_json_writer& w) {
      w.StartObject();
      for (auto m = changes_v->MemberBegin(); m != changes_v->MemberEnd(); ++m) {
        w.Key(m->name.GetString(), m->name.GetStringLength());
        m->value.Accept(w);
      }
      if (add_changed_fields) {
        w.Key("changed_fields", 14);
        w.StartArray();
        for (const auto& c : computed_fields) w.String(c.data(), static_cast<unsigned>(c.size()));
        w.EndArray(0);
      }
      w.EndObject(0);
    });
  out.set_optional(F::outcome_status, outcome_status);
  out.set_optional(F::outcome_error_code, outcome_code);
  out.set_optional(F::description, description);
  if (metadata_v) canonical_field(F::metadata, [&](canonical_json_writer& w) { metadata_v->Accept(w); });
  out.set_optional(F::correlation_id, correlation_id);
  out.set_optional(F::request_id, request_id);
  out.set(F::source_service, *source_service);
  out.set_optional(F::trace_id, trace_id);
  if (!env.extensions.empty()) {
    auto write_extensions = [&](canonical_json_writer& w, bool committed) {
      for (const auto& e : env.extensions) {
        if (committed && is_trail_set_extension(e.name)) continue;
        w.Key(e.name.data(), static_cast<unsigned>(e.name.size()));
        if (e.type == ce_extension::kind::string) w.String(e.text.data(), static_cast<unsigned>(e.text.size()));
        else if (e.type == ce_extension::kind::boolean) w.Bool(e.text == "true");
        else w.RawNumber(e.text.data(), static_cast<unsigned>(e.text.size()));
      }
    };
    members_field(F::extensions, [&](canonical_json_writer& w) { write_extensions(w, false); });
    const bool any_committed = std::any_of(env.extensions.begin(), env.extensions.end(),
                                           [](const ce_extension& e) { return !is_trail_set_extension(e.name); });
    if (any_committed)
      members_field(F::committed_extensions, [&](canonical_json_writer& w) { write_extensions(w, true); });
  }
  bool any_unknown = false;
  for (auto m = data.MemberBegin(); m != data.MemberEnd() && !any_unknown; ++m)
    any_unknown = !is_known_payload_field(sv(m->name));
  if (any_unknown)
    members_field(F::unknown, [&](canonical_json_writer& w) {
      for (auto m = data.MemberBegin(); m != data.MemberEnd(); ++m) {
        if (is_known_payload_field(sv(m->name))) continue;
        w.Key(m->name.GetString(), m->name.GetStringLength());
        m->value.Accept(w);
      }
    });
  out.canonical_json = true;  // after the last set() of a JSON column
  return std::nullopt;
}

// ---------------------------------------------------------------------------

event_decoder::event_decoder(decoder_limits limits)
    : limits_(limits),
      parse_buffer_(new char[kParseBufferBytes]),
      stack_buffer_(new char[kStackBufferBytes]),
      pool_(parse_buffer_.get(), kParseBufferBytes, 64 * 1024),
      stack_pool_(stack_buffer_.get(), kStackBufferBytes, 16 * 1024) {}

decode_outcome event_decoder::decode(const message_view& msg) {
  decode_outcome result;
  pool_.Clear();
  stack_pool_.Clear();
  json_document doc(&pool_, 16 * 1024, &stack_pool_);

  auto reject = [&](rejection r) {
    result.events.clear();
    result.rejected = std::move(r);
    return std::move(result);
  };

  // Which content mode? Headers decide first; a header-less body decides by its shape.
  const std::string* content_type = msg.header("Content-Type");
  const std::string essence = content_type ? media_type_essence(*content_type) : std::string();
  const bool binary = msg.header("ce-specversion") != nullptr;
  bool batch = essence == "application/cloudevents-batch+json";
  const bool structured_declared = essence == "application/cloudevents+json";

  // Sizes count headers and body: both travel, both are held, both are stored.
  const size_t message_bytes = msg.data.size() + msg.header_wire_bytes;
  // Each committed event travels as a message of its own: one that cannot
  // fit the broker is refused now, before it is stored.
  auto committed_fits = [&](const audit_event& e) -> std::optional<rejection> {
    // Headers: NATS/1.0 + "Nats-Msg-Id: <tenant>:<sequence>" (+ Trail-Attempt on a retry).
    constexpr size_t kHeaders = 10 + 2 + 13 + 1 + 20 + 2 + 20 + 2;
    const size_t fixed = kHeaders + 2 * e.get(event_field::tenant_id).size() + kCommittedSubjectAllowance;
    if (committed_event_bound(e) + fixed <= limits_.max_message_bytes) return std::nullopt;
    // Near the limit: the exact size (every sequence and recorded time has one length).
    thread_local std::string probe;
    probe.clear();
    render_committed_event(e, padded_sequence(1), "2000-01-01T00:00:00.000000Z", probe);
    const size_t n = probe.size() + fixed;
    if (n <= limits_.max_message_bytes) return std::nullopt;
    return rejection{reason::too_large, "the committed copy of this event would be " + std::to_string(n) +
                                            " bytes, more than the broker's max_payload of " +
                                            std::to_string(limits_.max_message_bytes)};
  };

  if (binary) {
    result.mode = ingest_mode::binary;
    if (message_bytes > limits_.max_event_bytes)
      return reject({reason::too_large, "event of " + std::to_string(message_bytes) +
                                            " bytes (headers + body) exceeds the limit of " +
                                            std::to_string(limits_.max_event_bytes)});
    ce_envelope env;
    if (auto r = parse_binary_envelope(*msg.headers, env)) return reject(std::move(*r));
    if (env.datacontenttype && !is_json_media_type(*env.datacontenttype))
      return reject({reason::unsupported_content,
                     "datacontenttype '" + *env.datacontenttype + "' is not JSON; Trail's audit payload is a JSON object"});
    if (auto r = parse_json(msg.data, doc)) return reject(std::move(*r));
    if (auto r = check_storable(doc, limits_.max_depth, limits_.max_object_keys)) return reject(std::move(*r));
    audit_event ev;
    if (auto r = build_event(env, doc, ingest_mode::binary, msg.stream_time_us, msg.data.size(), ev)) return reject(std::move(*r));
    if (auto r = committed_fits(ev)) return reject(std::move(*r));
    result.events.push_back(std::move(ev));
    return result;
  }

  // Structured, batch or bare: the body is JSON.
  size_t first = 0;
  while (first < msg.data.size() && std::isspace(static_cast<unsigned char>(msg.data[first]))) ++first;
  if (!batch && !structured_declared && first < msg.data.size() && msg.data[first] == '[') batch = true;
  const size_t limit = batch ? limits_.max_batch_bytes : limits_.max_event_bytes;
  result.mode = batch ? ingest_mode::batch : ingest_mode::structured;
  if (message_bytes > limit)
    return reject({reason::too_large, "message of " + std::to_string(message_bytes) +
                                          " bytes (headers + body) exceeds the limit of " + std::to_string(limit)});
  if (auto r = parse_json(msg.data, doc)) return reject(std::move(*r));
  if (auto r = check_storable(doc, limits_.max_depth, limits_.max_object_keys)) return reject(std::move(*r));

  if (batch) {
    std::vector<ce_envelope> envs;
    if (auto r = parse_batch_envelopes(doc, envs)) return reject(std::move(*r));
    if (envs.size() > limits_.max_batch_events)
      return reject({reason::too_large, "batch of " + std::to_string(envs.size()) +
                                            " events exceeds the limit of " + std::to_string(limits_.max_batch_events)});
    result.events.reserve(envs.size());
    for (size_t i = 0; i < envs.size(); ++i) {
      const auto& env = envs[i];
      audit_event ev;
      if (env.data_base64 || !env.data)
        return reject({reason::batch_invalid, "batch element " + std::to_string(i) +
                                                  ": the audit payload must be a JSON object in 'data'"});
      if (env.datacontenttype && !is_json_media_type(*env.datacontenttype))
        return reject({reason::batch_invalid, "batch element " + std::to_string(i) + ": datacontenttype '" +
                                                  *env.datacontenttype + "' is not JSON"});
      if (auto r = build_event(env, *env.data, ingest_mode::batch, msg.stream_time_us, msg.data.size() / envs.size(), ev))
        return reject({reason::batch_invalid, "batch element " + std::to_string(i) + ": " + r->message});
      if (auto r = committed_fits(ev))
        return reject({reason::too_large, "batch element " + std::to_string(i) + ": " + r->message});
      result.events.push_back(std::move(ev));
    }
    return result;
  }

  if (!doc.IsObject()) return reject({reason::envelope_invalid, "the message body must be a JSON object or array"});
  const bool has_spec = doc.HasMember("specversion");
  if (!has_spec && !structured_declared) {
    // Bare audit object: Trail supplies the envelope. The id derives from the
    // message's stream position so that a redelivery keeps its identity.
    result.mode = ingest_mode::bare;
    ce_envelope env;
    env.specversion = "1.0";
    const uint64_t ms = static_cast<uint64_t>(msg.stream_time_us / 1000);
    env.id = uuid_v7(ms, mix64(msg.stream_seq), mix64(msg.stream_seq ^ static_cast<uint64_t>(msg.stream_time_us)));
    auto svc = doc.FindMember("source_service");
    env.source = (svc != doc.MemberEnd() && svc->value.IsString() && svc->value.GetStringLength() > 0)
                     ? std::string(sv(svc->value))
                     : std::string("trail:bare");
    env.type = "trail.audit.v1";
    audit_event ev;
    if (auto r = build_event(env, doc, ingest_mode::bare, msg.stream_time_us, msg.data.size(), ev)) return reject(std::move(*r));
    if (auto r = committed_fits(ev)) return reject(std::move(*r));
    result.events.push_back(std::move(ev));
    return result;
  }

  ce_envelope env;
  if (auto r = parse_structured_envelope(doc, env)) return reject(std::move(*r));
  if (env.datacontenttype && !is_json_media_type(*env.datacontenttype))
    return reject({reason::unsupported_content,
                   "datacontenttype '" + *env.datacontenttype + "' is not JSON; Trail's audit payload is a JSON object"});
  json_document inner(&pool_, 16 * 1024, &stack_pool_);
  const Value* data = env.data;
  if (env.data_base64) {
    auto bytes = decode_base64(*env.data_base64);
    if (!bytes) return reject({reason::envelope_invalid, "data_base64 is not valid base64"});
    if (auto r = parse_json(*bytes, inner)) return reject({r->code, "data_base64: " + r->message});
    if (auto r = check_storable(inner, limits_.max_depth, limits_.max_object_keys)) return reject(std::move(*r));
    data = &inner;
  }
  if (!data) return reject({reason::payload_invalid, "the event has no data; Trail needs the audit payload in 'data'"});
  audit_event ev;
  if (auto r = build_event(env, *data, ingest_mode::structured, msg.stream_time_us, msg.data.size(), ev)) return reject(std::move(*r));
  if (auto r = committed_fits(ev)) return reject(std::move(*r));
  result.events.push_back(std::move(ev));
  return result;
}

}  // namespace trail
