#pragma once
// What the decoder reads of a broker message: its body, its headers and its
// place in the stream. A view: the broker's message (common/record.h,
// inbound_message) owns the bytes.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trail {

using header_list = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup: the first value, or nullptr when absent.
const std::string* find_header(const header_list& headers, std::string_view name);
// How many values a header has (case-insensitive name).
size_t count_header(const header_list& headers, std::string_view name);

struct message_view {
  std::string_view data;              // the body
  const header_list* headers = nullptr;
  size_t header_wire_bytes = 0;       // the header block's size on the wire
  uint64_t stream_seq = 0;            // position in the stream (a bare event's identity derives from it)
  int64_t stream_time_us = 0;         // when the broker stored it: the occurred_at of last resort

  const std::string* header(std::string_view name) const { return headers ? find_header(*headers, name) : nullptr; }
};

}  // namespace trail
