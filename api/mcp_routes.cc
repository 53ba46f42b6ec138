#include "api/mcp_routes.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <strings.h>

#include <algorithm>

#include "common/log.h"
#include "common/metrics.h"
#include "common/sha256.h"
#include "common/time.h"

namespace trail {
namespace {

using Request = http_request;
using Response = http_response;

constexpr size_t kMaxMessageBytes = 4u << 20;

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// "host:port", "[::1]:port", "host" → the host name, lower case, without brackets.
std::string host_name(const std::string& authority) {
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    return close == std::string::npos ? "" : lower(authority.substr(1, close - 1));
  }
  return lower(authority.substr(0, authority.find(':')));
}

void refuse(Response& res, int status, int code, const std::string& message) {
  res.status = status;
  res.set_content(mcp::error_message(code, message), "application/json");
}

prometheus::Counter& requests(const char* outcome) {
  static auto& family = metrics::counter_family(
      "trail_mcp_requests_total", "MCP messages over HTTP, by outcome: answered, accepted (a notification), refused (before the message was read)");
  return family.Add({{"outcome", outcome}});
}

}  // namespace

std::vector<std::string> split_names(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    const auto first = item.find_first_not_of(" \t");
    const auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

mcp_routes::mcp_routes(const authenticator& auth, const mcp::server& server, mcp_http_options opt,
                       std::function<int64_t()> clock_s)
    : auth_(auth), server_(server), opt_(std::move(opt)), clock_s_(std::move(clock_s)) {
  if (!clock_s_) clock_s_ = [] { return now_unix_us() / 1000000; };
}

void mcp_routes::set_session_secret(const std::string& secret) {
  auto s = std::make_shared<const std::string>(secret);
  std::lock_guard<std::mutex> lock(secret_mu_);
  secret_ = std::move(s);
}

std::shared_ptr<const std::string> mcp_routes::secret() const {
  std::lock_guard<std::mutex> lock(secret_mu_);
  return secret_;
}

namespace {

std::string subject_tag(const principal& who) {
  const auto d = sha256(who.kind + ":" + who.subject);
  return hex(d.data(), 8);
}

std::string sign(const std::string& secret, const std::string& payload) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(payload.data()),
       payload.size(), mac, &len);
  return hex(mac, 16);
}

}  // namespace

// "m1.<version>.<unix s>.<subject tag>.<mac>": visible ASCII, as the transport requires.
std::string mcp_routes::session_id(const std::string& version, const principal& who) const {
  const auto key = secret();
  const std::string payload = "m1." + version + "." + std::to_string(clock_s_()) + "." + subject_tag(who);
  return payload + "." + sign(*key, payload);
}

std::string mcp_routes::check_session(const std::string& id, const principal& who) const {
  const auto key = secret();
  const auto dot = id.rfind('.');
  if (!key || dot == std::string::npos) return "";
  const std::string payload = id.substr(0, dot);
  const std::string mac = id.substr(dot + 1);
  const std::string want = sign(*key, payload);
  if (mac.size() != want.size() || CRYPTO_memcmp(mac.data(), want.data(), want.size()) != 0) return "";
  // m1 . version . time . tag
  const auto a = payload.find('.'), b = payload.find('.', a + 1), c = payload.find('.', b + 1);
  if (a == std::string::npos || b == std::string::npos || c == std::string::npos || payload.substr(0, a) != "m1") return "";
  if (payload.substr(c + 1) != subject_tag(who)) return "";
  return payload.substr(a + 1, b - a - 1);
}

void mcp_routes::install(http_router& server) {
  // Host and Origin first: a page of another site that resolved its name to
  // this address is refused before anything else is looked at.
  auto allowed = [this](const Request& req, Response& res) {
    const bool any_host = std::find(opt_.allowed_hosts.begin(), opt_.allowed_hosts.end(), "*") != opt_.allowed_hosts.end();
    auto host_ok = [&](const std::string& name) {
      return any_host || std::find(opt_.allowed_hosts.begin(), opt_.allowed_hosts.end(), name) != opt_.allowed_hosts.end();
    };
    const std::string host = host_name(req.get_header_value("Host"));
    if (!host_ok(host)) {
      log::limited(log::level::info, "mcp", "request refused: Host not allowed (mcp.allowed_hosts)", {{"host", host}});
      requests("refused").Increment();
      refuse(res, 403, -32000, "Forbidden: Host " + host + " is not allowed (mcp.allowed_hosts)");
      return false;
    }
    if (req.has_header("Origin")) {
      const std::string origin = req.get_header_value("Origin");
      const auto scheme = origin.find("://");
      const std::string name = scheme == std::string::npos ? "" : host_name(origin.substr(scheme + 3));
      const bool exact = std::find(opt_.allowed_origins.begin(), opt_.allowed_origins.end(), origin) != opt_.allowed_origins.end();
      if (!exact && (name.empty() || !host_ok(name))) {
        log::limited(log::level::info, "mcp", "request refused: Origin not allowed (mcp.allowed_origins)", {{"origin", origin}});
        requests("refused").Increment();
        refuse(res, 403, -32000, "Forbidden: Origin " + origin + " is not allowed (mcp.allowed_origins)");
        return false;
      }
    }
    return true;
  };

  server.Post("/mcp", [this, allowed](const Request& req, Response& res) {
    if (!allowed(req, res)) return;
    const std::string accept = req.get_header_value("Accept");
    if (!accept.empty() && accept.find("application/json") == std::string::npos && accept.find("*/*") == std::string::npos &&
        accept.find("application/*") == std::string::npos) {
      requests("refused").Increment();
      return refuse(res, 406, -32000, "Not Acceptable: answers are application/json");
    }
    const std::string type = lower(req.get_header_value("Content-Type"));
    if (type.rfind("application/json", 0) != 0) {
      requests("refused").Increment();
      return refuse(res, 415, -32000, "Unsupported Media Type: send one JSON-RPC message as application/json");
    }
    if (req.body.size() > kMaxMessageBytes) {
      requests("refused").Increment();
      return refuse(res, 413, -32000, "a message is at most 4 MiB");
    }
    auth_failure why;
    const auto who = auth_.authenticate(req.get_header_value("Authorization"), clock_s_(), &why);
    if (!who) {
      // Why a token was refused is for the log, not for whoever holds it (as on the REST API).
      log::limited(log::level::info, "mcp", "request refused: not authenticated", {{"reason", why.message}});
      requests("refused").Increment();
      res.set_header("WWW-Authenticate", "Bearer");
      return refuse(res, 401, -32001, "Unauthorized: a valid bearer token is required");
    }
    const std::string version = req.get_header_value("MCP-Protocol-Version");
    if (!version.empty() && !mcp::supported_version(version)) {
      requests("refused").Increment();
      std::string list;
      for (const auto& v : mcp::protocol_versions()) list += (list.empty() ? "" : ", ") + v;
      return refuse(res, 400, -32000, "Bad Request: unsupported MCP-Protocol-Version " + version + " (supported: " + list + ")");
    }
    const mcp::message_kind kind = mcp::classify(req.body);
    if (!secret()) {
      requests("refused").Increment();
      return refuse(res, 503, -32000, "Trail is starting: retry in a moment");
    }
    if (kind != mcp::message_kind::initialize && kind != mcp::message_kind::invalid && kind != mcp::message_kind::batch) {
      const std::string session = req.get_header_value("Mcp-Session-Id");
      if (session.empty()) {
        requests("refused").Increment();
        return refuse(res, 400, -32000, "Bad Request: Mcp-Session-Id header is required (send initialize first)");
      }
      if (check_session(session, *who).empty()) {
        requests("refused").Increment();
        return refuse(res, 404, -32001, "Session not found: initialize a new session");
      }
    }
    mcp::caller c;
    if (!who->all_tenants) c.tenants = who->tenants;
    if (c.tenants.size() == 1) c.default_tenant = c.tenants.front();
    c.authorization = req.get_header_value("Authorization");
    std::string negotiated;
    const std::string answer = server_.handle(req.body, c, &negotiated);
    if (answer.empty()) {
      requests("accepted").Increment();
      res.status = 202;
      return;
    }
    requests("answered").Increment();
    if (!negotiated.empty()) res.set_header("Mcp-Session-Id", session_id(negotiated, *who));
    // A message that could not be read at all is a bad request.
    res.status = kind == mcp::message_kind::invalid || kind == mcp::message_kind::batch ? 400 : 200;
    res.set_content(answer, "application/json");
  }, http_route_limits{kMaxMessageBytes});
  // No server-initiated messages, and no session state to end (a session id
  // is only as good as its caller's credentials).
  auto not_allowed = [allowed](const Request& req, Response& res) {
    if (!allowed(req, res)) return;
    res.set_header("Allow", "POST");
    refuse(res, 405, -32000, "Method Not Allowed: Trail's MCP endpoint takes POST only (no server-initiated stream; "
                             "sessions end with their credentials)");
  };
  server.Get("/mcp", not_allowed);
  server.Delete("/mcp", not_allowed);
}

mcp::api_fn http_api(const std::string& base_url) {
  return [base_url](const mcp::api_request& r) {
    mcp::api_response out;
    httplib::Client cli(base_url);
    cli.set_connection_timeout(5, 0);
    cli.set_read_timeout(300, 0);
    cli.set_write_timeout(30, 0);
    httplib::Headers headers;
    std::string content_type = "application/json";
    for (const auto& [k, v] : r.headers) {
      if (strcasecmp(k.c_str(), "Content-Type") == 0) content_type = v;
      else headers.emplace(k, v);
    }
    if (r.method == "POST") {
      auto res = cli.Post(r.target.c_str(), headers, r.body, content_type.c_str());
      if (!res) return out.error = httplib::to_string(res.error()), out;
      out.status = res->status;
      out.body = std::move(res->body);
      return out;
    }
    if (!r.sink) {
      auto res = cli.Get(r.target.c_str(), headers);
      if (!res) return out.error = httplib::to_string(res.error()), out;
      out.status = res->status;
      out.body = std::move(res->body);
      return out;
    }
    auto res = cli.Get(
        r.target.c_str(), headers,
        [&out](const httplib::Response& head) {
          out.status = head.status;
          return true;
        },
        [&out, &r](const char* data, size_t n) {
          if (out.status != 200) {
            if (out.body.size() < (64u << 10)) out.body.append(data, n);
            return true;
          }
          if (r.sink(std::string_view(data, n))) return true;
          out.cut = true;
          return false;
        });
    if (!res && !out.cut) {
      out.status = 0;
      out.error = httplib::to_string(res.error());
    }
    return out;
  };
}

}  // namespace trail
