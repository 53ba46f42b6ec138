// The live stream: GET /v1/tenants/{t}/events:stream, server-sent events of
// the tenant's committed events in sequence order, with the list's filters.
// The events come from the ledger (the same catch-up read as after_sequence),
// never from the broker's copy: the committed subject <prefix>.<tenant> only
// wakes the stream when there is something to read (without it, or while
// NATS is away, the stream looks every api.stream_poll_ms). Each event's SSE
// id is its sequence, so a client that reconnects with Last-Event-ID (what
// EventSource does) gets what it missed, once, in order. One HTTP worker per
// open stream, at most api.max_streams of them.
#include "api/http_types.h"

#include <charconv>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "api/http_reply.h"
#include "api/query_routes.h"
#include "common/log.h"
#include "common/time.h"

namespace trail {
namespace {

using Request = http_request;
using Response = http_response;

constexpr size_t kStreamPage = 200;
constexpr auto kKeepAlive = std::chrono::seconds(15);

// What one open stream shares with its wake-ups (a nats.c thread).
struct stream_state {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = true;  // read at once
  event_query q;
  int64_t last = 0;   // the last sequence sent
  std::shared_ptr<void> watching;
  std::chrono::steady_clock::time_point quiet_since = std::chrono::steady_clock::now();
  bool greeted = false;
  int64_t valid_until_s = 0;  // the token's; 0: no end
};

std::optional<int64_t> digits(const std::string& v) {
  int64_t n = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size() || n < 0) return std::nullopt;
  return n;
}

}  // namespace

void query_routes::install_stream(http_router& server) {
  server.Get(R"(/v1/tenants/([^/]+)/events:stream)", [this](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    if (!admit(req, res, tenant, scope_read, ctx)) return;
    // Where to start: Last-Event-ID (a reconnection), else after_sequence,
    // else the tenant's head (what commits from now on).
    auto params = req.params;
    std::optional<int64_t> start;
    if (req.has_header("Last-Event-ID")) {
      start = digits(req.get_header_value("Last-Event-ID"));
      if (!start) return send_error(res, 400, "invalid_parameter", "Last-Event-ID: a sequence");
    }
    if (auto it = params.find("after_sequence"); it != params.end()) {
      const auto v = digits(it->second);
      if (!v) return send_error(res, 400, "invalid_parameter", "after_sequence: an integer from 0");
      if (!start) start = v;
      params.erase(it);
    }
    for (const char* k : {"page_token", "page_size", "order"})
      if (params.count(k)) return send_error(res, 400, "unknown_parameter", std::string(k) + ": not taken by a live stream");
    auto state = std::make_shared<stream_state>();
    params.emplace("order", "asc");
    params.emplace("after_sequence", "0");
    if (auto err = parse_event_query(params, tenant, now_unix_us(), state->q)) {
      send_error(res, 400, err->code.c_str(), err->message);
      return;
    }
    state->q.page_size = kStreamPage;
    std::string error;
    if (!start) {
      int64_t head = 0, checkpoint = 0;
      if (reader_->chain_extent(tenant, head, checkpoint, &error) != read_status::ok) {
        log::limited(log::level::warn, "api", "query failed", {{"request_id", ctx.id}, {"error", error}});
        return send_error(res, 503, "unavailable", "the ledger cannot be read right now; retry later");
      }
      start = head;
    }
    state->last = *start;
    state->valid_until_s = ctx.who.valid_until_s;
    // A slot in all and one of the tenant's: no tenant can hold every stream.
    {
      std::lock_guard<std::mutex> lock(streams_mu_);
      size_t& mine = streams_by_tenant_[tenant];
      if (streams_open_ >= opt_.max_streams || mine >= opt_.max_streams_per_tenant) {
        const bool tenant_full = mine >= opt_.max_streams_per_tenant;
        if (mine == 0) streams_by_tenant_.erase(tenant);
        res.set_header("Retry-After", "5");
        return send_error(res, 503, "too_many_streams",
                          tenant_full ? "tenant " + tenant + " has " + std::to_string(opt_.max_streams_per_tenant) +
                                            " live streams open on this traild (api.max_streams_per_tenant)"
                                      : "this traild serves " + std::to_string(opt_.max_streams) +
                                            " live streams at once (api.max_streams)");
      }
      ++mine;
      ++streams_open_;
    }
    auto release_slot = [this, tenant] {
      std::lock_guard<std::mutex> lock(streams_mu_);
      --streams_open_;
      auto it = streams_by_tenant_.find(tenant);
      if (it != streams_by_tenant_.end() && --it->second == 0) streams_by_tenant_.erase(it);
    };
    if (!recorded(req, res, ctx, tenant, "audit.events.stream", -1)) {
      release_slot();
      return;
    }
    if (watch_ && !opt_.committed_prefix.empty()) {
      std::weak_ptr<stream_state> weak = state;
      state->watching = watch_(opt_.committed_prefix + "." + tenant, [weak] {
        if (auto s = weak.lock()) {
          std::lock_guard<std::mutex> lock(s->mu);
          s->woken = true;
          s->cv.notify_one();
        }
      });
    }
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");  // proxies: pass each event on at once
    const std::string request_id = ctx.id;
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, state, tenant, request_id](size_t, http_sink& sink) {
          if (!state->greeted) {
            state->greeted = true;
            const std::string hello = "retry: 2000\n: live events of tenant " + tenant + " after sequence " +
                                      std::to_string(state->last) + "\n\n";
            if (!sink.write(hello.data(), hello.size())) return false;
          }
          // Wait for a wake-up, the poll interval, or the keep-alive.
          {
            std::unique_lock<std::mutex> lock(state->mu);
            const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt_.stream_poll_ms);
            while (!state->woken && !streams_stopping_ && std::chrono::steady_clock::now() < until)
              state->cv.wait_for(lock, std::chrono::milliseconds(250));
            state->woken = false;
          }
          if (streams_stopping_ || !sink.is_writable()) return false;
          // A stream lives no longer than its token: the client comes back with a new one.
          if (state->valid_until_s > 0 && clock_s_() > state->valid_until_s) {
            static const std::string ended = ": the token expired; reconnect with a new one\n\n";
            if (!sink.write(ended.data(), ended.size())) return false;
            sink.done();
            return true;
          }
          // Everything after the last sequence sent, a page at a time. With
          // filters, the position also moves past what did not match: the
          // head read first bounds what the pages considered.
          const bool filtered = !plain_catch_up(state->q);
          int64_t head = 0, checkpoint = 0;
          std::string head_error;
          const bool head_known = filtered && reader_->chain_extent(tenant, head, checkpoint, &head_error) == read_status::ok;
          for (;;) {
            state->q.after_sequence = state->last;
            page_of_events page;
            std::string error;
            const read_status st = reader_->list(state->q, page, &error);
            if (st != read_status::ok) {
              log::limited(log::level::warn, "api", "a live stream cannot read the ledger; it retries",
                           {{"request_id", request_id}, {"error", error}});
              return true;
            }
            std::string out;
            for (const auto& e : page.spans) {
              out += "id: " + std::to_string(e.sequence) + "\nevent: audit\ndata: ";
              out.append(page.events_json, e.begin, e.end - e.begin);
              out += "\n\n";
              state->last = e.sequence;
            }
            if (!out.empty()) {
              if (!sink.write(out.data(), out.size())) return false;
              state->quiet_since = std::chrono::steady_clock::now();
            }
            if (page.spans.size() < kStreamPage) {
              if (head_known) state->last = std::max(state->last, head);
              break;
            }
          }
          if (std::chrono::steady_clock::now() - state->quiet_since > kKeepAlive) {
            static const std::string ping = ": keep-alive\n\n";
            if (!sink.write(ping.data(), ping.size())) return false;
            state->quiet_since = std::chrono::steady_clock::now();
          }
          return true;
        },
        [state, release_slot](bool) {
          state->watching.reset();
          release_slot();
        });
  });
}

}  // namespace trail
