#include "api/metrics_server.h"

#include <httplib.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace trail {

metrics_server::metrics_server(std::shared_ptr<prometheus::Registry> registry) : registry_(std::move(registry)) {}

metrics_server::~metrics_server() { stop(); }

bool metrics_server::start(const std::string& addr) {
  listener_.server().Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus::TextSerializer().Serialize(registry_->Collect()), "text/plain; version=0.0.4; charset=utf-8");
  });
  return listener_.start("metrics", "metrics.addr", addr);
}

void metrics_server::stop() { listener_.stop(); }

}  // namespace trail
