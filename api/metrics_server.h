#pragma once
// Serves GET /metrics (Prometheus text format 0.0.4) on metrics.addr, from
// the process's prometheus-cpp registry, with cpp-httplib like the rest of
// Trail's HTTP. (prometheus-cpp's own exposer embeds civetweb, whose
// listener wakes only every 2 s: stopping it held every shutdown for up to
// 2 s.) A scrape only reads metrics.

#include <memory>
#include <string>

#include "api/http_server.h"

namespace prometheus {
class Registry;
}

namespace trail {

class metrics_server {
 public:
  explicit metrics_server(std::shared_ptr<prometheus::Registry> registry);
  ~metrics_server();
  // Listens on "host:port" on a thread of its own; false if the address
  // cannot be bound.
  bool start(const std::string& addr);
  void stop();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  http_listener listener_;
};

}  // namespace trail
