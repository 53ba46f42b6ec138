#include "api/metrics_server.h"

#include <httplib.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "api/http_server.h"
#include "common/log.h"

namespace trail {

metrics_server::metrics_server(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)), server_(std::make_unique<httplib::Server>()) {}

metrics_server::~metrics_server() { stop(); }

bool metrics_server::start(const std::string& addr) {
  std::string host;
  int port = 0;
  if (!split_host_port(addr, host, port)) {
    log::error("metrics", "metrics.addr is not host:port", {{"addr", addr}});
    return false;
  }
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus::TextSerializer().Serialize(registry_->Collect()), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (!server_->bind_to_port(host.c_str(), port)) {
    log::error("metrics", "cannot listen", {{"addr", addr}});
    return false;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  log::info("metrics", "listening", {{"addr", addr}});
  return true;
}

void metrics_server::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace trail
