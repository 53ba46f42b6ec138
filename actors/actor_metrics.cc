#include "actors/actor_metrics.h"

#include <string>

namespace trail {
namespace {
prometheus::Histogram& mailbox(const char* actor) {
  return metrics::histogram("trail_actor_mailbox_messages",
                            "Messages waiting in an actor's mailbox, sampled by the actor every 64th message it handles",
                            {0, 1, 4, 16, 64, 256, 1024, 4096, 16384}, {{"actor", actor}});
}
}  // namespace

actor_metrics& actor_metrics::get() {
  static actor_metrics m;
  return m;
}

actor_metrics::actor_metrics()
    : mailbox_validator(mailbox("validator")),
      mailbox_batcher(mailbox("batcher")),
      batcher_pending_family_(metrics::gauge_family(
          "trail_batcher_pending_events", "Validated events waiting for their writer's next transaction, by writer lane")) {
  auto& fam = metrics::counter_family("trail_events_received_total", "Events received, by content mode");
  for (int i = 0; i < 4; ++i) received_[i] = &fam.Add({{"mode", to_string(static_cast<ingest_mode>(i))}});
}

prometheus::Gauge& actor_metrics::batcher_pending(size_t lane) {
  return batcher_pending_family_.Add({{"writer", std::to_string(lane)}});
}

}  // namespace trail
