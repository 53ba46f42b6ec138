#pragma once
// The broker side's metrics, one struct per component (registered in
// common/metrics.h's registry on first use; traild touches them at start).

#include <string>
#include <vector>

#include "common/metrics.h"

namespace trail {

// The JetStream source: fetching, in-flight bound, consumer state, settling.
struct source_metrics {
  static source_metrics& get();
  prometheus::Counter& redeliveries;
  prometheus::Counter& messages_handed_back;
  prometheus::Gauge& inflight_events;
  prometheus::Gauge& inflight_bytes;
  prometheus::Gauge& inflight_events_limit;
  prometheus::Gauge& inflight_bytes_limit;
  prometheus::Counter& backpressure_pauses;
  prometheus::Counter& backpressure_seconds;
  prometheus::Gauge& consumer_pending;
  prometheus::Gauge& consumer_ack_pending;
  prometheus::Counter& nats_reconnects;

 private:
  source_metrics();
};

// The commit finalizer's republishing and the outbox keeper.
struct republish_metrics {
  static republish_metrics& get();
  prometheus::Counter& confirmed;
  prometheus::Counter& failed;
  prometheus::Counter& retries;
  prometheus::Gauge& retry_backlog;
  prometheus::Gauge& unconfirmed;
  prometheus::Counter& outbox_republished;
  prometheus::Gauge& outbox_waiting;
  prometheus::Histogram& end_to_end_seconds;

 private:
  republish_metrics();
};

// The checkpointer (signed checkpoints of the tenants' chains).
struct checkpoint_metrics {
  static checkpoint_metrics& get();
  prometheus::Counter& signed_total;
  prometheus::Counter& failed_rounds;
  prometheus::Gauge& last_round;

 private:
  checkpoint_metrics();
};

// The dead-letter publisher.
struct dead_letter_metrics {
  static dead_letter_metrics& get();
  prometheus::Counter& dead_lettered(const std::string& reason);
  prometheus::Counter& in_database;
  // The reasons exported at 0 from the start.
  static const std::vector<std::string>& reasons();

 private:
  dead_letter_metrics();
  prometheus::Family<prometheus::Counter>& family_;
};

}  // namespace trail
