#pragma once
// Publishes refused messages to the dead-letter subject and only then
// terminates them at the source: a dead letter is stored (the AUDIT_DLQ stream
// confirmed it), never just broadcast.
//
// Thread: one publisher thread owns the queue's consumer side; validators and
// the commit finalizer enqueue from theirs. Publishing is synchronous (it waits
// for the broker's PubAck, 5 s at most) and retried with backoff while the
// broker is unreachable, until it succeeds or the shutdown deadline passes; an
// unsettled message is redelivered after a restart. A dead letter the broker
// cannot take (larger than max_payload with Trail's headers, or refused three
// times) is kept in PostgreSQL (dead_letter_store) and a reference published.

#include <blockingconcurrentqueue.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "common/record.h"
#include "ingest/jetstream.h"
#include "ingest/source.h"
#include "sinks/dead_letter_store.h"

namespace trail {

struct dead_letter_options {
  std::string stream;       // the consumed stream (names the original in each dead letter)
  std::string dlq_subject;  // where dead letters are published
};

class dead_letter_publisher final : public message_settler {
 public:
  // `installation_key`: the secret in audit.installation (keys each dead letter's Nats-Msg-Id).
  dead_letter_publisher(dead_letter_options opt, jetstream_source& source, dead_letter_store& store,
                        std::string installation_key);
  ~dead_letter_publisher() override;

  void start();
  // Publishes what is queued until `deadline`, then stops.
  void stop(std::chrono::steady_clock::time_point deadline);

  // The whole message is refused (validation): it is terminated once stored.
  void reject_message(inbound_message* m, rejection why);
  // One event of the message was refused by the database: the message is
  // dead-lettered once, and the event's reference is settled as dead-lettered
  // (or, should the dead letter not be stored before shutdown, as retry).
  void reject_event(message_ref event, rejection why);

  void reject(inbound_message* m, rejection why) override { reject_message(m, std::move(why)); }
  void settle_empty(inbound_message* m) override { source_.finish(m, disposition::ack); }

 private:
  struct item {
    inbound_message* msg;
    rejection why;
    bool whole_message;
    message_ref event;  // for one event's rejection
  };
  enum class outcome { stored, failed, refused, too_large };
  void run();
  // Publishes the dead letter, or (stored_id > 0) a reference to its row.
  outcome publish(const item& it, int64_t stored_id);
  bool store_in_database(const item& it, int64_t& id);
  bool past_deadline() const;

  const dead_letter_options opt_;
  jetstream_source& source_;
  dead_letter_store& store_;
  const std::string key_;
  moodycamel::BlockingConcurrentQueue<item> queue_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex stop_mu_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace trail
