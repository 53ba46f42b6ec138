#include "decode/json_limits.h"

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace trail {
namespace {

constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

using input = rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream>;

// Counts depth and values; says which bound stopped the parse.
struct bound_counter {
  const json_bounds& bounds;
  size_t depth = 0;
  size_t values = 0;
  std::string exceeded;

  bool value() {
    if (++values <= bounds.max_values) return true;
    exceeded = "more than " + std::to_string(bounds.max_values) + " JSON values";
    return false;
  }
  bool open() {
    if (!value()) return false;
    if (++depth <= bounds.max_depth) return true;
    exceeded = "JSON nesting is deeper than " + std::to_string(bounds.max_depth);
    return false;
  }
};

// The document's own handler, behind the counter.
struct bounded_builder {
  rapidjson::Document& doc;
  bound_counter count;

  bool Null() { return count.value() && doc.Null(); }
  bool Bool(bool b) { return count.value() && doc.Bool(b); }
  bool Int(int i) { return count.value() && doc.Int(i); }
  bool Uint(unsigned u) { return count.value() && doc.Uint(u); }
  bool Int64(int64_t i) { return count.value() && doc.Int64(i); }
  bool Uint64(uint64_t u) { return count.value() && doc.Uint64(u); }
  bool Double(double d) { return count.value() && doc.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return count.value() && doc.RawNumber(s, n, copy); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return count.value() && doc.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc.Key(s, n, copy); }
  bool StartObject() { return count.open() && doc.StartObject(); }
  bool EndObject(rapidjson::SizeType n) {
    --count.depth;
    return doc.EndObject(n);
  }
  bool StartArray() { return count.open() && doc.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --count.depth;
    return doc.EndArray(n);
  }
};

std::string parse_error(const rapidjson::ParseResult& r, const std::string& exceeded) {
  if (!exceeded.empty()) return exceeded;
  return "invalid JSON at offset " + std::to_string(r.Offset()) + ": " + rapidjson::GetParseError_En(r.Code());
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The elements of the top-level array: each one's range is found when it
// ends (at depth 1), starting at the first byte after the previous element's
// end that is neither whitespace nor the separating comma. (The iterative
// reader calls StartArray and EndObject/EndArray before it takes the bracket,
// and a scalar's handler after it took the whole scalar.)
struct array_splitter {
  std::string_view text;
  const input& in;
  bound_counter count;
  size_t max_elements;
  std::vector<std::pair<size_t, size_t>>& elements;
  size_t previous_end = 0;
  bool root_seen = false;
  std::string refused;

  bool element_ends(bool bracketed) {
    if (count.depth != 1) return true;
    const size_t end = in.Tell() + (bracketed ? 1 : 0);
    size_t start = previous_end;
    while (start < end && (is_space(text[start]) || text[start] == ',')) ++start;
    if (elements.size() >= max_elements) {
      refused = "more than " + std::to_string(max_elements) + " elements";
      return false;
    }
    elements.emplace_back(start, end - start);
    previous_end = end;
    return true;
  }
  bool scalar() {
    if (!root_seen) {
      refused = "the body is not a JSON array";
      return false;
    }
    return count.value() && element_ends(false);
  }
  bool Null() { return scalar(); }
  bool Bool(bool) { return scalar(); }
  bool Int(int) { return scalar(); }
  bool Uint(unsigned) { return scalar(); }
  bool Int64(int64_t) { return scalar(); }
  bool Uint64(uint64_t) { return scalar(); }
  bool Double(double) { return scalar(); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return scalar(); }
  bool String(const char*, rapidjson::SizeType, bool) { return scalar(); }
  bool Key(const char*, rapidjson::SizeType, bool) { return true; }
  bool StartObject() {
    if (!root_seen) {
      refused = "the body is not a JSON array";
      return false;
    }
    return count.open();
  }
  bool EndObject(rapidjson::SizeType) {
    --count.depth;
    return element_ends(true);
  }
  bool StartArray() {
    if (!root_seen) {
      root_seen = true;
      ++count.depth;  // the root: not an element, not counted
      previous_end = in.Tell() + 1;
      return true;
    }
    return count.open();
  }
  bool EndArray(rapidjson::SizeType) {
    --count.depth;
    return count.depth == 0 || element_ends(true);
  }
};

}  // namespace

bool parse_json_bounded(rapidjson::Document& doc, std::string_view text, const json_bounds& bounds, std::string* error) {
  rapidjson::MemoryStream ms(text.data(), text.size());
  input in(ms);
  bounded_builder builder{doc, bound_counter{bounds}};
  rapidjson::ParseResult result;
  auto generate = [&](rapidjson::Document&) {
    rapidjson::Reader reader;
    result = reader.Parse<kFlags>(in, builder);
    return !result.IsError();
  };
  doc.Populate(generate);
  if (!result.IsError()) return true;
  doc.SetNull();
  if (error) *error = parse_error(result, builder.count.exceeded);
  return false;
}

bool split_json_array(std::string_view text, const json_bounds& bounds, size_t max_elements,
                      std::vector<std::pair<size_t, size_t>>& elements, std::string* error) {
  elements.clear();
  rapidjson::MemoryStream ms(text.data(), text.size());
  input in(ms);
  array_splitter splitter{text, in, bound_counter{bounds}, max_elements, elements};
  rapidjson::Reader reader;
  const rapidjson::ParseResult result = reader.Parse<kFlags>(in, splitter);
  if (!result.IsError() && splitter.root_seen) return true;
  elements.clear();
  if (error) {
    if (!splitter.refused.empty()) *error = splitter.refused;
    else if (!result.IsError()) *error = "the body is not a JSON array";
    else *error = parse_error(result, splitter.count.exceeded);
  }
  return false;
}

}  // namespace trail
