#pragma once
// Tenant batching actors (CAF 0.17), exposed for deterministic tests.
//
// tenant_router owns the tenant -> batcher map. It spawns a linked
// tenant_batcher on a tenant's first records (while fewer than
// batch.max_tenant_batchers live; beyond that, records go to one shared
// overflow batcher) and retires it when the batcher
// reports itself idle, but only if the batcher has received every record
// message the router sent it (so no records can be in flight to a stopping
// batcher). A batcher owns its pending records until it flushes them into the
// batch_sink: at batch.max_events, at batch.max_bytes, or batch.max_linger_ms
// after its first pending record (a timer armed only while records wait).

#include <caf/all.hpp>

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/metrics.h"
#include "common/record.h"
#include "config/config.h"
#include "sinks/sink.h"

namespace trail {
using tenant_groups = std::vector<record_batch>;
}  // namespace trail

// Local-only message types (never serialized).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::record_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::tenant_groups)

namespace trail {

using flush_atom = caf::atom_constant<caf::atom("flush")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using retire_atom = caf::atom_constant<caf::atom("retire")>;

struct batcher_state {
  std::string tenant;
  record_batch pending;
  size_t pending_bytes = 0;
  uint64_t epoch = 0;           // identifies the current linger timer
  bool linger_armed = false;
  bool idle_armed = false;
  uint64_t received = 0;        // record messages received from the router
  uint32_t handled = 0;
  caf::actor_clock::time_point last_flush;  // the actor's clock: tests move it
};

caf::behavior tenant_batcher(caf::stateful_actor<batcher_state>* self, std::string tenant, caf::actor router,
                             const config* cfg, batch_sink* sink);

struct router_state {
  struct entry {
    caf::actor batcher;
    uint64_t sent = 0;
  };
  std::unordered_map<std::string, entry> batchers;  // at most batch.max_tenant_batchers
  caf::actor overflow;  // shared by tenants beyond the bound; spawned on first need
  uint32_t handled = 0;
};

// Called from inside an actor's handler (mailbox().size() belongs to the
// actor's own thread): records its mailbox depth every kMailboxSampleEvery-th call.
template <class Self>
void sample_mailbox(Self* self, uint32_t& handled, prometheus::Histogram& h) {
  if (++handled % metrics::kMailboxSampleEvery == 0) h.Observe(static_cast<double>(self->mailbox().size()));
}

// Receives tenant_groups (each group: records of one tenant).
caf::behavior tenant_router(caf::stateful_actor<router_state>* self, const config* cfg, batch_sink* sink);

}  // namespace trail
