#pragma once
// The one Prometheus registry of traild. Each component declares its own
// metrics beside itself (actors/actor_metrics.h, ingest/ingest_metrics.h,
// sinks/writer_metrics.h) and registers them here; `GET /metrics` on
// metrics.addr serves the registry. Labels stay low-cardinality: never a
// tenant (the opt-in top-N gauge below is bounded).

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "common/top_tenants.h"

namespace trail::metrics {

std::shared_ptr<prometheus::Registry> registry();

using labels = std::map<std::string, std::string>;
prometheus::Family<prometheus::Counter>& counter_family(const std::string& name, const std::string& help);
prometheus::Family<prometheus::Gauge>& gauge_family(const std::string& name, const std::string& help);
prometheus::Counter& counter(const std::string& name, const std::string& help, const labels& l = {});
prometheus::Gauge& gauge(const std::string& name, const std::string& help, const labels& l = {});
prometheus::Histogram& histogram(const std::string& name, const std::string& help,
                                 prometheus::Histogram::BucketBoundaries buckets, const labels& l = {});

// The opt-in top-N tenant gauge (metrics.top_tenants); null when off.
void enable_top_tenants(size_t n);
top_tenants* tenants();

}  // namespace trail::metrics

namespace trail {

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
