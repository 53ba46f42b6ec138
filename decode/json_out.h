#pragma once
// RapidJSON's Writer straight into a std::string: JSON is rendered where it is
// kept (an event's arena, a publish buffer) with no intermediate buffer.

#include <rapidjson/writer.h>

#include <string>
#include <string_view>

namespace trail {

struct string_out {
  using Ch = char;
  std::string* s;
  void Put(char c) { s->push_back(c); }
  void Flush() {}
};

using json_out = rapidjson::Writer<string_out>;

inline void write_string(json_out& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }
inline void write_key(json_out& w, std::string_view s) { w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

}  // namespace trail

namespace rapidjson {
// Reserve once per string rather than check capacity per character.
template <>
inline void PutReserve(trail::string_out& o, size_t n) {
  o.s->reserve(o.s->size() + n);
}
template <>
inline void PutUnsafe(trail::string_out& o, char c) {
  o.s->push_back(c);
}
}  // namespace rapidjson
