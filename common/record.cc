#include "common/record.h"

#include <strings.h>

namespace trail {

const char* to_string(ingest_mode m) {
  switch (m) {
    case ingest_mode::structured: return "structured";
    case ingest_mode::binary: return "binary";
    case ingest_mode::batch: return "batch";
    case ingest_mode::bare: return "bare";
  }
  return "unknown";
}

const char* to_string(dlq_reason r) {
  switch (r) {
    case dlq_reason::malformed_json: return "malformed_json";
    case dlq_reason::too_large: return "too_large";
    case dlq_reason::envelope_invalid: return "envelope_invalid";
    case dlq_reason::batch_invalid: return "batch_invalid";
    case dlq_reason::payload_invalid: return "payload_invalid";
    case dlq_reason::unstorable_value: return "unstorable_value";
    case dlq_reason::unsupported_content_type: return "unsupported_content_type";
    case dlq_reason::database_rejected: return "database_rejected";
    case dlq_reason::max_deliver_exceeded: return "max_deliver_exceeded";
  }
  return "unknown";
}

const std::string* inbound_message::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) return &v;
  return nullptr;
}

}  // namespace trail

namespace trail {

size_t inbound_message::header_count(std::string_view name) const {
  size_t n = 0;
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) ++n;
  return n;
}

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
