#include "api/viewer_routes.h"

#include "api/http_types.h"

#include <string_view>

namespace trail {

// viewer/*, compiled in (api/embed_text.cmake).
std::string_view viewer_index_html();
std::string_view viewer_app_js();
std::string_view viewer_app_css();

namespace {

constexpr const char* kPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void serve(http_response& res, std::string_view body, const char* type) {
  res.set_header("Content-Security-Policy", kPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cache-Control", "no-cache");
  res.set_content(body.data(), body.size(), type);
}

}  // namespace

void install_viewer(http_router& server) {
  server.Get("/ui", [](const http_request&, http_response& res) { res.set_redirect("/ui/"); });
  server.Get("/ui/", [](const http_request&, http_response& res) {
    serve(res, viewer_index_html(), "text/html; charset=utf-8");
  });
  server.Get("/ui/app.js", [](const http_request&, http_response& res) {
    serve(res, viewer_app_js(), "text/javascript; charset=utf-8");
  });
  server.Get("/ui/app.css", [](const http_request&, http_response& res) {
    serve(res, viewer_app_css(), "text/css; charset=utf-8");
  });
}

}  // namespace trail
