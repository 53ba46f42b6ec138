#pragma once
// Publishes refused messages to the dead-letter subject and only then
// terminates them at the source: a dead letter is stored (the AUDIT_DLQ stream
// confirmed it), never just broadcast.
//
// Thread: one publisher thread owns the queue's consumer side; validators and
// the commit finalizer enqueue from theirs. Publishing is synchronous (it waits
// for the broker's PubAck) and retried with backoff until it succeeds or the
// process stops; an unsettled message is redelivered after a restart.

#include <blockingconcurrentqueue.h>

#include <atomic>
#include <string>
#include <thread>

#include "actors/cloudevent.h"
#include "ingest/jetstream.h"
#include "ingest/source.h"

namespace trail {

class dead_letter_publisher final : public message_settler {
 public:
  dead_letter_publisher(const config& cfg, jetstream_source& source);
  ~dead_letter_publisher() override;

  void start();
  // Publishes what is queued, then stops.
  void stop();

  // The whole message is refused (validation): it is terminated once stored.
  void reject_message(inbound_message* m, rejection why);
  // One event of the message was refused by the database: the message is
  // dead-lettered once, and this event counts as settled.
  void reject_event(inbound_message* m, rejection why);

  void reject(inbound_message* m, rejection why) override { reject_message(m, std::move(why)); }
  void settle_empty(inbound_message* m) override { source_.finish(m, disposition::ack); }

 private:
  struct item {
    inbound_message* msg;
    rejection why;
    bool whole_message;
  };
  void run();
  bool publish(const item& it);

  const config& cfg_;
  jetstream_source& source_;
  moodycamel::BlockingConcurrentQueue<item> queue_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace trail
