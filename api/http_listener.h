#pragma once
// Trail's HTTP/1.1 listener (Boost.Beast over Asio): every listener of
// traild (the API, its MCP loopback twin, metrics) is one of these.
//
// Serving model. One I/O thread runs every connection's reads and writes,
// event-driven: a connection that is slow, idle or half-sent costs a few
// kilobytes and a timer, never a thread. Only a request that arrived whole
// and within its limits reaches the worker pool, where handlers may block
// (on PostgreSQL, on a live stream). What one connection may cost is
// bounded before it is spent:
//  - connections: at most `max_connections` in all and
//    `max_connections_per_address` from one client address; past either,
//    the connection gets a 503 and is closed at once;
//  - time: the header of a request must arrive within `header_timeout_ms`
//    of its first byte, a keep-alive connection may wait `idle_timeout_ms`
//    for its next request, a body must arrive within `body_timeout_ms`, and
//    a response (each chunk of a stream) must be taken by the client within
//    `write_timeout_ms`; a connection that misses a deadline is closed;
//  - bytes: a header of at most `max_header_bytes`; a body of at most its
//    route's limit (else `max_body_bytes`), refused by its Content-Length
//    before a byte of it is read, or cut off when a chunked body passes it;
//    compressed bodies (Content-Encoding) are refused, so a small body
//    cannot inflate; for routes that require a caller, the Authorization
//    header is checked before any body is read (`body_admission`);
//  - work: at most `worker_threads` handlers run at once and at most
//    `queue_max` requests wait for one; past that, 503 at once.
// Requests are answered one at a time per connection (no pipelining), so a
// client cannot queue work faster than it reads answers.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/http_types.h"

namespace trail {

struct http_limits {
  size_t max_connections = 4096;
  size_t max_connections_per_address = 256;
  int64_t header_timeout_ms = 10000;
  int64_t idle_timeout_ms = 60000;
  int64_t body_timeout_ms = 30000;
  int64_t write_timeout_ms = 30000;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  size_t worker_threads = 16;
  size_t queue_max = 256;
};

// Decides, from the request's line and headers alone, whether its body may
// be read: "" to go on, else the reason to refuse it (answered 401).
using body_admission = std::function<std::string(const http_request& head)>;

class http_listener {
 public:
  // `component` names it in logs and in the metrics' `listener` label.
  http_listener(std::string component, http_limits limits = {});
  ~http_listener();
  http_listener(const http_listener&) = delete;
  http_listener& operator=(const http_listener&) = delete;

  http_router& router() { return router_; }
  void set_body_admission(body_admission a) { admission_ = std::move(a); }
  // Called after each request is answered (a log line), on a worker thread.
  using access_log = std::function<void(const http_request&, const http_response&)>;
  void set_access_log(access_log f) { access_log_ = std::move(f); }
  const http_limits& limits() const { return limits_; }

  // Binds "host:port" and starts serving; false (logged, naming `setting`)
  // if the address is malformed or cannot be bound.
  bool start(const char* setting, const std::string& addr);
  // Listens on 127.0.0.1 at a port the system picks; that port, or -1.
  int start_loopback();
  // Stops accepting, closes every connection, ends streams and joins every
  // thread; a handler still running finishes first.
  void stop();

  struct state;

 private:
  bool serve(const std::string& host, int port, std::string* error);

  std::string component_;
  http_limits limits_;
  http_router router_;
  body_admission admission_;
  access_log access_log_;
  std::unique_ptr<state> state_;
};

// Splits "host:port" ("[::1]:80" and ":80" too); false if malformed.
bool split_host_port(const std::string& addr, std::string& host, int& port);

}  // namespace trail
