#pragma once
// Serves GET /metrics (Prometheus text format 0.0.4) on metrics.addr, from
// the process's prometheus-cpp registry, on Trail's own HTTP listener with
// small bounds of its own: a scrape only reads metrics, and a stranger on
// the network may reach this port too. (prometheus-cpp's own exposer embeds
// civetweb, whose listener wakes only every 2 s: stopping it held every
// shutdown for up to 2 s.)

#include <memory>
#include <string>

#include "api/http_listener.h"

namespace prometheus {
class Registry;
}

namespace trail {

class metrics_server {
 public:
  explicit metrics_server(std::shared_ptr<prometheus::Registry> registry, http_limits limits = {});
  ~metrics_server();
  // Listens on "host:port"; false if the address cannot be bound.
  bool start(const std::string& addr);
  void stop();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  http_listener listener_;
};

// A scrape endpoint's bounds from the API's: fewer connections and workers,
// the same deadlines, no bodies.
http_limits metrics_limits(http_limits api);

}  // namespace trail
