#pragma once
// The committed-event outbox (store/migrations/0004_outbox.sql), kept by one
// thread with a PostgreSQL connection of its own.
//
// Each transaction a writer commits names, in one audit.outbox row, the
// sequences it assigned. The commit finalizer republishes those events and
// tells the keeper which broker message carries which row's event
// (published) and when it has handed over every event of a row (seal); the
// broker's PubAck handler, on a nats.c thread, reports each message confirmed
// or given up (publish_tracker). The keeper thread then:
//  - every 500 ms deletes the rows whose republishes are all confirmed;
//  - every nats.outbox_reconcile_after_s / 2 takes the rows older than
//    nats.outbox_reconcile_after_s (left by a replica that died between its
//    ack and the broker's PubAck, or given up after retries; this replica's or
//    any other's: rows are claimed with SKIP LOCKED), republishes their events
//    from audit.events synchronously, in sequence order per tenant, and
//    deletes them. The committed stream drops what it already holds by
//    Nats-Msg-Id "<tenant>:<sequence>" (within its duplicate window).
//
// So an acked event whose republish was never confirmed is republished after
// a crash: the committed stream misses nothing the table holds.

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <concurrentqueue.h>

#include <deque>
#include <unordered_map>
#include <vector>

#include "ingest/jetstream.h"
#include "sinks/pg_session.h"

namespace trail {

struct outbox_options {
  std::string pg_dsn;
  pg_timeouts timeouts;
  std::string committed_prefix;
  int64_t publish_ack_timeout_ms = 0;
  int64_t reconcile_after_s = 0;  // a row older than this is republished from the table
};

class outbox_keeper final : public publish_tracker {
 public:
  outbox_keeper(outbox_options opt, jetstream_source& source);
  ~outbox_keeper() override;

  void start();
  // Deletes what is confirmed by now, then stops.
  void stop();

  // Finalizer thread, before the message is handed to nats.c.
  void published(natsMsg* msg, int64_t outbox_id);
  // Finalizer thread: every event of the row has been handed over (or skipped).
  void seal(int64_t outbox_id);
  // Finalizer thread: an event of the row could not be handed over; the row
  // stays for the reconciler.
  void give_up(int64_t outbox_id);

  // publish_tracker: the broker confirmed `msg`, or Trail gave up on it
  // (retries exhausted, shutdown); then its row is left for the reconciler.
  void confirmed(natsMsg* msg) override;
  void abandoned(natsMsg* msg) override;

  // Rows republished from the table so far (tests, metrics).
  int64_t reconciled_rows() const { return reconciled_rows_.load(); }

 private:
  // The finalizer's and the PubAck thread's notes reach the keeper through
  // lock-free queues; only the keeper thread matches them (no lock per event).
  // A publish's confirmation can be drained before the publish itself, and a
  // message's address is reused once nats.c has freed it: so each address
  // keeps its publishes and its outcomes in order, the k-th outcome belonging
  // to the k-th publish.
  enum class note_kind : uint8_t { published, sealed, given_up, confirmed, abandoned };
  struct note {
    note_kind kind;
    natsMsg* msg;
    int64_t id;
  };
  struct row_state {
    int64_t pending = 0;    // handed over, no outcome yet
    bool sealed = false;
    bool given_up = false;  // one was given up: the row stays for the reconciler
  };
  struct address_state {
    std::deque<int64_t> publishes;       // rows, in publish order, without an outcome yet
    std::deque<bool> outcomes;           // confirmed?, in order, without their publish yet
  };
  void run();
  void drain_notes();
  void outcome(natsMsg* msg, bool confirmed);
  void finish_row(int64_t id, bool confirmed);
  void settle_row(int64_t id, row_state& s);
  void delete_confirmed();
  void reconcile();
  bool ensure_connected();

  const outbox_options opt_;
  jetstream_source& source_;
  pg_session session_;
  moodycamel::ConcurrentQueue<note> from_finalizer_, from_broker_;
  // Keeper thread only.
  std::unordered_map<natsMsg*, address_state> addresses_;
  std::unordered_map<int64_t, row_state> rows_;
  std::vector<int64_t> done_;  // rows to delete
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_;
  std::chrono::steady_clock::time_point last_reconcile_{};
  std::atomic<int64_t> reconciled_rows_{0};
};

}  // namespace trail
