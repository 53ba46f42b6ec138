#include "api/http_server.h"

#include <httplib.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "api/mcp_routes.h"
#include "api/query_routes.h"
#include "api/viewer_routes.h"
#include "common/log.h"

namespace trail {

bool split_host_port(const std::string& addr, std::string& host, int& port) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos) return false;
  host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  try {
    size_t used = 0;
    port = std::stoi(addr.substr(colon + 1), &used);
    return used == addr.size() - colon - 1 && port >= 0 && port <= 65535;
  } catch (...) {
    return false;
  }
}

http_listener::http_listener() : server_(std::make_unique<httplib::Server>()) {
  // A response goes out as headers then body: without TCP_NODELAY, Nagle's
  // algorithm holds the body until the client's delayed ACK, ~40 ms per
  // keep-alive request.
  server_->set_tcp_nodelay(true);
}

http_listener::~http_listener() { stop(); }

bool http_listener::start(const char* component, const char* setting, const std::string& addr) {
  std::string host;
  int port = 0;
  if (!split_host_port(addr, host, port)) {
    log::error(component, std::string(setting) + " is not host:port", {{"addr", addr}});
    return false;
  }
  if (!server_->bind_to_port(host.c_str(), port)) {
    log::error(component, "cannot listen", {{"addr", addr}});
    return false;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  log::info(component, "listening", {{"addr", addr}});
  return true;
}

int http_listener::start_loopback(const char* component) {
  const int port = server_->bind_to_any_port("127.0.0.1");
  if (port <= 0) {
    log::error(component, "cannot listen on a loopback port");
    return -1;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  log::debug(component, "listening on loopback", {{"port", port}});
  return port;
}

void http_listener::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

http_server::http_server(health& h, query_routes* routes, mcp_routes* mcp) : health_(h), routes_(routes), mcp_(mcp) {}

http_server::~http_server() { stop(); }

bool http_server::start(const std::string& addr) {
  auto& server = listener_.server();
  if (routes_) {
    routes_->install(server);
    install_viewer(server);
  }
  if (workers_ > 0) {
    const size_t n = workers_;
    server.new_task_queue = [n] { return new httplib::ThreadPool(n); };
  }
  if (mcp_) mcp_->install(server);
  // Unknown routes and methods answer JSON too.
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* code = res.status == 404 ? "not_found" : res.status == 405 ? "method_not_allowed" : "error";
    res.set_content(std::string("{\"code\":\"") + code + "\",\"message\":\"no such route\"}", "application/json");
  });
  // One line per API request, naming its request id (the X-Request-Id the
  // client got); the probes and the OpenAPI document only at debug level.
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    const bool api = req.path.rfind("/v1/tenants/", 0) == 0 || req.path == "/mcp";
    log::write(api ? log::level::info : log::level::debug, "api", "request",
               {{"request_id", res.get_header_value("X-Request-Id")},
                {"method", req.method},
                {"path", req.path},
                {"status", res.status},
                {"remote", req.remote_addr}});
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = health_.ready() && !draining_;
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("status");
    w.String(ready ? "ready" : "not_ready");
    w.Key("nats_connected");
    w.Bool(health_.nats_connected);
    w.Key("consumer_running");
    w.Bool(health_.consumer_running);
    w.Key("postgres_writers_connected");
    w.Int(health_.writers_connected);
    w.Key("postgres_writers");
    w.Int(health_.writers_total);
    w.Key("draining");
    w.Bool(draining_);
    w.EndObject();
    res.status = ready ? 200 : 503;
    res.set_content(sb.GetString(), "application/json");
  });
  return listener_.start("http", "http.addr", addr);
}

void http_server::stop() { listener_.stop(); }

}  // namespace trail
