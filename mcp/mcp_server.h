#pragma once
// Trail's MCP server, the protocol side: JSON-RPC 2.0 messages in, answers
// out, for any transport (api/mcp_routes.h serves it as Streamable HTTP on
// the API port; `trailctl mcp` over stdio). It holds no ledger access of its
// own: every tool and resource is one or a few calls of the HTTP query API,
// made through `api_fn` with the caller's own credentials, so an agent gets
// exactly the authentication, tenant isolation, validation and meta-audit
// of the HTTP API and nothing more. Thread-safe: handle() keeps no state
// between messages (the transport keeps what a session needs).

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trail::mcp {

// One call of the HTTP API.
struct api_request {
  std::string method = "GET";  // GET or POST
  std::string target;          // path and query, e.g. /v1/tenants/acme/events?page_size=50
  std::string body;            // POST only
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, a 200 answer's body is handed over in pieces as it arrives
  // (an export), and reading stops when it returns false; other answers
  // still land in api_response::body.
  std::function<bool(std::string_view)> sink;
};

struct api_response {
  int status = 0;      // 0: the API could not be reached (`error` says why)
  std::string body;
  std::string error;
  bool cut = false;    // the sink stopped the reading
};

using api_fn = std::function<api_response(const api_request&)>;

// Who is asking, as far as the transport knows.
struct caller {
  std::vector<std::string> tenants;  // the tenants the credentials name (resources/list lists their timelines)
  std::string default_tenant;        // used when a call names no tenant_id ("" : it must name one)
  std::string authorization;         // the Authorization header every API call carries ("" : none)
};

struct server_options {
  std::string version;             // serverInfo.version
  int64_t export_max_rows = 10000; // what one export_events may return
  size_t export_max_bytes = 16u << 20;
  int timeline_page = 50;          // events per page of the timeline and activity resources
};

// The protocol versions Trail speaks, newest first; initialize answers the
// client's version when it is one of them, else the newest.
const std::vector<std::string>& protocol_versions();
bool supported_version(std::string_view v);

// What a transport needs to know of a message before handling it.
enum class message_kind { invalid, initialize, request, notification, response, batch };
message_kind classify(std::string_view message);

// A JSON-RPC error object's answer with a null id (a transport's refusal).
std::string error_message(int code, const std::string& message);

class server {
 public:
  server(api_fn api, server_options opt);
  // One message; the answer, or "" for a notification or a response.
  // After a successful initialize, `*negotiated` holds the version agreed.
  std::string handle(std::string_view message, const caller& who, std::string* negotiated = nullptr) const;

 private:
  api_fn api_;
  server_options opt_;
};

}  // namespace trail::mcp
