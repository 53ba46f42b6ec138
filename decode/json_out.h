#pragma once
// RapidJSON's Writer into a reusable StringBuffer (a pointer bump per
// character), from which the finished text is copied once to where it is kept.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <string>
#include <string_view>

namespace trail {

using json_out = rapidjson::Writer<rapidjson::StringBuffer>;

inline void write_string(json_out& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }
inline void write_key(json_out& w, std::string_view s) { w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

// Text already in JSON form, appended as is (object members spliced into an
// object being written: only after a member, so that the writer puts the
// comma before whatever member follows).
inline void append_raw(rapidjson::StringBuffer& sb, std::string_view raw) {
  std::memcpy(sb.Push(raw.size()), raw.data(), raw.size());
}

inline std::string_view text_of(const rapidjson::StringBuffer& sb) { return {sb.GetString(), sb.GetSize()}; }

}  // namespace trail
