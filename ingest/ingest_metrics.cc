#include "ingest/ingest_metrics.h"

#include "decode/rejection.h"

namespace trail {

source_metrics& source_metrics::get() {
  static source_metrics m;
  return m;
}

source_metrics::source_metrics()
    : redeliveries(metrics::counter("trail_redeliveries_total", "Messages JetStream delivered more than once")),
      messages_handed_back(metrics::counter("trail_messages_handed_back_total",
                                            "Messages nak'ed for redelivery because one of their events was dropped unsettled (shutdown, abandoned write)")),
      inflight_events(metrics::gauge("trail_inflight_events", "Messages fetched and not yet acked or dead-lettered")),
      inflight_bytes(metrics::gauge("trail_inflight_bytes", "Bytes of those messages")),
      inflight_events_limit(metrics::gauge("trail_inflight_events_limit", "Bound on in-flight messages (limits.inflight_max_events)")),
      inflight_bytes_limit(metrics::gauge("trail_inflight_bytes_limit", "Bound on in-flight bytes (limits.inflight_max_bytes)")),
      backpressure_pauses(metrics::counter("trail_backpressure_pauses_total", "Times fetching paused because the in-flight bound was reached")),
      backpressure_seconds(metrics::counter("trail_backpressure_seconds_total", "Time spent with fetching paused at the in-flight bound")),
      consumer_pending(metrics::gauge("trail_consumer_pending_messages", "Messages the durable consumer has not delivered yet (polled)")),
      consumer_ack_pending(metrics::gauge("trail_consumer_ack_pending_messages", "Messages delivered and not acked yet (polled)")),
      nats_reconnects(metrics::counter("trail_nats_reconnects_total", "Reconnections to NATS")) {}

republish_metrics& republish_metrics::get() {
  static republish_metrics m;
  return m;
}

republish_metrics::republish_metrics()
    : confirmed(metrics::counter("trail_republish_confirmed_total", "Committed events republished and confirmed by the broker")),
      failed(metrics::counter("trail_republish_failed_total", "Committed events whose republish the broker did not confirm")),
      retries(metrics::counter("trail_republish_retries_total",
                               "Committed-event republishes sent again (unconfirmed, refused or timed out)")),
      retry_backlog(metrics::gauge("trail_republish_retry_backlog",
                                   "Committed events waiting to be republished again (bound: nats.republish_retry_max)")),
      unconfirmed(metrics::gauge("trail_republish_unconfirmed",
                                 "Committed-event republishes sent and not yet confirmed by the broker (bound: nats.publish_max_pending)")),
      outbox_republished(metrics::counter(
          "trail_outbox_republished_total",
          "Committed events republished from the table because their broker confirmation never came (audit.outbox)")),
      outbox_waiting(metrics::gauge("trail_outbox_rows_waiting", "audit.outbox rows whose republishes this traild still waits to see confirmed")),
      end_to_end_seconds(metrics::histogram("trail_end_to_end_seconds", "From the broker storing an event to its COMMIT",
                                            {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})) {}

checkpoint_metrics& checkpoint_metrics::get() {
  static checkpoint_metrics m;
  return m;
}

checkpoint_metrics::checkpoint_metrics()
    : signed_total(metrics::counter("trail_checkpoints_signed_total",
                                    "Checkpoints signed, held by the broker's checkpoint stream and stored in audit.checkpoints")),
      failed_rounds(metrics::counter("trail_checkpoint_rounds_failed_total",
                                     "Checkpoint rounds that stopped on an error (broker or database); retried at the next round")),
      last_round(metrics::gauge("trail_checkpoint_last_round_timestamp_seconds",
                                "When the last checkpoint round completed (Unix time); stale means tenants go unsigned")) {}

dead_letter_metrics& dead_letter_metrics::get() {
  static dead_letter_metrics m;
  return m;
}

dead_letter_metrics::dead_letter_metrics()
    : in_database(metrics::counter("trail_dead_letters_in_database_total",
                                   "Dead letters kept in audit.dead_letters because the broker cannot carry them")),
      family_(metrics::counter_family("trail_events_dead_lettered_total", "Messages sent to the dead-letter stream, by reason")) {
  for (const auto& r : reasons()) family_.Add({{"reason", r}});
}

prometheus::Counter& dead_letter_metrics::dead_lettered(const std::string& reason) { return family_.Add({{"reason", reason}}); }

const std::vector<std::string>& dead_letter_metrics::reasons() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> v;
    for (dlq_reason r : reason::all) v.emplace_back(to_string(r));
    return v;
  }();
  return all;
}

}  // namespace trail
