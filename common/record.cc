#include "common/record.h"

#include <strings.h>

namespace trail {

std::string header_wire_text(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out;
  if (headers.empty()) return out;
  out.reserve(header_wire_size(headers));
  out.append("NATS/1.0\r\n");
  for (const auto& [k, v] : headers) out.append(k).append(": ").append(v).append("\r\n");
  out += "\r\n";
  return out;
}

size_t header_wire_size(const std::vector<std::pair<std::string, std::string>>& headers) {
  if (headers.empty()) return 0;
  size_t n = sizeof("NATS/1.0\r\n") - 1 + 2;
  for (const auto& [k, v] : headers) n += k.size() + 2 + v.size() + 2;
  return n;
}

int64_t held_bytes_of(const inbound_message& m) {
  // The natsMsg keeps the raw header block, parses it into a map on first
  // use, and the fetch thread copies every pair: three copies. Plus a fixed
  // share for the structures themselves.
  constexpr int64_t kOverhead = 512;
  return static_cast<int64_t>(m.data.size() + 3 * m.header_wire_bytes + 2 * m.subject.size()) + kOverhead;
}

}  // namespace trail
