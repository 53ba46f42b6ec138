#include "api/http_listener.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <strings.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "common/metrics.h"

namespace trail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

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

namespace {

// A fixed pool of threads for handlers, with a bounded queue.
class worker_pool {
 public:
  void start(size_t threads, size_t queue_max) {
    queue_max_ = queue_max;
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  bool try_post(std::function<void()> task) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= queue_max_) return false;
    queue_.push_back(std::move(task));
    cv_.notify_one();
    return true;
  }
  // Lets running tasks finish, drops waiting ones, joins.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      queue_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t queue_max_ = 0;
  bool stopping_ = false;
};

// Per listener: open connections, and what was refused or cut, by reason.
struct listener_metrics {
  prometheus::Gauge& open;
  prometheus::Family<prometheus::Counter>& refusals;
  std::string listener;
  explicit listener_metrics(const std::string& name)
      : open(metrics::gauge("trail_http_connections", "Open HTTP connections, by listener", {{"listener", name}})),
        refusals(metrics::counter_family(
            "trail_http_refusals_total",
            "HTTP connections refused or closed and requests refused before a handler ran, by listener and reason: "
            "connections (total), connections_per_address, header_timeout, idle_timeout, body_timeout, write_timeout, "
            "header_too_large, body_too_large, compressed_body, unauthenticated_body, bad_request, overloaded")),
        listener(name) {}
  void refused(const char* reason) { refusals.Add({{"listener", listener}, {"reason", reason}}).Increment(); }
};

std::string json_error(const char* code, const std::string& message) {
  std::string out = "{\"code\":\"";
  out += code;
  out += "\",\"message\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += "\"}";
  return out;
}

// Headers that must appear once: two of them are an ambiguity an attacker
// could exploit (which Authorization counts?), so the request is refused.
constexpr const char* kSingleHeaders[] = {"Authorization", "Content-Type", "Content-Length", "Content-Encoding",
                                          "Transfer-Encoding", "Host", "Origin", "Idempotency-Key", "Last-Event-ID",
                                          "Mcp-Session-Id", "MCP-Protocol-Version", "Expect"};

}  // namespace

class session;

struct http_listener::state {
  std::string component;
  http_limits limits;
  const http_router* router = nullptr;
  body_admission admission;
  access_log log_fn;
  listener_metrics stats;
  std::atomic<bool> stopping{false};

  std::mutex mu;  // guards what follows
  size_t open = 0;
  std::unordered_map<std::string, size_t> per_address;
  std::list<std::weak_ptr<session>> sessions;

  // Declared after what sessions use: destroying the I/O context destroys
  // the sessions its pending handlers hold, and they give their slot back.
  net::io_context ioc{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  tcp::acceptor acceptor{ioc};
  net::steady_timer accept_retry{ioc};
  std::thread io_thread;
  worker_pool workers;

  state(std::string c, http_limits l) : component(std::move(c)), limits(l), stats(component) {}

  // Takes a slot for a connection from `address`; nullptr, or why it is refused.
  const char* admit(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu);
    if (open >= limits.max_connections) return "connections";
    size_t& mine = per_address[address];
    if (mine >= limits.max_connections_per_address) {
      if (mine == 0) per_address.erase(address);
      return "connections_per_address";
    }
    ++mine;
    ++open;
    stats.open.Set(static_cast<double>(open));
    return nullptr;
  }
  void release(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu);
    --open;
    auto it = per_address.find(address);
    if (it != per_address.end() && --it->second == 0) per_address.erase(it);
    stats.open.Set(static_cast<double>(open));
  }
  void accept();
};

// One connection. Its reads, writes and timers run on its strand; a handler
// runs on a worker and hands its response back to the strand.
class session : public std::enable_shared_from_this<session> {
 public:
  session(http_listener::state* st, tcp::socket&& socket, std::string address)
      : st_(st), stream_(std::move(socket)), address_(std::move(address)) {}
  ~session() { st_->release(address_); }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(self->st_->limits.header_timeout_ms); });
  }
  void close_soon() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

 private:
  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // After a last answer: our side is shut, and what the client still sends
  // (the body of a refused request) is read and dropped for a moment, at
  // most 1 MiB, so that closing does not reset the connection before the
  // client has read the answer.
  void linger_then_close() {
    if (closed_) return;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    drain(1 << 20);
  }
  void drain(size_t left) {
    auto buf = std::make_shared<std::array<char, 16384>>();
    stream_.async_read_some(net::buffer(*buf), [self = shared_from_this(), buf, left](beast::error_code ec, size_t n) {
      if (ec || n >= left) return self->close();
      self->drain(left - n);
    });
  }

  // Between requests: wait for the next one's first byte (idle deadline),
  // then for the rest of its header (header deadline).
  void await_request() {
    if (st_->stopping) return close();
    if (buffer_.size() > 0) return read_header(st_->limits.header_timeout_ms);
    stream_.expires_after(std::chrono::milliseconds(st_->limits.idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec == beast::error::timeout) self->st_->stats.refused("idle_timeout");
      if (ec) return self->close();
      self->buffer_.commit(n);
      self->read_header(self->st_->limits.header_timeout_ms);
    });
  }

  void read_header(int64_t deadline_ms) {
    if (st_->stopping) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(st_->limits.max_header_bytes));
    // The body's bound depends on the route: judged once the header is in.
    // (Not boost::none: Beast 1.74 compares a length with an empty optional
    // as greater, and refuses every body.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    stream_.expires_after(std::chrono::milliseconds(deadline_ms));
    bhttp::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_header(ec);
    });
  }

  void on_header(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) {
      st_->stats.refused("header_too_large");
      return refuse(431, "header_too_large",
                    "the request's header is larger than " + std::to_string(st_->limits.max_header_bytes) + " bytes");
    }
    if (ec == beast::error::timeout) {
      st_->stats.refused("header_timeout");
      return close();
    }
    if (ec == bhttp::error::body_limit) {
      st_->stats.refused("body_too_large");
      return refuse(413, "body_too_large", "the body is larger than any route takes");
    }
    if (ec) {
      if (ec != bhttp::error::end_of_stream && ec != net::error::eof && ec != net::error::connection_reset &&
          ec != net::error::operation_aborted) {
        st_->stats.refused("bad_request");
        return refuse(400, "bad_request", "the request is not valid HTTP/1.1");
      }
      return close();
    }
    auto& head = parser_->get();
    keep_alive_ = head.keep_alive();
    version_ = head.version();
    req_ = http_request{};
    req_.method = std::string(head.method_string());
    req_.target = std::string(head.target());
    req_.remote_addr = address_;
    for (const auto& field : head) {
      req_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      if (!valid_utf8(req_.headers.back().second)) {
        st_->stats.refused("bad_request");
        return refuse(400, "invalid_header", "the value of header " + req_.headers.back().first + " is not valid UTF-8");
      }
    }
    for (const char* name : kSingleHeaders)
      if (req_.header_count(name) > 1) {
        st_->stats.refused("bad_request");
        return refuse(400, "duplicate_header", std::string("the request has more than one ") + name + " header");
      }
    if (req_.target.empty() || req_.target.front() != '/') {
      st_->stats.refused("bad_request");
      return refuse(400, "invalid_target", "the request target must be a path");
    }
    const size_t q = req_.target.find('?');
    if (!decode_percent(std::string_view(req_.target).substr(0, q), false, req_.path)) {
      st_->stats.refused("bad_request");
      return refuse(400, "invalid_path", "the path is not valid percent-encoded UTF-8");
    }
    if (q != std::string::npos && !parse_query(std::string_view(req_.target).substr(q + 1), req_.params)) {
      st_->stats.refused("bad_request");
      return refuse(400, "invalid_query", "the query string is not valid percent-encoded UTF-8");
    }
    const bool has_body = parser_->chunked() || (parser_->content_length() && *parser_->content_length() > 0);
    const std::string encoding = req_.get_header_value("Content-Encoding");
    if (!encoding.empty() && strcasecmp(encoding.c_str(), "identity") != 0) {
      st_->stats.refused("compressed_body");
      return refuse(415, "unsupported_encoding", "compressed request bodies are not accepted (Content-Encoding: " + encoding + ")");
    }
    const auto found = st_->router->find(req_.method, req_.path, route_, req_.matches);
    if (found != http_router::found::route) {
      // Without a route its body is never read: the connection ends after the answer.
      const bool path = found == http_router::found::no_method;
      http_response res;
      res.status = path ? 405 : 404;
      res.set_content(json_error(path ? "method_not_allowed" : "not_found", path ? "this route does not take that method" : "no such route"),
                      "application/json");
      res.close = has_body;
      return write(std::move(res));
    }
    // Credentials first: a stranger learns nothing of the route, not even its bound.
    if (has_body && route_->limits.authenticate_body && st_->admission) {
      const std::string why = st_->admission(req_);
      if (!why.empty()) {
        st_->stats.refused("unauthenticated_body");
        http_response res;
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer");
        res.set_content(json_error("unauthenticated", why), "application/json");
        res.close = true;
        return write(std::move(res));
      }
    }
    const size_t limit = route_->limits.max_body_bytes ? route_->limits.max_body_bytes : st_->limits.max_body_bytes;
    if (parser_->content_length() && *parser_->content_length() > limit) {
      st_->stats.refused("body_too_large");
      return refuse(413, "body_too_large", "the body is larger than this route takes (" + std::to_string(limit) + " bytes)");
    }
    if (!has_body) return dispatch();
    parser_->body_limit(limit);
    if (strcasecmp(req_.get_header_value("Expect").c_str(), "100-continue") == 0) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, version_);
      stream_.expires_after(std::chrono::milliseconds(st_->limits.write_timeout_ms));
      return bhttp::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code e, size_t) {
        if (e) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(std::chrono::milliseconds(st_->limits.body_timeout_ms));
    bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == bhttp::error::body_limit) {
        self->st_->stats.refused("body_too_large");
        return self->refuse(413, "body_too_large", "the body is larger than this route takes");
      }
      if (ec == beast::error::timeout) {
        self->st_->stats.refused("body_timeout");
        return self->close();
      }
      if (ec) {
        self->st_->stats.refused("bad_request");
        return self->refuse(400, "bad_request", "the request's body is not valid HTTP/1.1 framing");
      }
      self->req_.body = std::move(self->parser_->get().body());
      self->dispatch();
    });
  }

  // An answer given before any handler ran; the connection closes after it.
  void refuse(int status, const char* code, const std::string& message) {
    http_response res;
    res.status = status;
    res.set_content(json_error(code, message), "application/json");
    res.close = true;
    write(std::move(res));
  }

  void dispatch() {
    stream_.expires_never();
    parser_.reset();
    auto self = shared_from_this();
    if (st_->workers.try_post([self] { self->run_handler(); })) return;
    st_->stats.refused("overloaded");
    http_response res;
    res.status = 503;
    res.set_header("Retry-After", "1");
    res.set_content(json_error("overloaded", "every worker is busy and the queue is full; retry shortly"), "application/json");
    res.close = true;
    write(std::move(res));
  }

  // On a worker thread.
  void run_handler() {
    http_response res;
    try {
      route_->handler(req_, res);
    } catch (const std::exception& e) {
      log::error(st_->component, "a handler threw; answered 500", {{"path", req_.path}, {"error", e.what()}});
      res = http_response{};
      res.status = 500;
      res.set_content(json_error("internal", "the request failed inside the server"), "application/json");
    }
    if (st_->log_fn) st_->log_fn(req_, res);
    if (res.stream) return run_stream(res);
    net::post(stream_.get_executor(), [self = shared_from_this(), r = std::move(res)]() mutable { self->write(std::move(r)); });
  }

  // On the strand: a whole response; then the next request, or the end.
  void write(http_response&& res) {
    auto msg = std::make_shared<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(res.status), version_);
    for (const auto& [k, v] : res.headers) msg->insert(k, v);
    msg->body() = std::move(res.body);
    msg->keep_alive(keep_alive_ && !res.close && !st_->stopping);
    msg->prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(st_->limits.write_timeout_ms));
    bhttp::async_write(stream_, *msg, [self = shared_from_this(), msg](beast::error_code ec, size_t) {
      if (ec == beast::error::timeout) self->st_->stats.refused("write_timeout");
      if (ec) return self->close();
      if (!msg->keep_alive()) return self->linger_then_close();
      self->await_request();
    });
  }

  // ---- streamed responses: produced on the worker, written on the strand ----

  // Runs `op` (which starts one asynchronous write and calls back with its
  // result) on the strand, and waits for that result on the worker.
  template <typename Op>
  bool write_and_wait(Op op) {
    auto done = std::make_shared<std::pair<std::optional<beast::error_code>, std::mutex>>();
    auto cv = std::make_shared<std::condition_variable>();
    net::post(stream_.get_executor(), [self = shared_from_this(), op, done, cv]() mutable {
      if (self->closed_) {
        std::lock_guard<std::mutex> lock(done->second);
        done->first = net::error::operation_aborted;
        cv->notify_one();
        return;
      }
      self->stream_.expires_after(std::chrono::milliseconds(self->st_->limits.write_timeout_ms));
      op([done, cv](beast::error_code ec) {
        std::lock_guard<std::mutex> lock(done->second);
        done->first = ec;
        cv->notify_one();
      });
    });
    std::unique_lock<std::mutex> lock(done->second);
    // The write deadline ends a write the client does not take; stop()
    // closes every connection, which ends the rest. The bound below is
    // only a backstop.
    const auto backstop = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(st_->limits.write_timeout_ms + 5000);
    while (!done->first) {
      cv->wait_for(lock, std::chrono::milliseconds(100));
      if (!done->first && std::chrono::steady_clock::now() > backstop) return false;
    }
    if (*done->first == beast::error::timeout) st_->stats.refused("write_timeout");
    return !*done->first;
  }

  class chunk_sink : public http_sink {
   public:
    explicit chunk_sink(session& s) : s_(s) {}
    bool write(const char* data, size_t size) override {
      if (!is_writable()) return false;
      if (size == 0) return true;
      auto chunk = std::make_shared<std::string>(data, size);
      failed_ = !s_.write_and_wait([&s = s_, chunk](auto callback) {
        net::async_write(s.stream_, bhttp::make_chunk(net::buffer(*chunk)),
                         [chunk, callback](beast::error_code ec, size_t) { callback(ec); });
      });
      written_ += size;
      return !failed_;
    }
    bool is_writable() const override { return !failed_ && !s_.st_->stopping && !s_.peer_gone_; }
    void done() override { finished_ = true; }
    bool finished() const { return finished_; }
    bool failed() const { return failed_; }
    size_t written() const { return written_; }

   private:
    session& s_;
    bool failed_ = false;
    bool finished_ = false;
    size_t written_ = 0;
  };

  // On the strand, once a stream began: any byte or the end of the input
  // means the client is gone (it sends nothing while it reads a stream).
  void watch_peer() {
    auto buf = std::make_shared<std::array<char, 512>>();
    stream_.async_read_some(net::buffer(*buf), [self = shared_from_this(), buf](beast::error_code, size_t) {
      self->peer_gone_ = true;
    });
  }

  void run_stream(http_response& res) {
    auto head = std::make_shared<bhttp::response<bhttp::empty_body>>(static_cast<bhttp::status>(res.status), version_);
    for (const auto& [k, v] : res.headers) head->insert(k, v);
    head->chunked(true);
    // A streamed response is the connection's last: while it runs, a read
    // stays pending to notice a client that went away (a live stream would
    // otherwise hold its slot until its next write).
    head->keep_alive(false);
    auto serializer = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*head);
    bool completed = write_and_wait([this, head, serializer](auto callback) {
      bhttp::async_write_header(stream_, *serializer,
                                [head, serializer, callback](beast::error_code ec, size_t) { callback(ec); });
      watch_peer();
    });
    chunk_sink sink(*this);
    if (completed) {
      while (!sink.finished() && !sink.failed())
        if (!res.stream(sink.written(), sink)) break;
      completed = sink.finished() && !sink.failed();
    }
    if (completed)
      completed = write_and_wait([this](auto callback) {
        net::async_write(stream_, bhttp::make_chunk_last(), [callback](beast::error_code ec, size_t) { callback(ec); });
      });
    if (res.stream_done) res.stream_done(completed);
    // Every byte was handed to the socket; closing sends them, then the FIN
    // (and cancels the pending read that watched the client).
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  http_listener::state* st_;  // outlives every session (see state::ioc)
  beast::tcp_stream stream_;
  std::string address_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const http_router::route* route_ = nullptr;
  http_request req_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  bool closed_ = false;
  std::atomic<bool> peer_gone_{false};
};

void http_listener::state::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (ec) {
      // Out of descriptors, say: try again shortly rather than spin.
      log::limited(log::level::warn, component, "accept failed; retrying", {{"error", ec.message()}});
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code) {
        if (!stopping) accept();
      });
      return;
    }
    beast::error_code addr_ec;
    const auto peer = socket.remote_endpoint(addr_ec);
    const std::string address = addr_ec ? std::string("?") : peer.address().to_string();
    if (const char* reason = admit(address)) {
      stats.refused(reason);
      log::limited(log::level::warn, component, "connection refused: too many connections",
                   {{"remote", address}, {"limit", std::string(reason)}});
      static const std::string kBody = json_error("too_many_connections", "too many connections; retry shortly");
      const std::string busy = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                               "Connection: close\r\nContent-Length: " + std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
      beast::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(net::buffer(busy), ignored);
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto s = std::make_shared<session>(this, std::move(socket), address);
      {
        std::lock_guard<std::mutex> lock(mu);
        // Forget sessions that ended, now and then, so the list stays the size of what is open.
        if (sessions.size() > 2 * open + 64)
          sessions.remove_if([](const std::weak_ptr<session>& w) { return w.expired(); });
        sessions.push_back(s);
      }
      s->start();
    }
    accept();
  });
}

http_listener::http_listener(std::string component, http_limits limits)
    : component_(std::move(component)), limits_(limits) {}

http_listener::~http_listener() { stop(); }

bool http_listener::start(const char* setting, const std::string& addr) {
  std::string host;
  int port = 0;
  if (!split_host_port(addr, host, port)) {
    log::error(component_, std::string(setting) + " is not host:port", {{"addr", addr}});
    return false;
  }
  std::string error;
  if (!serve(host, port, &error)) {
    log::error(component_, "cannot listen", {{"addr", addr}, {"error", error}});
    return false;
  }
  log::info(component_, "listening",
            {{"addr", addr},
             {"max_connections", limits_.max_connections},
             {"max_connections_per_address", limits_.max_connections_per_address},
             {"workers", limits_.worker_threads}});
  return true;
}

int http_listener::start_loopback() {
  std::string error;
  if (!serve("127.0.0.1", 0, &error)) {
    log::error(component_, "cannot listen on a loopback port", {{"error", error}});
    return -1;
  }
  const int port = state_->acceptor.local_endpoint().port();
  log::debug(component_, "listening on loopback", {{"port", port}});
  return port;
}

bool http_listener::serve(const std::string& host, int port, std::string* error) {
  if (state_) return *error = "already listening", false;
  auto st = std::make_unique<state>(component_, limits_);
  st->router = &router_;
  st->admission = admission_;
  st->log_fn = access_log_;
  beast::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (ec) return *error = "not an IP address: " + host, false;
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  st->acceptor.open(endpoint.protocol(), ec);
  if (!ec) st->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) st->acceptor.bind(endpoint, ec);
  if (!ec) st->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return *error = ec.message(), false;
  st->workers.start(limits_.worker_threads, limits_.queue_max);
  st->guard.emplace(st->ioc.get_executor());
  st->accept();
  st->io_thread = std::thread([raw = st.get()] { raw->ioc.run(); });
  state_ = std::move(st);
  return true;
}

void http_listener::stop() {
  if (!state_) return;
  state* st = state_.get();
  st->stopping = true;
  // Stop accepting and close every connection, on the I/O thread.
  net::post(st->ioc, [st] {
    beast::error_code ignored;
    st->acceptor.close(ignored);
    st->accept_retry.cancel();
    std::list<std::weak_ptr<session>> sessions;
    {
      std::lock_guard<std::mutex> lock(st->mu);
      sessions.swap(st->sessions);
    }
    for (auto& w : sessions)
      if (auto s = w.lock()) s->close_soon();
  });
  // Running handlers finish (a stream's next write fails now); then the I/O thread ends.
  st->workers.stop();
  st->guard.reset();
  st->ioc.stop();
  if (st->io_thread.joinable()) st->io_thread.join();
  state_.reset();
}

}  // namespace trail
