// The HTTP surface against hostile clients (docs/SECURITY.md): what one
// request or one connection may cost traild is bounded before it is spent,
// no tenant can erase, starve or read another's, and what a client sent is
// what is stored. Requests go out as raw bytes over sockets the test owns,
// so that malformed, slow, duplicated and oversized requests are sent
// exactly as an attacker would send them. Every case ends by checking that
// traild survived: alive, RSS under 512 MiB, /readyz 200, and a write and a
// read that round-trip.
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api/auth.h"
#include "tests/integration/harness.h"

using namespace trail::test;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "it-hostile-http-secret-0123456789";

std::string token(const std::vector<std::string>& tenants, unsigned scopes, int64_t ttl_s = 600,
                  const std::string& subject = "it-hostile") {
  return trail::issue_hs256_token(kSecret, subject, tenants, scopes, time(nullptr), ttl_s);
}

const unsigned kAll = trail::scope_read | trail::scope_write | trail::scope_export;

// A TCP connection to traild from a chosen loopback address (127.0.0.N), so
// that the per-address bound can be exercised from several "clients".
class conn {
 public:
  explicit conn(int port, const std::string& from = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, from.c_str(), &local.sin_addr);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~conn() { close(); }
  conn(const conn&) = delete;
  conn(conn&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // False once the server has closed its side.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Everything until the server closes or `quiet_ms` pass without a byte
  // (or, given `until`, until that text has arrived).
  std::string receive(int quiet_ms, const std::string& until = "") {
    std::string out;
    char buf[65536];
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, quiet_ms) <= 0) break;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
      if (!until.empty() && out.find(until) != std::string::npos) break;
    }
    return out;
  }
  // One whole answer of a request that carries Content-Length.
  std::string answer(int timeout_ms = 10000) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[65536];
    while (std::chrono::steady_clock::now() < deadline) {
      const size_t head_end = out.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const size_t cl = out.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) {
          const size_t length = std::stoul(out.substr(cl + 16));
          if (out.size() >= head_end + 4 + length) return out;
        }
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Whether the server closed the connection within `timeout_ms`.
  bool closed_within(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[4096];
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      if (::recv(fd_, buf, sizeof buf, 0) <= 0) closed_ = true;
    }
    return closed_;
  }

 private:
  int fd_ = -1;
  bool closed_ = false;
};

int status_of(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(answer.substr(9, 3));
}

std::string body_of(const std::string& answer) {
  const size_t at = answer.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : answer.substr(at + 4);
}

std::string request(const std::string& method, const std::string& target, const std::string& bearer,
                    const std::string& body = "", const std::string& extra_headers = "",
                    const std::string& type = "application/json") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!bearer.empty()) r += "Authorization: Bearer " + bearer + "\r\n";
  if (!body.empty() || method == "POST") r += "Content-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra_headers + "\r\n" + body;
  return r;
}

// One request on a new connection; the whole answer.
std::string roundtrip(int port, const std::string& bytes, int timeout_ms = 15000) {
  conn c(port);
  REQUIRE(c.send(bytes));
  return c.answer(timeout_ms);
}

std::string event_json(const std::string& tenant, const std::string& id, const std::string& extra = "") {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"//it/hostile-http","type":"com.example.audit",)"
         R"("time":"2026-11-20T10:00:00Z","data":{"tenant_id":")" + tenant +
         R"(","action":"doc.read","actor":{"type":"user","id":"u-1"},"primary_resource":{"type":"doc","id":"d-1"})" +
         extra + "}}";
}

std::map<std::string, std::string> traild_env(const std::string& dsn, std::map<std::string, std::string> more = {}) {
  auto env = read_side_env(dsn, kSecret);
  for (auto& [k, v] : more) env[k] = v;
  return env;
}

// What every case ends with: traild is alive, within 512 MiB, ready, and a
// synchronous write and a read of it round-trip.
void check_survived(traild_process& t, const std::string& tenant = "acme") {
  INFO("traild log: " << t.log_path());
  REQUIRE(t.running());
  CHECK(t.rss_bytes() < 512LL * 1024 * 1024);
  int status = 0;
  http_get(t.http_port(), "/readyz", &status);
  CHECK(status == 200);
  static int n = 0;
  const std::string id = "survivor-" + std::to_string(getpid()) + "-" + std::to_string(++n);
  const std::string written =
      roundtrip(t.http_port(), request("POST", "/v1/tenants/" + tenant + "/events", token({tenant}, kAll), event_json(tenant, id), "",
                                      "application/cloudevents+json"));
  INFO(written);
  REQUIRE(status_of(written) == 201);
  rapidjson::Document w;
  w.Parse(body_of(written).c_str());
  REQUIRE(w.IsObject());
  const std::string sequence = std::to_string(w["sequence"].GetInt64());
  const std::string read =
      roundtrip(t.http_port(), request("GET", "/v1/tenants/" + tenant + "/events/" + sequence, token({tenant}, trail::scope_read)));
  INFO(read);
  CHECK(status_of(read) == 200);
  CHECK_THAT(body_of(read), Catch::Contains("\"" + id + "\""));
}

// A traild for one case, on a fresh database.
struct stack_for_case {
  broker b;
  std::string dsn;
  std::unique_ptr<traild_process> t;
  stack_for_case(const std::string& db, std::map<std::string, std::string> env = {}) {
    b.reset_streams();
    dsn = fresh_database(db);
    t = std::make_unique<traild_process>(dsn, traild_env(dsn, std::move(env)));
    t->start();
  }
};

}  // namespace

TEST_CASE("http hostile 1: deep and wide JSON bodies are refused at their bound, never recursed into or built whole",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_json");
  const int port = s.t->http_port();
  const std::string reader = token({"acme"}, trail::scope_read);
  const std::string writer = token({"acme"}, kAll);
  const int64_t rss_before = s.t->rss_bytes();

  // A million '[' to /mcp (once a crash of the whole process).
  const std::string deep(1000000, '[');
  const std::string mcp = roundtrip(port, request("POST", "/mcp", reader, deep, "Accept: application/json\r\n"));
  INFO(mcp.substr(0, 400));
  CHECK(status_of(mcp) == 400);
  CHECK_THAT(body_of(mcp), Catch::Contains("nesting is deeper"));
  // The same to the batch route, and a deep event inside a batch.
  const std::string batch_deep = roundtrip(port, request("POST", "/v1/tenants/acme/events:batch", writer, deep));
  CHECK(status_of(batch_deep) == 400);
  CHECK_THAT(body_of(batch_deep), Catch::Contains("nesting is deeper"));
  // Wide: 8 MB of numbers in one batch is split without building it, and refused by its element count.
  std::string wide = "[";
  while (wide.size() < 8000000) wide += "1,";
  wide += "1]";
  const std::string batch_wide = roundtrip(port, request("POST", "/v1/tenants/acme/events:batch", writer, wide), 60000);
  CHECK(status_of(batch_wide) == 400);
  CHECK_THAT(body_of(batch_wide), Catch::Contains("more than 1000 elements"));
  // A token whose header is a deep array.
  const std::string forged = std::string("W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tb") + ".e30.x";
  CHECK(status_of(roundtrip(port, request("GET", "/v1/tenants/acme/events", forged))) == 401);

  const int64_t rss_after = s.t->rss_bytes();
  INFO("RSS before " << rss_before / 1048576 << " MiB, after " << rss_after / 1048576 << " MiB");
  CHECK(rss_after - rss_before < 96LL * 1024 * 1024);
  check_survived(*s.t);
}

TEST_CASE("http hostile 2: a synchronous write of one tenant cannot make another tenant's write vanish",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_msgid");
  const int port = s.t->http_port();
  // The same source and id in two tenants: two events, both committed.
  for (const std::string tenant : {"acme", "beta"}) {
    const std::string a = roundtrip(port, request("POST", "/v1/tenants/" + tenant + "/events", token({tenant}, kAll),
                                                 event_json(tenant, "same-id"), "", "application/cloudevents+json"));
    INFO(tenant << ": " << a);
    CHECK(status_of(a) == 201);
  }
  // The same Idempotency-Key on a bare event of each tenant: two events too.
  for (const std::string tenant : {"acme", "beta"}) {
    const std::string bare = R"({"tenant_id":")" + tenant +
                             R"(","action":"doc.read","actor":{"type":"user","id":"u"},"primary_resource":{"type":"doc","id":"d"}})";
    const std::string a = roundtrip(port, request("POST", "/v1/tenants/" + tenant + "/events", token({tenant}, kAll), bare,
                                                 "Idempotency-Key: shared-key\r\n"));
    INFO(tenant << ": " << a);
    CHECK(status_of(a) == 201);
  }
  db d(s.dsn);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'same-id'") == 2);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'shared-key'") == 2);
  CHECK(d.count("SELECT count(DISTINCT tenant_id) FROM audit.events WHERE ce_id IN ('same-id', 'shared-key')") == 2);
  check_survived(*s.t, "beta");
}

TEST_CASE("http hostile 3: a request that cannot be recorded is refused before any data leaves",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_unrecordable");
  const int port = s.t->http_port();
  const std::string reader = token({"acme"}, trail::scope_read);
  check_survived(*s.t);  // one event to read
  // Invalid UTF-8 in an ignored parameter's value, in a parameter's name, in the path, in a header.
  for (const std::string target : {"/v1/tenants/acme/events?x=%ff", "/v1/tenants/acme/events?%c3%28=1",
                                   "/v1/tenants/acme/events/%ff", "/v1/tenants/acme/export?format=ndjson&y=%ed%a0%80"}) {
    const std::string a = roundtrip(port, request("GET", target, reader));
    INFO(target << ": " << a);
    CHECK(status_of(a) == 400);
    CHECK(body_of(a).find("survivor") == std::string::npos);
  }
  const std::string header = roundtrip(port, request("GET", "/v1/tenants/acme/events", reader, "", "X-Note: \xff\xfe\r\n"));
  CHECK(status_of(header) == 400);
  CHECK(body_of(header).find("survivor") == std::string::npos);
  // Nothing refused reached the dead-letter stream as an unstorable access event.
  CHECK(s.b.stream_messages("AUDIT_DLQ") == 0);
  check_survived(*s.t);
}

TEST_CASE("http hostile 4: slow and idle connections hold no worker, are bounded per address, and time out",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_slow", {{"TRAIL_HTTP_HEADER_TIMEOUT_MS", "3000"},
                                           {"TRAIL_HTTP_IDLE_TIMEOUT_MS", "4000"},
                                           {"TRAIL_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "200"}});
  const int port = s.t->http_port();
  const std::string reader = token({"acme"}, trail::scope_read);
  check_survived(*s.t);
  // 300 connections sending a header a byte at a time and 300 idle
  // keep-alive connections, from six client addresses: more than every
  // worker thread the old server had.
  std::vector<conn> slow, idle;
  for (int i = 0; i < 300; ++i) {
    slow.emplace_back(port, "127.0.0." + std::to_string(2 + i % 3));
    REQUIRE(slow.back().send("G"));
  }
  for (int i = 0; i < 300; ++i) {
    idle.emplace_back(port, "127.0.0." + std::to_string(5 + i % 3));
    REQUIRE(idle.back().send(request("GET", "/healthz", "")));
  }
  for (auto& c : idle) CHECK(status_of(c.answer()) == 200);  // answered, now idle
  // An ordinary reader is served meanwhile.
  const std::string page = roundtrip(port, request("GET", "/v1/tenants/acme/events?page_size=10", reader), 5000);
  CHECK(status_of(page) == 200);
  // A 201st connection from one address is refused at once.
  {
    std::vector<conn> same;
    for (int i = 0; i < 200; ++i) same.emplace_back(port, "127.0.0.9");
    conn extra(port, "127.0.0.9");
    const std::string refused = extra.receive(5000, "}");
    CHECK(status_of(refused) == 503);
    CHECK_THAT(refused, Catch::Contains("too_many_connections"));
  }
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"connections_per_address\"}") >= 1);
  // The header deadline cuts the slow ones off, however they trickle; the idle deadline the idle ones.
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(500ms);
    for (auto& c : slow) c.send("E");
  }
  size_t slow_closed = 0, idle_closed = 0;
  for (auto& c : slow) slow_closed += c.closed_within(10000);
  for (auto& c : idle) idle_closed += c.closed_within(10000);
  CHECK(slow_closed == slow.size());
  CHECK(idle_closed == idle.size());
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"header_timeout\"}") >= 300);
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"idle_timeout\"}") >= 300);
  check_survived(*s.t);
}

TEST_CASE("http hostile 5: bodies are bounded before they are read, compressed ones refused, headers capped",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_bodies");
  const int port = s.t->http_port();
  const std::string writer = token({"acme"}, kAll);
  const int64_t rss_before = s.t->rss_bytes();
  // Anonymous 50 MB bodies: refused by the missing credentials before a byte of them is read.
  for (int i = 0; i < 4; ++i) {
    conn c(port);
    REQUIRE(c.send("POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: 50000000\r\n\r\n"));
    const std::string a = c.answer();
    CHECK(status_of(a) == 401);
    CHECK(c.closed_within(5000));
  }
  // Authenticated, but larger than the route takes: 413 from the Content-Length alone.
  {
    conn c(port);
    REQUIRE(c.send("POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + writer +
                   "\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"));
    CHECK(status_of(c.answer()) == 413);
  }
  // A chunked body that grows past the limit is cut off where it passes it.
  {
    conn c(port);
    REQUIRE(c.send("POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + writer +
                   "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk(65536, 'a');
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
    // The answer is read as soon as it comes, while sending goes on.
    std::string got;
    for (int i = 0; i < 40 && got.empty() && c.send(std::string(size) + chunk + "\r\n"); ++i) got = c.receive(20, "}");
    if (got.empty()) got = c.receive(5000, "}");
    CHECK(status_of(got) == 413);
  }
  // A gzip body (a small one that would inflate to 128 MiB): refused as compressed.
  {
    const std::string a = roundtrip(port, request("POST", "/v1/tenants/acme/events", writer, std::string(1000, 'x'),
                                                 "Content-Encoding: gzip\r\n"));
    CHECK(status_of(a) == 415);
  }
  // A 32 MiB header line: 431 once the header passes its bound, the rest never read.
  {
    conn c(port);
    c.send("GET /healthz HTTP/1.1\r\nX-Big: ");
    const std::string line(1 << 20, 'h');
    std::string got;
    for (int i = 0; i < 32 && got.empty() && c.send(line); ++i) got = c.receive(20, "}");
    if (got.empty()) got = c.receive(5000, "}");
    CHECK(status_of(got) == 431);
  }
  const int64_t rss_after = s.t->rss_bytes();
  INFO("RSS before " << rss_before / 1048576 << " MiB, after " << rss_after / 1048576 << " MiB");
  CHECK(rss_after - rss_before < 64LL * 1024 * 1024);
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"unauthenticated_body\"}") >= 4);
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"body_too_large\"}") >= 2);
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"compressed_body\"}") >= 1);
  CHECK(s.t->metric("trail_http_refusals_total{listener=\"http\",reason=\"header_too_large\"}") >= 1);
  check_survived(*s.t);
}

TEST_CASE("http hostile 6: a binary-mode attribute is percent-decoded once, as the HTTP binding says",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_binary");
  const int port = s.t->http_port();
  const std::string data =
      R"({"tenant_id":"acme","action":"doc.read","actor":{"type":"user","id":"u"},"primary_resource":{"type":"doc","id":"d"}})";
  const std::string a = roundtrip(port, request("POST", "/v1/tenants/acme/events", token({"acme"}, kAll), data,
                                               "ce-specversion: 1.0\r\nce-id: x-%2541\r\nce-source: //it/binary\r\n"
                                               "ce-type: com.example.audit\r\n"));
  INFO(a);
  REQUIRE(status_of(a) == 201);
  db d(s.dsn);
  // "%25" is one percent sign: the id is "x-%41", not "x-A".
  CHECK(d.scalar("SELECT ce_id FROM audit.events WHERE ce_source = '//it/binary'") == "x-%41");
  check_survived(*s.t);
}

TEST_CASE("http hostile 7: a CSV export never opens as formulas, and the stored values stay exact",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_csv");
  const int port = s.t->http_port();
  const std::string writer = token({"acme"}, kAll);
  const std::string formula = R"J(=HYPERLINK(\"http://x.example\",\"y\"))J";
  const std::string body =
      R"J({"tenant_id":"acme","action":"@SUM(1)","actor":{"type":"user","id":")J" + formula +
      R"J(","display_name":"+1-555"},"primary_resource":{"type":"doc","id":"-2"},"description":"=1+1"})J";
  const std::string a = roundtrip(port, request("POST", "/v1/tenants/acme/events", writer, body, "Idempotency-Key: csv-1\r\n"));
  INFO(a);
  REQUIRE(status_of(a) == 201);
  const std::string csv = body_of(roundtrip(port, request("GET", "/v1/tenants/acme/export?format=csv", writer)));
  INFO(csv);
  CHECK_THAT(csv, Catch::Contains(",'@SUM(1),"));
  CHECK_THAT(csv, Catch::Contains("\"'=HYPERLINK(\"\"http://x.example\"\",\"\"y\"\")\""));
  CHECK_THAT(csv, Catch::Contains(",'+1-555,"));
  CHECK_THAT(csv, Catch::Contains(",'-2,"));
  CHECK_THAT(csv, Catch::Contains(",'=1+1,"));
  // The listing and the stored row keep every value exactly.
  db d(s.dsn);
  CHECK(d.scalar("SELECT description FROM audit.events WHERE ce_id = 'csv-1'") == "=1+1");
  CHECK(d.scalar("SELECT actor_id FROM audit.events WHERE ce_id = 'csv-1'") == R"J(=HYPERLINK("http://x.example","y"))J");
  check_survived(*s.t);
}

TEST_CASE("http hostile 8: token and header edge cases, stream slots per tenant, streams end with their token",
          "[integration][http][hostile]") {
  stack_for_case s("trail_it_http_edges", {{"TRAIL_API_MAX_STREAMS_PER_TENANT", "2"}, {"TRAIL_API_JWT_LEEWAY_S", "0"}});
  const int port = s.t->http_port();
  check_survived(*s.t);
  // A string tenant_id with a space is malformed, not a list granting every tenant.
  {
    const std::string spaced = trail::issue_hs256_token(kSecret, "x", {"acme *"}, trail::scope_read, time(nullptr), 600);
    CHECK(status_of(roundtrip(port, request("GET", "/v1/tenants/beta/events", spaced))) == 401);
    CHECK(status_of(roundtrip(port, request("GET", "/v1/tenants/acme/events", spaced))) == 401);
  }
  // Two Authorization headers: refused, whichever would have counted.
  {
    const std::string two = "GET /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                            token({"acme"}, trail::scope_read) + "\r\nAuthorization: Bearer " +
                            token({"beta"}, trail::scope_read) + "\r\n\r\n";
    const std::string a = roundtrip(port, two);
    CHECK(status_of(a) == 400);
    CHECK_THAT(body_of(a), Catch::Contains("duplicate_header"));
  }
  // /mcp does not tell a stranger why a token was refused.
  {
    const std::string expired = trail::issue_hs256_token(kSecret, "x", {"acme"}, trail::scope_read, time(nullptr) - 7200, 60);
    const std::string a = roundtrip(port, request("POST", "/mcp", expired, R"({"jsonrpc":"2.0","id":1,"method":"ping"})",
                                                 "Accept: application/json\r\n"));
    CHECK(status_of(a) == 401);
    CHECK(body_of(a).find("expired") == std::string::npos);
  }
  // Stream slots: two per tenant here; a third of acme waits, beta still gets one.
  {
    std::vector<conn> streams;
    for (int i = 0; i < 2; ++i) {
      streams.emplace_back(port);
      REQUIRE(streams.back().send(request("GET", "/v1/tenants/acme/events:stream", token({"acme"}, trail::scope_read))));
      CHECK(status_of(streams.back().receive(5000, "live events")) == 200);
    }
    const std::string third = roundtrip(port, request("GET", "/v1/tenants/acme/events:stream", token({"acme"}, trail::scope_read)));
    CHECK(status_of(third) == 503);
    CHECK_THAT(body_of(third), Catch::Contains("api.max_streams_per_tenant"));
    conn beta(port);
    REQUIRE(beta.send(request("GET", "/v1/tenants/beta/events:stream", token({"beta"}, trail::scope_read))));
    CHECK(status_of(beta.receive(5000, "live events")) == 200);
  }
  // The streams above were closed by their clients: their slots come back
  // (a stream notices its client leave without waiting for its next write).
  REQUIRE(wait_until([&] {
    return status_of(roundtrip(port, request("GET", "/v1/tenants/acme/events:stream?actor_id=nobody",
                                             token({"acme"}, trail::scope_read, 2)), 3000)) == 200;
  }, 15000));
  // A stream ends when its token does.
  {
    conn c(port);
    REQUIRE(c.send(request("GET", "/v1/tenants/acme/events:stream", token({"acme"}, trail::scope_read, 3))));
    const std::string head = c.receive(5000, "live events");
    CHECK(status_of(head) == 200);
    const std::string rest = c.receive(10000, "0\r\n\r\n");
    CHECK_THAT(rest, Catch::Contains("the token expired"));
    CHECK_THAT(rest, Catch::Contains("0\r\n\r\n"));  // a complete response: its last chunk
  }
  check_survived(*s.t);
}
