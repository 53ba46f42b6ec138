#pragma once
// traild's API listener on http.addr (api/http_listener.h): the health
// endpoints, the query API, the viewer and /mcp, with the listener's bounds
// and a check of the caller's credentials before any request body is read.

#include <atomic>
#include <string>

#include "api/http_listener.h"
#include "common/metrics.h"

namespace trail {
class authenticator;
class query_routes;
class mcp_routes;

class http_server {
 public:
  // `routes`: the query API (/v1/…), when traild serves it; `mcp`: /mcp;
  // `auth`: checks the Authorization header of a request with a body before
  // the body is read (none: bodies are read for the handler to judge).
  http_server(health& h, http_limits limits, query_routes* routes = nullptr, mcp_routes* mcp = nullptr,
              const authenticator* auth = nullptr);
  ~http_server();
  // Starts listening on "host:port"; false if the address cannot be bound.
  bool start(const std::string& addr);
  void stop();
  // Flipped when shutdown begins: /readyz then answers 503 so that load
  // balancers stop sending work.
  void set_draining() { draining_ = true; }

 private:
  health& health_;
  query_routes* routes_;
  mcp_routes* mcp_;
  const authenticator* auth_;
  http_listener listener_;
  std::atomic<bool> draining_{false};
};

// The same routes' answer to "may this request's body be read?": "" when
// its Authorization header authenticates, else why not (for the log).
body_admission bearer_admission(const authenticator& auth);

}  // namespace trail
