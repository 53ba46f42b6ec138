#include "decode/audit_event.h"

#include <strings.h>

#include "decode/message.h"
#include "decode/rejection.h"

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

const std::string* find_header(const header_list& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) return &v;
  return nullptr;
}

size_t count_header(const header_list& headers, std::string_view name) {
  size_t n = 0;
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) ++n;
  return n;
}

}  // namespace trail
