#include "api/change_diff.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <set>

namespace trail {
namespace {

using writer = rapidjson::Writer<rapidjson::StringBuffer>;
using value = rapidjson::Value;

std::string pointer_token(std::string_view key) {
  std::string t;
  for (char c : key) {
    if (c == '~') t += "~0";
    else if (c == '/') t += "~1";
    else t += c;
  }
  return t;
}

void change(writer& w, const std::string& path, const value* before, const value* after) {
  w.StartObject();
  w.Key("field");
  w.String(path.c_str(), static_cast<rapidjson::SizeType>(path.size()));
  if (before) {
    w.Key("old");
    before->Accept(w);
  }
  if (after) {
    w.Key("new");
    after->Accept(w);
  }
  w.EndObject();
}

// Leaves of `before` and `after` that differ, in key order.
// An absent side (nullptr) of an object is walked as an empty object, so a
// created or removed object lists its leaves.
void walk(writer& w, const std::string& path, const value* before, const value* after) {
  const bool objects = (before || after) && (!before || before->IsObject()) && (!after || after->IsObject());
  if (objects) {
    std::set<std::string_view> keys;
    if (before)
      for (const auto& m : before->GetObject()) keys.emplace(m.name.GetString(), m.name.GetStringLength());
    if (after)
      for (const auto& m : after->GetObject()) keys.emplace(m.name.GetString(), m.name.GetStringLength());
    auto find = [](const value* v, const value& name) -> const value* {
      if (!v) return nullptr;
      auto it = v->FindMember(name);
      return it == v->MemberEnd() ? nullptr : &it->value;
    };
    for (std::string_view k : keys) {
      const value name(rapidjson::StringRef(k.data(), static_cast<rapidjson::SizeType>(k.size())));
      walk(w, path + "/" + pointer_token(k), find(before, name), find(after, name));
    }
    return;
  }
  if (before && after && *before == *after) return;
  if (!before && !after) return;
  change(w, path, before, after);
}

}  // namespace

bool render_change_diff(std::string_view tenant, int64_t sequence, std::string_view changes_json, std::string& out) {
  rapidjson::Document d;
  if (!changes_json.empty()) {
    d.Parse(changes_json.data(), changes_json.size());
    if (d.HasParseError() || !d.IsObject()) return false;
  }
  auto member = [&d, &changes_json](const char* name) -> const value* {
    if (changes_json.empty()) return nullptr;
    auto it = d.FindMember(name);
    return it == d.MemberEnd() ? nullptr : &it->value;
  };
  // A null side is no side: the object was created (or removed).
  auto side = [](const value* v) { return v && !v->IsNull() ? v : nullptr; };
  const value* before = side(member("old_value"));
  const value* after = side(member("new_value"));
  const value* fields = member("changed_fields");
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  w.Key("tenant_id");
  w.String(tenant.data(), static_cast<rapidjson::SizeType>(tenant.size()));
  w.Key("sequence");
  w.Int64(sequence);
  w.Key("has_changes");
  w.Bool(!changes_json.empty());
  w.Key("old_value");
  before ? before->Accept(w) : w.Null();
  w.Key("new_value");
  after ? after->Accept(w) : w.Null();
  w.Key("changed_fields");
  if (fields && fields->IsArray()) fields->Accept(w);
  else {
    w.StartArray();
    w.EndArray();
  }
  w.Key("fields");
  w.StartArray();
  walk(w, "", before, after);
  w.EndArray();
  w.EndObject();
  out.append(sb.GetString(), sb.GetSize());
  return true;
}

}  // namespace trail
