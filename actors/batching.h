#pragma once
// Batcher actors (CAF 0.17), one per writer lane, exposed for deterministic tests.
//
// A batcher receives the records of its lane from the validators (one message
// per validated chunk), keeps them grouped by tenant, and hands its writer one
// transaction's worth — whole tenant batches, tenant after tenant — each time
// the writer asks for work (`ready_atom`, sent from the writer's thread after
// each transaction). So batch size follows load with no linger and no knob:
// at a trickle the writer is idle and an event is written as soon as it is
// validated; under load events gather for as long as one transaction takes and
// the next transaction is larger (group commit). A handed batch is at most
// pg.txn_max_events / pg.txn_max_bytes; what remains waits for the next ask.
// Memory is bounded by the in-flight gate at the fetch loop: the batcher holds
// nothing the gate has not counted.

#include <caf/all.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "actors/actor_metrics.h"
#include "common/record.h"
#include "sinks/sink.h"

namespace trail {

}  // namespace trail

// Local-only message type (never serialized).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::record_batch)

namespace trail {

using ready_atom = caf::atom_constant<caf::atom("ready")>;

struct batcher_limits {
  size_t max_events = 0;  // pg.txn_max_events
  size_t max_bytes = 0;   // pg.txn_max_bytes (COPY bytes)
};

// Records waiting for a writer, grouped by tenant in the order tenants first
// appeared. Pure (no actor); the lane batcher and the micro-benchmark use it.
class tenant_groups {
 public:
  void add(record_batch&& records);
  // At most `limits` worth of records (whole tenant groups first; a group
  // larger than what is left is split; one record always goes), in order.
  record_batch take(const batcher_limits& limits);
  size_t pending() const { return pending_; }

 private:
  std::vector<record_batch> groups_;
  std::unordered_map<std::string, size_t> group_of_;
  size_t pending_ = 0;
};

struct batcher_state {
  size_t lane = 0;
  tenant_groups waiting;
  bool writer_idle = true;  // the writer asked for work and has none
  uint32_t handled = 0;
};

// `sink` must outlive the actor; it calls back with ready_atom (see above).
caf::behavior lane_batcher(caf::stateful_actor<batcher_state>* self, size_t lane, batcher_limits limits,
                           batch_sink* sink);

// Called from inside an actor's handler (mailbox().size() belongs to the
// actor's own thread): records its mailbox depth every kMailboxSampleEvery-th call.
template <class Self>
void sample_mailbox(Self* self, uint32_t& handled, prometheus::Histogram& h) {
  if (++handled % actor_metrics::kMailboxSampleEvery == 0) h.Observe(static_cast<double>(self->mailbox().size()));
}

}  // namespace trail
