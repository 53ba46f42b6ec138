#pragma once
// Trail's HTTP server (cpp-httplib: a maintained Debian package with its own
// thread pool; handlers may block, they are not actors). Today it serves the
// health endpoints; the query API issue adds its routes here.

#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"

namespace httplib {
class Server;
}

namespace trail {

class http_server {
 public:
  explicit http_server(health& h);
  ~http_server();
  // Starts listening on "host:port" on a thread of its own; false if the
  // address cannot be bound.
  bool start(const std::string& addr);
  void stop();
  // Flipped when shutdown begins: /readyz then answers 503 so that load
  // balancers stop sending work.
  void set_draining() { draining_ = true; }

 private:
  health& health_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> draining_{false};
};

// Splits "host:port" ("[::1]:80" and ":80" too); false if malformed.
bool split_host_port(const std::string& addr, std::string& host, int& port);

}  // namespace trail
