#include "decode/cloudevent.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>

#include "common/time.h"

namespace trail {
namespace {

rejection envelope_error(std::string msg) { return {reason::envelope_invalid, std::move(msg)}; }

std::string_view sv(const rapidjson::Value& v) { return {v.GetString(), v.GetStringLength()}; }

// Required string attribute: present, a string, non-empty.
std::optional<rejection> required_string(const rapidjson::Value& obj, const char* name,
                                         std::string& out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull())
    return envelope_error(std::string("required attribute '") + name + "' is missing");
  if (!it->value.IsString())
    return envelope_error(std::string("attribute '") + name + "' must be a string");
  if (it->value.GetStringLength() == 0)
    return envelope_error(std::string("attribute '") + name + "' must not be empty");
  out.assign(it->value.GetString(), it->value.GetStringLength());
  return std::nullopt;
}

bool valid_media_type(std::string_view ct) {
  // RFC 2046 type "/" subtype, optionally followed by parameters.
  const auto essence = ct.substr(0, ct.find(';'));
  const auto slash = essence.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= essence.size()) return false;
  auto token_ok = [](std::string_view t) {
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (t.empty()) return false;
    return std::all_of(t.begin(), t.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$&-^_.+").find(c) != std::string_view::npos;
    });
  };
  return token_ok(essence.substr(0, slash)) && token_ok(essence.substr(slash + 1));
}

bool valid_uri(std::string_view u) {
  // Absolute URI: scheme ":" …  (RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )).
  const auto colon = u.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(u[0]))) return false;
  for (size_t i = 1; i < colon; ++i) {
    const char c = u[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// Optional string attribute: absent or null is fine, otherwise a non-empty string.
std::optional<rejection> optional_string(const rapidjson::Value& obj, const char* name,
                                         std::optional<std::string>& out) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return std::nullopt;
  if (!it->value.IsString())
    return envelope_error(std::string("attribute '") + name + "' must be a string");
  if (it->value.GetStringLength() == 0)
    return envelope_error(std::string("attribute '") + name + "' must not be empty");
  out.emplace(it->value.GetString(), it->value.GetStringLength());
  return std::nullopt;
}

bool is_core_attribute(std::string_view n) {
  static constexpr std::string_view kCore[] = {"specversion", "id",      "source", "type",
                                               "datacontenttype", "dataschema", "subject",
                                               "time", "data", "data_base64"};
  return std::find(std::begin(kCore), std::end(kCore), n) != std::end(kCore);
}

std::optional<rejection> check_lengths(const ce_envelope& out) {
  auto too_long = [](const char* name, size_t n, size_t max) {
    return envelope_error(std::string("attribute '") + name + "' is " + std::to_string(n) + " bytes, longer than " +
                          std::to_string(max));
  };
  if (out.id.size() > kMaxCeIdBytes) return too_long("id", out.id.size(), kMaxCeIdBytes);
  if (out.source.size() > kMaxCeSourceBytes) return too_long("source", out.source.size(), kMaxCeSourceBytes);
  if (out.type.size() > kMaxCeAttributeBytes) return too_long("type", out.type.size(), kMaxCeAttributeBytes);
  if (out.subject && out.subject->size() > kMaxCeAttributeBytes)
    return too_long("subject", out.subject->size(), kMaxCeAttributeBytes);
  if (out.dataschema && out.dataschema->size() > kMaxCeAttributeBytes)
    return too_long("dataschema", out.dataschema->size(), kMaxCeAttributeBytes);
  if (out.datacontenttype && out.datacontenttype->size() > kMaxCeAttributeBytes)
    return too_long("datacontenttype", out.datacontenttype->size(), kMaxCeAttributeBytes);
  return std::nullopt;
}

std::optional<rejection> check_optional_attributes(ce_envelope& out) {
  if (out.specversion != "1.0")
    return envelope_error("unsupported specversion '" + out.specversion + "' (Trail accepts 1.0)");
  if (auto r = check_lengths(out)) return r;
  if (out.datacontenttype && !valid_media_type(*out.datacontenttype))
    return envelope_error("datacontenttype '" + *out.datacontenttype + "' is not an RFC 2046 media type");
  if (out.dataschema && !valid_uri(*out.dataschema))
    return envelope_error("dataschema '" + *out.dataschema + "' is not an absolute URI");
  return std::nullopt;
}

}  // namespace

const ce_extension* ce_envelope::extension(std::string_view name) const {
  for (const auto& e : extensions)
    if (e.name == name) return &e;
  return nullptr;
}

bool is_valid_extension_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

std::string media_type_essence(std::string_view ct) {
  auto e = ct.substr(0, ct.find(';'));
  while (!e.empty() && e.back() == ' ') e.remove_suffix(1);
  while (!e.empty() && e.front() == ' ') e.remove_prefix(1);
  std::string out(e);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_json_media_type(std::string_view ct) {
  const auto e = media_type_essence(ct);
  return e == "application/json" || e == "text/json" ||
         (e.size() > 5 && e.compare(e.size() - 5, 5, "+json") == 0);
}

std::optional<rejection> parse_structured_envelope(const rapidjson::Value& v, ce_envelope& out) {
  if (!v.IsObject()) return envelope_error("a CloudEvent must be a JSON object");
  {
    auto it = v.FindMember("specversion");
    if (it == v.MemberEnd() || it->value.IsNull())
      return envelope_error("required attribute 'specversion' is missing");
  }
  if (auto r = required_string(v, "specversion", out.specversion)) return r;
  if (auto r = required_string(v, "id", out.id)) return r;
  if (auto r = required_string(v, "source", out.source)) return r;
  if (auto r = required_string(v, "type", out.type)) return r;
  if (auto r = optional_string(v, "datacontenttype", out.datacontenttype)) return r;
  if (auto r = optional_string(v, "dataschema", out.dataschema)) return r;
  if (auto r = optional_string(v, "subject", out.subject)) return r;
  std::optional<std::string> time_text;
  if (auto r = optional_string(v, "time", time_text)) return r;
  if (time_text) {
    out.time_us = parse_rfc3339_us(*time_text);
    if (!out.time_us) return envelope_error("time '" + *time_text + "' is not an RFC 3339 timestamp");
  }
  if (auto r = check_optional_attributes(out)) return r;

  const rapidjson::Value* data = nullptr;
  const rapidjson::Value* data_b64 = nullptr;
  for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
    const auto name = sv(m->name);
    if (name == "data") {
      if (!m->value.IsNull()) data = &m->value;
      continue;
    }
    if (name == "data_base64") {
      if (!m->value.IsNull()) data_b64 = &m->value;
      continue;
    }
    if (is_core_attribute(name)) continue;
    if (!is_valid_extension_name(name))
      return envelope_error("attribute name '" + std::string(name) +
                            "' is invalid: names are lower-case letters and digits only");
    const auto& val = m->value;
    if (val.IsNull()) continue;
    ce_extension ext;
    ext.name.assign(name);
    if (val.IsString()) {
      ext.type = ce_extension::kind::string;
      ext.text.assign(val.GetString(), val.GetStringLength());
    } else if (val.IsBool()) {
      ext.type = ce_extension::kind::boolean;
      ext.text = val.GetBool() ? "true" : "false";
    } else if (val.IsInt()) {  // CloudEvents Integer: 32-bit signed
      ext.type = ce_extension::kind::integer;
      ext.text = std::to_string(val.GetInt());
    } else {
      return envelope_error("extension attribute '" + std::string(name) +
                            "' must be a string, boolean or 32-bit integer");
    }
    out.extensions.push_back(std::move(ext));
  }
  if (data && data_b64) return envelope_error("an event must not have both 'data' and 'data_base64'");
  if (data_b64) {
    if (!data_b64->IsString()) return envelope_error("'data_base64' must be a string");
    out.data_base64.emplace(data_b64->GetString(), data_b64->GetStringLength());
  }
  out.data = data;
  return std::nullopt;
}

std::optional<rejection> parse_batch_envelopes(const rapidjson::Value& v,
                                               std::vector<ce_envelope>& out) {
  if (!v.IsArray()) return rejection{reason::batch_invalid, "a CloudEvents batch must be a JSON array"};
  out.clear();
  out.reserve(v.Size());
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    ce_envelope env;
    if (auto r = parse_structured_envelope(v[i], env))
      return rejection{reason::batch_invalid,
                       "batch element " + std::to_string(i) + " is invalid: " + r->message};
    out.push_back(std::move(env));
  }
  return std::nullopt;
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int h = hex(in[i + 1]), l = hex(in[i + 2]);
    if (h < 0 || l < 0) return std::nullopt;
    out.push_back(static_cast<char>(h * 16 + l));
    i += 2;
  }
  return out;
}

const char* unstorable_text_flaw(std::string_view s) {
  if (std::memchr(s.data(), '\0', s.size())) return "the NUL character (\\u0000), which PostgreSQL cannot store";
  // UTF-16 surrogates (U+D800..U+DFFF) encoded as UTF-8 start with 0xED 0xA0..0xBF.
  for (const char* p = static_cast<const char*>(std::memchr(s.data(), '\xED', s.size())); p;
       p = static_cast<const char*>(std::memchr(p + 1, '\xED', s.size() - static_cast<size_t>(p + 1 - s.data())))) {
    if (p + 1 < s.data() + s.size() && static_cast<unsigned char>(p[1]) >= 0xA0)
      return "an unpaired UTF-16 surrogate, which is not valid UTF-8";
  }
  return nullptr;
}

std::optional<rejection> check_text(std::string_view s, const std::string& what) {
  if (const char* flaw = unstorable_text_flaw(s)) return rejection{reason::unstorable, what + " contains " + flaw};
  rapidjson::MemoryStream ms(s.data(), s.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
  struct discard {
    void Put(char) {}
  } sink;
  while (ms.Tell() < s.size())
    if (!rapidjson::UTF8<>::Validate(in, sink)) return rejection{reason::unstorable, what + " is not valid UTF-8"};
  return std::nullopt;
}

std::optional<rejection> parse_binary_envelope(
    const std::vector<std::pair<std::string, std::string>>& headers, ce_envelope& out) {
  std::optional<std::string> content_type;
  bool have_spec = false, have_id = false, have_source = false, have_type = false;
  std::vector<std::string> seen;  // attribute names, to refuse one given twice
  for (const auto& [raw_name, raw_value] : headers) {
    if (strcasecmp(raw_name.c_str(), "content-type") == 0) {
      if (content_type) return envelope_error("the Content-Type header is given more than once");
      content_type = raw_value;
      if (auto r = check_text(raw_value, "header 'Content-Type'")) return r;
      continue;
    }
    if (raw_name.size() <= 3 || strncasecmp(raw_name.c_str(), "ce-", 3) != 0) continue;
    std::string name = raw_name.substr(3);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      return envelope_error("attribute '" + name + "' is given by more than one ce- header; which one counts would be ambiguous");
    seen.push_back(name);
    auto value = percent_decode(raw_value);
    if (!value) return envelope_error("header '" + raw_name + "' has an invalid percent-encoding");
    if (auto r = check_text(*value, "header '" + raw_name + "' (percent-decoded)")) return r;
    if (name == "specversion") {
      out.specversion = std::move(*value);
      have_spec = true;
    } else if (name == "id") {
      out.id = std::move(*value);
      have_id = true;
    } else if (name == "source") {
      out.source = std::move(*value);
      have_source = true;
    } else if (name == "type") {
      out.type = std::move(*value);
      have_type = true;
    } else if (name == "datacontenttype") {
      out.datacontenttype = std::move(*value);
    } else if (name == "dataschema") {
      out.dataschema = std::move(*value);
    } else if (name == "subject") {
      out.subject = std::move(*value);
    } else if (name == "time") {
      out.time_us = parse_rfc3339_us(*value);
      if (!out.time_us) return envelope_error("ce-time '" + *value + "' is not an RFC 3339 timestamp");
    } else {
      if (!is_valid_extension_name(name))
        return envelope_error("header '" + raw_name + "' does not name a valid extension attribute");
      out.extensions.push_back({std::move(name), ce_extension::kind::string, std::move(*value)});
    }
  }
  if (!have_spec) return envelope_error("binary mode requires the ce-specversion header");
  if (!have_id || out.id.empty()) return envelope_error("binary mode requires a non-empty ce-id header");
  if (!have_source || out.source.empty())
    return envelope_error("binary mode requires a non-empty ce-source header");
  if (!have_type || out.type.empty()) return envelope_error("binary mode requires a non-empty ce-type header");
  if (!out.datacontenttype && content_type) out.datacontenttype = content_type;
  for (auto* opt : {&out.datacontenttype, &out.dataschema, &out.subject})
    if (*opt && (*opt)->empty()) return envelope_error("optional attributes must not be empty when present");
  return check_optional_attributes(out);
}

}  // namespace trail
