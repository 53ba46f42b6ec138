#pragma once
// Small helpers the route files share: JSON error bodies and the raw query
// string.

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

#include "api/http_types.h"

namespace trail {

// {"code": …, "message": …} with `status`.
inline void send_error(http_response& res, int status, const char* code, const std::string& message) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("code");
  w.String(code);
  w.Key("message");
  w.String(message.c_str(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  res.status = status;
  res.set_content(sb.GetString(), sb.GetSize(), "application/json");
}

// The query string as sent (what an access event records).
inline std::string query_of(const http_request& req) {
  const auto q = req.target.find('?');
  return q == std::string::npos ? std::string() : req.target.substr(q + 1);
}

}  // namespace trail
