#include "common/metrics.h"

namespace trail {
namespace {
using namespace prometheus;

Counter& counter(Registry& r, const std::string& name, const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(r).Add({});
}
}  // namespace

metrics& metrics::get() {
  static metrics m;
  return m;
}

metrics::metrics()
    : registry_(std::make_shared<Registry>()),
      committed(counter(*registry_, "trail_events_committed_total", "Events durably stored in audit.events")),
      duplicates(counter(*registry_, "trail_duplicates_skipped_total",
                         "Events not stored again because an earlier delivery already stored them")),
      redeliveries(counter(*registry_, "trail_redeliveries_total", "Messages JetStream delivered more than once")),
      republish_ok(counter(*registry_, "trail_republish_confirmed_total",
                           "Committed events republished and confirmed by the broker")),
      republish_failed(counter(*registry_, "trail_republish_failed_total",
                               "Committed events whose republish the broker did not confirm")),
      commits(counter(*registry_, "trail_commits_total", "COPY transactions committed")),
      db_errors(counter(*registry_, "trail_db_errors_total", "Failed database round trips (each is retried or bisected)")),
      batch_events(BuildHistogram()
                       .Name("trail_transaction_events")
                       .Help("Events per committed transaction")
                       .Register(*registry_)
                       .Add({}, Histogram::BucketBoundaries{1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000})),
      flush_seconds(BuildHistogram()
                        .Name("trail_transaction_seconds")
                        .Help("Time from BEGIN to COMMIT of one COPY transaction")
                        .Register(*registry_)
                        .Add({}, Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      inflight_events(BuildGauge().Name("trail_inflight_events").Help("Messages fetched and not yet acked or dead-lettered").Register(*registry_).Add({})),
      inflight_bytes(BuildGauge().Name("trail_inflight_bytes").Help("Bytes of those messages").Register(*registry_).Add({})),
      batchers(BuildGauge().Name("trail_tenant_batchers").Help("Live tenant batcher actors").Register(*registry_).Add({})),
      dlq_family_(BuildCounter().Name("trail_events_dead_lettered_total").Help("Messages sent to the dead-letter stream, by reason").Register(*registry_)) {
  auto& fam = BuildCounter().Name("trail_events_received_total").Help("Events received, by content mode").Register(*registry_);
  for (int i = 0; i < 4; ++i) received_[i] = &fam.Add({{"mode", to_string(static_cast<ingest_mode>(i))}});
}

prometheus::Counter& metrics::dead_lettered(const std::string& reason) { return dlq_family_.Add({{"reason", reason}}); }

}  // namespace trail
