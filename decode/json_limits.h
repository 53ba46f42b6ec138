#pragma once
// JSON from an untrusted peer, parsed at a cost bounded before it is spent:
// no recursion (RapidJSON's iterative parser), a nesting depth and a count of
// values enforced while parsing (the parse stops at the first value past a
// bound, so a body of a million '[' or of a million numbers costs what its
// bound allows, not what its shape asks for), and UTF-8 validated.
//
// Used by every reader of HTTP bodies and tokens (api/, mcp/); the stream's
// decoder has its own bounds (decode/event_decoder.h).

#include <rapidjson/document.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trail {

struct json_bounds {
  size_t max_depth = 64;        // arrays and objects nested in one another
  size_t max_values = 200000;   // every value: scalars, arrays, objects, member names excluded
};

// Parses `text` into `doc`; false with `error` ("JSON nesting is deeper than
// 64", "more than 200000 JSON values", "invalid JSON at offset 12: …") when
// it is not one bounded, well-formed UTF-8 JSON text.
bool parse_json_bounded(rapidjson::Document& doc, std::string_view text, const json_bounds& bounds, std::string* error);

// The byte ranges of a top-level JSON array's elements, as sent (so that an
// element can be handed on without being rewritten), checked against
// `bounds` without building a document: false with `error` when `text` is
// not a bounded JSON array, or holds more than `max_elements` elements.
bool split_json_array(std::string_view text, const json_bounds& bounds, size_t max_elements,
                      std::vector<std::pair<size_t, size_t>>& elements, std::string* error);

}  // namespace trail
