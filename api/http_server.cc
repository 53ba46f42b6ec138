#include "api/http_server.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "api/auth.h"
#include "api/mcp_routes.h"
#include "api/query_routes.h"
#include "api/viewer_routes.h"
#include "common/log.h"
#include "common/time.h"

namespace trail {

body_admission bearer_admission(const authenticator& auth) {
  return [&auth](const http_request& head) -> std::string {
    auth_failure why;
    if (auth.authenticate(head.get_header_value("Authorization"), now_unix_us() / 1000000, &why)) return {};
    log::limited(log::level::info, "api", "request refused before its body was read: not authenticated",
                 {{"path", head.path}, {"remote", head.remote_addr}, {"reason", why.message}});
    return "a valid bearer token is required";
  };
}

http_server::http_server(health& h, http_limits limits, query_routes* routes, mcp_routes* mcp, const authenticator* auth)
    : health_(h), routes_(routes), mcp_(mcp), auth_(auth), listener_("http", limits) {}

http_server::~http_server() { stop(); }

bool http_server::start(const std::string& addr) {
  auto& server = listener_.router();
  if (routes_) {
    routes_->install(server);
    install_viewer(server);
  }
  if (mcp_) mcp_->install(server);
  if (auth_) listener_.set_body_admission(bearer_admission(*auth_));
  // One line per API request, naming its request id (the X-Request-Id the
  // client got); the probes and the OpenAPI document only at debug level.
  listener_.set_access_log([](const http_request& req, const http_response& res) {
    const bool api = req.path.rfind("/v1/tenants/", 0) == 0 || req.path == "/mcp";
    log::write(api ? log::level::info : log::level::debug, "api", "request",
               {{"request_id", res.get_header_value("X-Request-Id")},
                {"method", req.method},
                {"path", req.path},
                {"status", res.status},
                {"remote", req.remote_addr}});
  });
  server.Get("/healthz", [](const http_request&, http_response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  server.Get("/readyz", [this](const http_request&, http_response& res) {
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
    res.set_content(std::string(sb.GetString(), sb.GetSize()), "application/json");
  });
  return listener_.start("http.addr", addr);
}

void http_server::stop() { listener_.stop(); }

}  // namespace trail
