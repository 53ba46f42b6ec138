#pragma once
// The actors' metrics (registered in common/metrics.h's registry on first use;
// traild touches them at start so that /metrics lists them from the start).

#include <cstdint>

#include "common/metrics.h"
#include "decode/audit_event.h"

namespace trail {

struct actor_metrics {
  static actor_metrics& get();

  // Events received, by content mode (a refused message counts once).
  prometheus::Counter& received(ingest_mode m) { return *received_[static_cast<int>(m)]; }
  // Mailbox depth of the validator and batcher actors, sampled by the actor
  // itself on every kMailboxSampleEvery-th message it handles.
  prometheus::Histogram& mailbox_validator;
  prometheus::Histogram& mailbox_batcher;
  static constexpr uint32_t kMailboxSampleEvery = 64;
  // Validated events waiting for their writer's next transaction.
  prometheus::Gauge& batcher_pending(size_t lane);

 private:
  actor_metrics();
  prometheus::Counter* received_[4];
  prometheus::Family<prometheus::Gauge>& batcher_pending_family_;
};

}  // namespace trail
