#pragma once
// Writers ("lanes"): each owns one libpq connection on a thread of its own and
// writes each batch its lane batcher hands it (whole tenant batches, grouped
// by tenant) with COPY inside one transaction, then asks for the next. A
// tenant always goes to the same writer (hash of its id), so its sequence
// numbers are assigned in one place; the tenant_heads row lock keeps them
// gap-free even across traild replicas.
//
// Failure handling, decided by SQLSTATE:
//  - 23505 (unique violation): an event is already stored; redo the
//    transaction on the dedupe path (look the keys up, store only new ones);
//  - classes 22, 23, 54 (the data itself): bisect the batch until the refused
//    events are alone, dead-letter those with PostgreSQL's message, commit the rest;
//  - anything else (connection lost, server shutting down, …): roll back, wait
//    with exponential backoff and jitter, reconnect and retry. Nothing is
//    dropped or dead-lettered because the database is unavailable.

#include <blockingconcurrentqueue.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "sinks/writer_metrics.h"
#include "sinks/pg_session.h"
#include "sinks/sink.h"

namespace trail {

struct writer_pool_options {
  std::string dsn;
  pg_timeouts timeouts;
  size_t writers = 1;
  size_t known_tenants_max = 0;  // tenant heads known to exist, per writer
  bool outbox = false;           // one audit.outbox row per transaction
};

class postgres_writer_pool final : public batch_sink {
 public:
  postgres_writer_pool(const writer_pool_options& opt, commit_observer& observer, health& h);
  ~postgres_writer_pool() override;

  void start();
  // Writes everything queued (while the database lets it), then stops.
  void stop();
  // Gives up on what cannot be written now (shutdown deadline passed): those
  // messages stay un-acked and JetStream redelivers them.
  void abandon();
  size_t lanes() const override { return writers_.size(); }
  size_t lane_of(std::string_view tenant) const override;
  void submit(size_t lane, record_batch&& batch) override;
  void on_ready(size_t lane, std::function<void()> ready) override;

 private:
  class writer;
  std::vector<std::unique_ptr<writer>> writers_;
};

}  // namespace trail
