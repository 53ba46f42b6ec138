#pragma once
// What happens after COMMIT, on one thread of its own so writers go straight
// back to the database:
//   1. republish each committed event on <prefix>.<tenant_id> (asynchronously,
//      with Nats-Msg-Id "<tenant>:<sequence>", so a repeat after a crash is
//      dropped by the AUDIT_COMMITTED stream's duplicate window);
//   2. count the event down on its source message; the last event acks it.
// Both go out on the one NATS connection, publish first, so the broker never
// sees the ack of a message whose committed event it has not received.

#include <blockingconcurrentqueue.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "ingest/dead_letter.h"
#include "ingest/jetstream.h"
#include "ingest/outbox.h"
#include "sinks/sink.h"

namespace trail {

struct finalizer_options {
  bool committed_enabled = false;
  std::string committed_prefix;  // subjects <prefix>.<tenant_id>
  bool committed_stream = false;  // JetStream publishes with PubAck (else core publishes)
  int64_t publish_ack_timeout_ms = 0;
  int64_t republish_retry_max = 0;
};

class commit_finalizer final : public commit_observer {
 public:
  // `outbox`: told which message carries each event of an audit.outbox row
  // (nullptr when the committed stream is off).
  commit_finalizer(finalizer_options opt, jetstream_source& source, dead_letter_publisher& dlq, outbox_keeper* outbox);
  ~commit_finalizer() override;

  void start();
  void stop();  // finishes what is queued, then stops

  void committed(std::vector<audit_record>&& records) override;
  void refused(audit_record&& record, dlq_reason code, std::string message) override;

 private:
  void run();
  void republish(const audit_record& r);
  void retry_republishes();
  // False when it could not go out now (then it waits in the retry queue).
  bool send(natsMsg* msg, jsPubOptions* po);

  const finalizer_options opt_;
  jetstream_source& source_;
  dead_letter_publisher& dlq_;
  outbox_keeper* outbox_;
  moodycamel::BlockingConcurrentQueue<std::vector<audit_record>> queue_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // Reused for every republish (finalizer thread only).
  std::string buffer_;
  std::string subject_;
  std::string msg_id_;
  std::string recorded_text_;
  int64_t recorded_us_ = 0;
  std::chrono::steady_clock::time_point last_retry_{};
};

}  // namespace trail
