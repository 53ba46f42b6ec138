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

const std::string* inbound_message::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) return &v;
  return nullptr;
}

}  // namespace trail
