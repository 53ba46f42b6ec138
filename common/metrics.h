#pragma once
// Trail's Prometheus metrics, declared in one place. Every component counts
// through this struct; `GET /metrics` on metrics.addr serves the registry.
// Labels stay low-cardinality: never a tenant.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/record.h"
#include "common/top_tenants.h"

namespace trail {

class metrics {
  // Declared first: the references below are initialized from it.
  std::shared_ptr<prometheus::Registry> registry_;

 public:
  static metrics& get();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  prometheus::Counter& received(ingest_mode m) { return *received_[static_cast<int>(m)]; }
  prometheus::Counter& dead_lettered(const std::string& reason);
  // `sqlstate` may be empty (connection lost or timed out): counted as class
  // "connection"; a word (not a SQLSTATE) is its own class, e.g. "ledger_invariant".
  prometheus::Counter& db_error(const std::string& sqlstate);
  // Tenants writer `index` remembers as having a head row.
  prometheus::Gauge& writer_known_tenants(int index);
  prometheus::Gauge& batcher_pending(size_t lane);
  // The label values exported at 0 from the start, so that rate() and
  // absence alerts work before the first occurrence.
  static const std::vector<std::string>& dead_letter_reasons();
  static const std::vector<std::string>& db_error_classes();

  prometheus::Counter& committed;
  prometheus::Counter& duplicates;
  prometheus::Counter& messages_handed_back;
  prometheus::Counter& redeliveries;
  prometheus::Counter& republish_ok;
  prometheus::Counter& republish_failed;
  prometheus::Counter& republish_retries;
  prometheus::Counter& outbox_republished;
  prometheus::Gauge& outbox_waiting;
  prometheus::Gauge& republish_retry_backlog;
  prometheus::Gauge& republish_unconfirmed;
  prometheus::Counter& dead_letters_in_database;
  prometheus::Counter& commits;
  prometheus::Histogram& batch_events;
  prometheus::Histogram& batch_bytes;
  prometheus::Histogram& flush_seconds;
  prometheus::Histogram& commit_seconds;
  prometheus::Histogram& end_to_end_seconds;
  prometheus::Gauge& inflight_events;
  prometheus::Gauge& inflight_bytes;
  prometheus::Gauge& inflight_events_limit;
  prometheus::Gauge& inflight_bytes_limit;
  prometheus::Counter& backpressure_pauses;
  prometheus::Counter& backpressure_seconds;
  prometheus::Gauge& consumer_pending;
  prometheus::Gauge& consumer_ack_pending;
  prometheus::Gauge& pg_connections_busy;
  prometheus::Gauge& pg_connections_idle;
  prometheus::Counter& nats_reconnects;
  // Mailbox depth of the validator, router and batcher actors, sampled by the
  // actor itself on every kMailboxSampleEvery-th message it handles.
  prometheus::Histogram& mailbox_validator;
  prometheus::Histogram& mailbox_batcher;
  static constexpr uint32_t kMailboxSampleEvery = 64;

  // The opt-in top-N tenant gauge (metrics.top_tenants); null when off.
  void enable_top_tenants(size_t n);
  top_tenants* tenants() const { return tenants_.get(); }

 private:
  metrics();
  static prometheus::Histogram& mailbox_histogram(prometheus::Registry& r, const char* actor);
  prometheus::Counter* received_[4];
  prometheus::Family<prometheus::Counter>& dlq_family_;
  prometheus::Family<prometheus::Counter>& db_error_family_;
  prometheus::Family<prometheus::Gauge>& known_tenants_family_;
  prometheus::Family<prometheus::Gauge>& batcher_pending_family_;
  std::unique_ptr<top_tenants> tenants_;
};

// Readiness as /readyz reports it: each part sets its own flag.
struct health {
  std::atomic<bool> nats_connected{false};
  std::atomic<bool> nats_closing{false};  // set before a deliberate close
  std::atomic<bool> consumer_running{false};
  std::atomic<int> writers_connected{0};
  std::atomic<int> writers_total{0};
  std::atomic<int> writers_blocked{0};  // writers refusing to write: a ledger invariant failed
  bool ready() const {
    return nats_connected && consumer_running && writers_total > 0 && writers_connected == writers_total &&
           writers_blocked == 0;
  }
};

}  // namespace trail
