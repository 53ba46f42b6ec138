#pragma once
// The JetStream side of Trail: one NATS connection, the streams Trail needs,
// the durable pull consumer and the fetch thread.
//
// Threads and ownership:
//  - the fetch thread (started by start()) pulls batches, wraps each natsMsg in
//    an inbound_message and hands them to `deliver` (the validator actors);
//  - finish() is the only place a message is acked, terminated or nak'ed; it is
//    called by the commit finalizer and the dead-letter publisher threads, and it
//    destroys the message and frees its share of the in-flight gate;
//  - the subscription and the connection outlive every un-acked message: close()
//    runs only after the gate has drained or the shutdown deadline has passed.

#include <concurrentqueue.h>
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "ingest/ingest_metrics.h"
#include "common/record.h"
#include "ingest/inflight_gate.h"

namespace trail {

enum class disposition { ack, term, nak };

// What the broker side takes from the configuration ([nats] and [limits]);
// app/options.cc fills it from config/, where each default is declared once.
struct source_options {
  std::string url;
  std::string url_in_logs;  // `url` with its secrets masked
  std::string stream;  // AUDIT: what Trail consumes
  int64_t stream_max_age_s = 0;
  int64_t stream_max_bytes = 0;
  int64_t duplicate_window_s = 0;
  int64_t stream_replicas = 1;
  std::string consumer;  // the durable pull consumer
  int64_t ack_wait_s = 0;
  int64_t max_ack_pending = 0;
  int64_t fetch_batch = 0;
  int64_t fetch_expires_ms = 0;
  int64_t fetch_wait_ms = 0;
  std::string dlq_subject;
  std::string dlq_stream;
  int64_t dlq_max_age_s = 0;
  bool committed_enabled = false;
  std::string committed_prefix;
  std::string committed_stream;  // empty: core publishes, no stream
  int64_t committed_max_age_s = 0;
  int64_t committed_max_bytes = 0;
  std::string checkpoint_stream;  // empty: no checkpoints (no signing key)
  std::string checkpoint_prefix;
  int64_t checkpoint_max_age_s = 0;
  int64_t publish_max_pending = 0;
  int64_t inflight_max_events = 0;
  int64_t inflight_max_bytes = 0;
};

// Told what became of each committed-event republish handed to nats.c
// (ingest/outbox.h). Called on nats.c's PubAck thread, or at shutdown.
class publish_tracker {
 public:
  virtual ~publish_tracker() = default;
  virtual void confirmed(natsMsg* msg) = 0;
  virtual void abandoned(natsMsg* msg) = 0;  // given up: it will not be confirmed
};

struct consumer_state {
  uint64_t num_pending = 0;
  uint64_t num_ack_pending = 0;
  uint64_t num_redelivered = 0;
};

class jetstream_source final : public message_settlement {
 public:
  using deliver_fn = std::function<void(std::vector<inbound_message*>&&)>;

  jetstream_source(source_options opt, health& h);
  ~jetstream_source();
  jetstream_source(const jetstream_source&) = delete;
  jetstream_source& operator=(const jetstream_source&) = delete;

  // Connects (retrying until `abort` turns true), ensures the AUDIT, AUDIT_DLQ
  // and AUDIT_COMMITTED streams and the durable consumer. False if aborted or
  // if the broker refused the stream or consumer configuration.
  bool connect(const std::atomic<bool>& abort);
  void start_fetching(deliver_fn deliver);
  void stop_fetching();  // returns once the fetch thread has exited
  void close();

  void finish(inbound_message* m, disposition d, int64_t nak_delay_ms = 0);
  // Shutdown, after every writer and the finalizer have stopped: nak what is
  // still in flight so that it is redelivered soon rather than after ack_wait.
  size_t nak_all_in_flight(int64_t delay_ms);
  // The last reference to `m` is gone: ack (committed), term (dead-lettered)
  // or nak (retry) it. After close(), a message is only released.
  void settle_message(inbound_message* m, event_outcome merged) override;

  jsCtx* js() const { return js_; }
  natsConnection* connection() const { return nc_; }
  inflight_gate& gate() { return gate_; }
  bool consumer_info(consumer_state& out);

  // Committed events whose republish the broker did not confirm, to publish
  // again (by the finalizer thread). Owned here because the broker's ack
  // handler, on a nats.c thread, is where failures arrive. Bounded by the
  // finalizer: it stops republishing (and acking) while retry_backlog() is at
  // nats.republish_retry_max.
  void queue_retry(natsMsg* msg);
  bool take_retry(natsMsg*& msg);
  int64_t retry_backlog() const { return republish_retry_count_.load(std::memory_order_relaxed); }
  // nats.c 3.4.1's js_PublishAsyncGetPendingList crashes on a context that
  // never published asynchronously: ask only after a first publish.
  void mark_async_used() { async_used_.store(true, std::memory_order_relaxed); }
  bool async_used() const { return async_used_.load(std::memory_order_relaxed); }
  // Republishes handed to nats.c and not yet answered.
  std::atomic<int64_t>& unconfirmed() { return republish_unconfirmed_; }
  // Shutdown: waits for outstanding republish confirmations until `deadline`,
  // then logs (tenant, sequence) of each one that stays unconfirmed.
  size_t settle_republishes(std::chrono::steady_clock::time_point deadline);
  // The largest message (headers + body) the server accepts, from its INFO.
  int64_t max_payload() const { return nc_ ? natsConnection_GetMaxPayload(nc_) : 1024 * 1024; }
  // Set before the first republish.
  void set_publish_tracker(publish_tracker* t) { tracker_ = t; }
  // True once after each reconnect: unconfirmed publishes must be sent again.
  bool take_resend_request() { return resend_pending_.exchange(false); }

 private:
  void fetch_loop();
  void keepalive_loop();
  void track(inbound_message* m);
  void untrack(inbound_message* m);
  static void on_reconnected(natsConnection*, void* closure);
  static void on_publish_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  // Creates the stream if missing; else verifies it: the first `required`
  // subjects must be covered, the others only draw a warning.
  bool ensure_stream(const std::string& name, const std::vector<std::string>& subjects, size_t required,
                     int64_t max_age_s, int64_t max_bytes, int64_t duplicate_window_s);
  bool ensure_consumer();
  // The streams and the consumer, once; setup_transient_ says whether a
  // failure may pass (JetStream did not answer) or stops the start.
  bool set_up();
  bool setup_transient_ = false;

  const source_options opt_;
  health& health_;
  inflight_gate gate_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* sub_ = nullptr;
  deliver_fn deliver_;
  std::thread fetch_thread_;
  std::thread keepalive_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closing_{false};
  std::atomic<bool> closed_{false};  // close() began: messages are only released
  std::atomic<bool> resend_pending_{false};
  std::mutex keepalive_mu_;
  std::condition_variable keepalive_cv_;
  // Every message fetched and not yet settled, for InProgress and shutdown.
  std::mutex inflight_mu_;
  inbound_message* inflight_head_ = nullptr;
  moodycamel::ConcurrentQueue<natsMsg*> republish_retries_;
  std::atomic<int64_t> republish_retry_count_{0};
  std::atomic<int64_t> republish_unconfirmed_{0};
  std::atomic<bool> async_used_{false};
  publish_tracker* tracker_ = nullptr;
};

const char* nats_error_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0));

// Appends every header of `m` to `out`: each value of each name, in order.
void read_headers(natsMsg* m, header_list& out);

// Sets the servers of `o` from nats.url: one URL or a comma-separated list
// (natsOptions_SetURL takes only one; a cluster's nodes are given as a list).
natsStatus set_servers(natsOptions* o, const std::string& urls);

// A JetStream publish that waits for its PubAck, for the few that must know
// the broker stored them before going on: a dead letter, a republish from the
// outbox, a synchronous write from the API. `msg_id` (Nats-Msg-Id) may be
// null.
struct stored_ack {
  natsStatus status = NATS_OK;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  bool duplicate = false;  // the stream already held a message with this Nats-Msg-Id
  bool ok() const { return status == NATS_OK; }
};
stored_ack publish_and_wait(jsCtx* js, const std::string& subject, std::string_view body, const header_list& headers,
                            const char* msg_id, int64_t max_wait_ms);

}  // namespace trail
