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
      messages_handed_back(counter(*registry_, "trail_messages_handed_back_total",
                                   "Messages nak'ed for redelivery because one of their events was dropped unsettled (shutdown, abandoned write)")),
      redeliveries(counter(*registry_, "trail_redeliveries_total", "Messages JetStream delivered more than once")),
      republish_ok(counter(*registry_, "trail_republish_confirmed_total",
                           "Committed events republished and confirmed by the broker")),
      republish_failed(counter(*registry_, "trail_republish_failed_total",
                               "Committed events whose republish the broker did not confirm")),
      republish_retries(counter(*registry_, "trail_republish_retries_total",
                                "Committed-event republishes sent again (unconfirmed, refused or timed out)")),
      outbox_republished(counter(*registry_, "trail_outbox_republished_total",
                                 "Committed events republished from the table because their broker confirmation never came (audit.outbox)")),
      outbox_waiting(BuildGauge().Name("trail_outbox_rows_waiting").Help("audit.outbox rows whose republishes this traild still waits to see confirmed").Register(*registry_).Add({})),
      republish_retry_backlog(BuildGauge().Name("trail_republish_retry_backlog").Help("Committed events waiting to be republished again (bound: nats.republish_retry_max)").Register(*registry_).Add({})),
      republish_unconfirmed(BuildGauge().Name("trail_republish_unconfirmed").Help("Committed-event republishes sent and not yet confirmed by the broker (bound: nats.publish_max_pending)").Register(*registry_).Add({})),
      dead_letters_in_database(counter(*registry_, "trail_dead_letters_in_database_total",
                                       "Dead letters kept in audit.dead_letters because the broker cannot carry them")),
      commits(counter(*registry_, "trail_commits_total", "COPY transactions committed")),
      batch_events(BuildHistogram()
                       .Name("trail_transaction_events")
                       .Help("Events per committed transaction")
                       .Register(*registry_)
                       .Add({}, Histogram::BucketBoundaries{1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000})),
      batch_bytes(BuildHistogram()
                      .Name("trail_transaction_bytes")
                      .Help("COPY bytes per committed transaction")
                      .Register(*registry_)
                      .Add({}, Histogram::BucketBoundaries{1e3, 1e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2e7})),
      flush_seconds(BuildHistogram()
                        .Name("trail_transaction_seconds")
                        .Help("Time from BEGIN to COMMIT of one COPY transaction")
                        .Register(*registry_)
                        .Add({}, Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      commit_seconds(BuildHistogram()
                         .Name("trail_commit_seconds")
                         .Help("Latency of the COMMIT statement alone")
                         .Register(*registry_)
                         .Add({}, Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25})),
      end_to_end_seconds(BuildHistogram()
                             .Name("trail_end_to_end_seconds")
                             .Help("From the broker storing an event to its COMMIT")
                             .Register(*registry_)
                             .Add({}, Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})),
      inflight_events(BuildGauge().Name("trail_inflight_events").Help("Messages fetched and not yet acked or dead-lettered").Register(*registry_).Add({})),
      inflight_bytes(BuildGauge().Name("trail_inflight_bytes").Help("Bytes of those messages").Register(*registry_).Add({})),
      inflight_events_limit(BuildGauge().Name("trail_inflight_events_limit").Help("Bound on in-flight messages (limits.inflight_max_events)").Register(*registry_).Add({})),
      inflight_bytes_limit(BuildGauge().Name("trail_inflight_bytes_limit").Help("Bound on in-flight bytes (limits.inflight_max_bytes)").Register(*registry_).Add({})),
      backpressure_pauses(counter(*registry_, "trail_backpressure_pauses_total", "Times fetching paused because the in-flight bound was reached")),
      backpressure_seconds(counter(*registry_, "trail_backpressure_seconds_total", "Time spent with fetching paused at the in-flight bound")),
      consumer_pending(BuildGauge().Name("trail_consumer_pending_messages").Help("Messages the durable consumer has not delivered yet (polled)").Register(*registry_).Add({})),
      consumer_ack_pending(BuildGauge().Name("trail_consumer_ack_pending_messages").Help("Messages delivered and not acked yet (polled)").Register(*registry_).Add({})),
      pg_connections_busy(BuildGauge().Name("trail_pg_connections").Help("PostgreSQL writer connections, by state").Register(*registry_).Add({{"state", "busy"}})),
      pg_connections_idle(BuildGauge().Name("trail_pg_connections").Help("PostgreSQL writer connections, by state").Register(*registry_).Add({{"state", "idle"}})),
      nats_reconnects(counter(*registry_, "trail_nats_reconnects_total", "Reconnections to NATS")),
      mailbox_validator(mailbox_histogram(*registry_, "validator")),
      mailbox_batcher(mailbox_histogram(*registry_, "batcher")),
      dlq_family_(BuildCounter().Name("trail_events_dead_lettered_total").Help("Messages sent to the dead-letter stream, by reason").Register(*registry_)),
      db_error_family_(BuildCounter().Name("trail_db_errors_total").Help("Failed database round trips, by SQLSTATE class (each is retried or bisected)").Register(*registry_)),
      known_tenants_family_(BuildGauge().Name("trail_writer_known_tenants").Help("Tenants a writer remembers as having a head row (bound: pg.known_tenants_max)").Register(*registry_)),
      batcher_pending_family_(BuildGauge().Name("trail_batcher_pending_events").Help("Validated events waiting for their writer's next transaction, by writer lane").Register(*registry_)) {
  for (const auto& r : dead_letter_reasons()) dlq_family_.Add({{"reason", r}});
  for (const auto& c : db_error_classes()) db_error_family_.Add({{"class", c}});
  BuildGauge().Name("trail_build_info").Help("Build information").Register(*registry_).Add({{"version", TRAIL_VERSION}}).Set(1);
  auto& fam = BuildCounter().Name("trail_events_received_total").Help("Events received, by content mode").Register(*registry_);
  for (int i = 0; i < 4; ++i) received_[i] = &fam.Add({{"mode", to_string(static_cast<ingest_mode>(i))}});
}

prometheus::Histogram& metrics::mailbox_histogram(prometheus::Registry& r, const char* actor) {
  return BuildHistogram()
      .Name("trail_actor_mailbox_messages")
      .Help("Messages waiting in an actor's mailbox, sampled by the actor every 64th message it handles")
      .Register(r)
      .Add({{"actor", actor}}, Histogram::BucketBoundaries{0, 1, 4, 16, 64, 256, 1024, 4096, 16384});
}

void metrics::enable_top_tenants(size_t n) {
  if (n == 0 || tenants_) return;
  auto& family = BuildGauge()
                     .Name("trail_top_tenant_committed_events")
                     .Help("Events committed since start, for the metrics.top_tenants tenants with the most")
                     .Register(*registry_);
  auto& tracked = BuildGauge()
                      .Name("trail_top_tenants_tracked")
                      .Help("Tenants whose committed events the top-N gauge is counting (bounded, see README)")
                      .Register(*registry_)
                      .Add({});
  tenants_ = std::make_unique<top_tenants>(family, n, 0, &tracked);
}

prometheus::Counter& metrics::dead_lettered(const std::string& reason) { return dlq_family_.Add({{"reason", reason}}); }

prometheus::Counter& metrics::db_error(const std::string& sqlstate) {
  std::string cls = "connection";
  if (sqlstate.size() == 5) cls = sqlstate.substr(0, 2);
  else if (!sqlstate.empty()) cls = sqlstate;
  return db_error_family_.Add({{"class", cls}});
}

prometheus::Gauge& metrics::batcher_pending(size_t lane) {
  return batcher_pending_family_.Add({{"writer", std::to_string(lane)}});
}

prometheus::Gauge& metrics::writer_known_tenants(int index) {
  return known_tenants_family_.Add({{"writer", std::to_string(index)}});
}

const std::vector<std::string>& metrics::dead_letter_reasons() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> v;
    for (dlq_reason r : reason::all) v.emplace_back(to_string(r));
    return v;
  }();
  return all;
}

const std::vector<std::string>& metrics::db_error_classes() {
  // connection: lost, refused or timed out; 22/23/54: the data (bisected);
  // 40: serialization/deadlock; 53: resources; 55/57: object state, operator
  // intervention (shutdown, cancel, statement_timeout); 58/XX: system and
  // internal; ledger_invariant: a missing head row or a repeated sequence.
  static const std::vector<std::string> all = {"connection", "08", "22", "23", "40", "53", "54", "55", "57",
                                               "58", "XX", "ledger_invariant"};
  return all;
}

}  // namespace trail
