#include "api/metrics_server.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>

namespace trail {

http_limits metrics_limits(http_limits api) {
  http_limits l = api;
  l.max_connections = std::min<size_t>(api.max_connections, 64);
  l.max_connections_per_address = std::min<size_t>(api.max_connections_per_address, 16);
  l.max_body_bytes = 0;  // GET only: any body is refused by its Content-Length
  l.worker_threads = 2;
  l.queue_max = 16;
  return l;
}

metrics_server::metrics_server(std::shared_ptr<prometheus::Registry> registry, http_limits limits)
    : registry_(std::move(registry)), listener_("metrics", limits) {}

metrics_server::~metrics_server() { stop(); }

bool metrics_server::start(const std::string& addr) {
  listener_.router().Get("/metrics", [this](const http_request&, http_response& res) {
    res.set_content(prometheus::TextSerializer().Serialize(registry_->Collect()), "text/plain; version=0.0.4; charset=utf-8");
  });
  return listener_.start("metrics.addr", addr);
}

void metrics_server::stop() { listener_.stop(); }

}  // namespace trail
