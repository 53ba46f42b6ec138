#pragma once
// Signed checkpoints (docs/INTEGRITY.md, "Checkpoints"), made by one thread
// with a PostgreSQL connection of its own.
//
// Every integrity.checkpoint_interval_s, and at once when the UTC day changes
// (a partition boundary), the thread takes the tenants whose head moved past
// their last checkpoint, and for each one:
//   1. reads its head (last sequence, head hash) as committed;
//   2. signs the checkpoint note (Ed25519, integrity/note.h);
//   3. publishes it on <checkpoint_prefix>.<tenant> and waits for the broker's
//      PubAck (Nats-Msg-Id "<tenant>:<sequence>": a second replica's or a
//      retry's copy of the same checkpoint is dropped by the stream);
//   4. adds the row to audit.checkpoints.
// A checkpoint is in the database only once the broker holds it, so every
// stored checkpoint has a copy outside the database. A round that fails (the
// broker or PostgreSQL away) is retried at the next one; nothing is lost but
// time. Replicas take turns through an advisory lock.
//
// The same rounds record break-glass changes (audit.break_glass_log, written
// by the ledger's triggers; docs/COMPLIANCE.md) as audit events in the
// tenant's own trail: each entry is published into the AUDIT stream (action
// trail.break_glass, Nats-Msg-Id "break-glass-<id>") and then marked
// recorded. This runs without a signing key too.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "ingest/jetstream.h"
#include "integrity/note.h"
#include "sinks/pg_session.h"

namespace trail {

struct checkpointer_options {
  std::string pg_dsn;
  pg_timeouts timeouts;
  std::string subject_prefix;  // audit.checkpoints
  std::string events_subject;  // audit.events: where break-glass entries are recorded
  int64_t interval_s = 10;
  int64_t publish_ack_timeout_ms = 10000;
  size_t tenants_per_round = 1000;
};

class checkpointer {
 public:
  // Without a key, only break-glass entries are recorded.
  checkpointer(checkpointer_options opt, std::optional<integrity::signing_key> key, jetstream_source& source);
  ~checkpointer();

  void start();
  void stop();
  // Runs one round now, on the caller's thread (tests; traild's shutdown).
  // Returns the checkpoints stored, or -1 when the round failed.
  int64_t round();

 private:
  void run();
  bool sign_heads(int64_t& stored, std::string& step, std::string& error);
  bool record_break_glass(std::string& step, std::string& error);

  const checkpointer_options opt_;
  const std::optional<integrity::signing_key> key_;
  jetstream_source& source_;
  pg_session session_;
  std::mutex mu_;  // one round at a time
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace trail
