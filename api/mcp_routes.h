#pragma once
// MCP's Streamable HTTP transport on the API port: POST /mcp takes one
// JSON-RPC message and answers it as application/json (or 202 for a
// notification); GET and DELETE answer 405 (Trail sends no server-initiated
// messages, and sessions end with their credentials, see below). Each
// request is checked in this order: Host and Origin against the allow-lists
// (DNS-rebinding protection, 403), Accept and Content-Type, the bearer token
// (the API's authenticator, 401), MCP-Protocol-Version (400 when
// unsupported), then, after initialize, Mcp-Session-Id (400 when missing, 404
// when not one of ours). A session id is stateless: the negotiated version,
// the time and a tag of the caller's subject, HMAC-signed with the
// installation's key, so any replica behind a Service accepts it and it is
// worthless with another caller's token. The messages themselves are
// mcp/mcp_server.h's; its calls of the query API go, with the caller's own
// Authorization header, to a loopback listener of the same routes (see
// traild.cc), whose worker pool is separate from this one.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/auth.h"
#include "api/http_types.h"
#include "mcp/mcp_server.h"


namespace trail {

struct mcp_http_options {
  std::vector<std::string> allowed_hosts;    // names (no port) the Host header may carry; "*": any
  std::vector<std::string> allowed_origins;  // Origin values accepted besides those whose host is allowed
};

class mcp_routes {
 public:
  mcp_routes(const authenticator& auth, const mcp::server& server, mcp_http_options opt,
             std::function<int64_t()> clock_s = {});
  void install(http_router& server);
  // The installation's key: sessions are issued and accepted from then on.
  void set_session_secret(const std::string& secret);

 private:
  std::string session_id(const std::string& version, const principal& who) const;
  // The version a session id names, or "" if it is not ours or not this caller's.
  std::string check_session(const std::string& id, const principal& who) const;
  std::shared_ptr<const std::string> secret() const;

  const authenticator& auth_;
  const mcp::server& server_;
  const mcp_http_options opt_;
  std::function<int64_t()> clock_s_;
  mutable std::mutex secret_mu_;
  std::shared_ptr<const std::string> secret_;
};

// Comma-separated list, trimmed, empty items dropped.
std::vector<std::string> split_names(const std::string& list);

// The query API over HTTP at `base_url` (http://host:port): what the MCP
// server calls, in traild (the loopback listener) and in `trailctl mcp`.
mcp::api_fn http_api(const std::string& base_url);

}  // namespace trail
