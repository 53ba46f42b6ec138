#pragma once
// Publishes audit events into the AUDIT stream on behalf of the read side:
// synchronous writes (POST /v1/…/events) and the meta-audit of reads. Its own
// NATS connection (named traild-api), so a request never waits on the ingest
// connection's lock; each publish waits for the stream's PubAck, so "handed
// to the broker" means stored by it. Called from any HTTP worker thread.
// Connects on first use; after a failed attempt it tries again at most once
// a second, answering "unavailable" in between.

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "decode/message.h"

namespace trail {

struct publisher_options {
  std::string url;
  std::string url_in_logs;
  int64_t timeout_ms = 0;  // connect and PubAck wait
};

class event_publisher {
 public:
  explicit event_publisher(publisher_options opt);
  ~event_publisher();
  event_publisher(const event_publisher&) = delete;
  event_publisher& operator=(const event_publisher&) = delete;

  // True once the stream has stored the message (or had it already:
  // `msg_id` is its Nats-Msg-Id, deduplicated by the broker).
  bool publish(const std::string& subject, std::string_view body, const header_list& headers, const std::string& msg_id,
               std::string* error);

  // Reads, in order, the messages of `stream` on `subject` stored at or after
  // `since_us` (Unix µs), handing each body to `each` until it returns false
  // or none is left (an ordered consumer, removed afterwards). False with
  // `error` when the broker cannot be read to the end.
  bool read_subject(const std::string& stream, const std::string& subject, int64_t since_us,
                    const std::function<bool(std::string_view body)>& each, std::string* error);
  // Calls `wake` (on a nats.c thread) for each message on `subject` until the
  // returned handle is released; null when NATS cannot be reached now (the
  // caller then polls). The message itself is not read: live streams take
  // their events from the ledger, the subject only says when to look.
  std::shared_ptr<void> watch(const std::string& subject, std::function<void()> wake);

 private:
  jsCtx* context(std::string* error);

  const publisher_options opt_;
  std::mutex mu_;  // guards connecting; publishing itself is thread-safe in nats.c
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::chrono::steady_clock::time_point last_attempt_{};
};

}  // namespace trail
