#pragma once
// Trail's HTTP server (cpp-httplib: a maintained Debian package with its own
// thread pool; handlers may block, they are not actors). Today it serves the
// health endpoints; the query API issue adds its routes here.

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"

namespace trail {
class query_routes;
class mcp_routes;
}

namespace httplib {
class Server;
}

namespace trail {

// One cpp-httplib server on a listener thread of its own (with the library's
// worker pool). Routes are added to server() before start(); stop() returns
// once the listener has exited. Shared by the health and metrics servers.
class http_listener {
 public:
  http_listener();
  ~http_listener();
  httplib::Server& server() { return *server_; }
  // Binds "host:port" and starts listening; false (logged under `component`,
  // naming the `setting`) if the address is malformed or cannot be bound.
  bool start(const char* component, const char* setting, const std::string& addr);
  // Listens on 127.0.0.1 at a port the system picks; that port, or -1.
  int start_loopback(const char* component);
  void stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

class http_server {
 public:
  // `routes`: the query API (/v1/…), when traild serves it; `mcp`: /mcp.
  explicit http_server(health& h, query_routes* routes = nullptr, mcp_routes* mcp = nullptr);
  ~http_server();
  // Starts listening on "host:port" on a thread of its own; false if the
  // address cannot be bound.
  bool start(const std::string& addr);
  void stop();
  // Flipped when shutdown begins: /readyz then answers 503 so that load
  // balancers stop sending work.
  void set_draining() { draining_ = true; }
  // Worker threads of the API listener (before start()): live streams each hold one.
  void set_worker_threads(size_t n) { workers_ = n; }

 private:
  health& health_;
  query_routes* routes_;
  mcp_routes* mcp_;
  http_listener listener_;
  std::atomic<bool> draining_{false};
  size_t workers_ = 0;  // 0: cpp-httplib's default
};

// Splits "host:port" ("[::1]:80" and ":80" too); false if malformed.
bool split_host_port(const std::string& addr, std::string& host, int& port);

}  // namespace trail
