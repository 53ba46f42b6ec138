#pragma once
// The meta-audit: every read of a tenant's trail (list, get, diff, export,
// catch-up) and every refused request of an authenticated caller becomes an
// audit event in that tenant's own trail, published through the normal
// pipeline. This renders that event (a structured CloudEvent). Pure.

#include <cstdint>
#include <string>
#include <string_view>

namespace trail {

struct access_record {
  std::string request_id;  // the event's id, and metadata.request_id
  std::string tenant;
  std::string subject;     // the token's sub (an API key: "api-key:<name>")
  bool api_key = false;
  std::string action;      // audit.events.list, audit.events.get, audit.events.diff, audit.events.export, audit.access.denied
  bool denied = false;
  std::string path;
  std::string query;       // the request's query string, as sent
  int64_t rows = -1;       // events returned; -1 when not known (an export, a denial)
  std::string via;         // "mcp" for a read an agent made through /mcp; "" for the HTTP API itself
  int64_t time_us = 0;
};

// The CloudEvent (structured mode) for `r`.
std::string render_access_event(const access_record& r);

}  // namespace trail
