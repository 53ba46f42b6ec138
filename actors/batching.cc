#include "actors/batching.h"

#include "common/metrics.h"

namespace trail {

// ---- tenant_batcher ---------------------------------------------------------


caf::behavior tenant_batcher(caf::stateful_actor<batcher_state>* self, std::string tenant, caf::actor router,
                             const config* cfg, batch_sink* sink) {
  self->state.tenant = std::move(tenant);
  self->state.last_flush = self->clock().now();
  const auto linger = std::chrono::milliseconds(cfg->batch_max_linger_ms);
  const auto idle = std::chrono::seconds(cfg->batcher_idle_s);
  auto arm_idle = [=](std::chrono::steady_clock::duration after) {
    if (self->state.idle_armed) return;
    self->state.idle_armed = true;
    self->delayed_send(self, after, idle_atom::value);
  };
  auto flush = [=] {
    auto& st = self->state;
    if (!st.pending.empty()) sink->submit(std::move(st.pending));
    st.pending = {};
    st.pending_bytes = 0;
    ++st.epoch;
    st.linger_armed = false;
    st.last_flush = self->clock().now();
    arm_idle(idle);
  };
  return {
      [=](record_batch& records) {
        auto& st = self->state;
        ++st.received;
        sample_mailbox(self, st.handled, metrics::get().mailbox_batcher);
        if (st.pending.empty()) st.pending.reserve(records.size());
        for (auto& r : records) {
          st.pending_bytes += r.copy_tail.size();
          st.pending.push_back(std::move(r));
        }
        if (static_cast<int64_t>(st.pending.size()) >= cfg->batch_max_events ||
            static_cast<int64_t>(st.pending_bytes) >= cfg->batch_max_bytes) {
          flush();
        } else if (!st.linger_armed) {
          st.linger_armed = true;
          self->delayed_send(self, linger, flush_atom::value, st.epoch);
        }
      },
      [=](flush_atom, uint64_t epoch) {
        if (epoch == self->state.epoch) flush();
      },
      [=](flush_atom) { flush(); },
      [=](idle_atom) {
        auto& st = self->state;
        st.idle_armed = false;
        if (!st.pending.empty()) return;  // busy: the next flush re-arms
        const auto quiet = self->clock().now() - st.last_flush;
        if (quiet >= idle) self->send(router, idle_atom::value, st.tenant, st.received);
        else arm_idle(idle - quiet);
      },
      [=](retire_atom) {
        if (!self->state.pending.empty()) flush();
        self->quit();
      },
  };
}

// ---- tenant_router ----------------------------------------------------------


caf::behavior tenant_router(caf::stateful_actor<router_state>* self, const config* cfg, batch_sink* sink) {
  metrics::get().batchers_limit.Set(static_cast<double>(cfg->max_tenant_batchers));
  return {
      [=](tenant_groups& groups) {
        auto& st = self->state;
        sample_mailbox(self, st.handled, metrics::get().mailbox_router);
        for (auto& g : groups) {
          auto it = st.batchers.find(g.front().tenant_id);
          if (it == st.batchers.end()) {
            if (st.batchers.size() >= static_cast<size_t>(cfg->max_tenant_batchers)) {
              // At the bound (e.g. a flood of random tenant ids): the records
              // share one overflow batcher, which is never retired. Writers
              // handle batches of mixed tenants.
              if (!st.overflow) {
                st.overflow = self->spawn<caf::linked>(tenant_batcher, std::string(), caf::actor_cast<caf::actor>(self), cfg, sink);
                metrics::get().batchers.Set(static_cast<double>(st.batchers.size() + 1));
              }
              metrics::get().overflow_records.Increment(static_cast<double>(g.size()));
              self->send(st.overflow, std::move(g));
              continue;
            }
            it = st.batchers.emplace(g.front().tenant_id, router_state::entry{}).first;
            it->second.batcher = self->spawn<caf::linked>(tenant_batcher, g.front().tenant_id, caf::actor_cast<caf::actor>(self), cfg, sink);
            metrics::get().batchers.Set(static_cast<double>(st.batchers.size() + (st.overflow ? 1 : 0)));
          }
          ++it->second.sent;
          self->send(it->second.batcher, std::move(g));
        }
      },
      [=](idle_atom, const std::string& tenant, uint64_t received) {
        auto it = self->state.batchers.find(tenant);
        // Retire only if every record message sent to it has been received.
        if (it == self->state.batchers.end() || it->second.sent != received) return;
        self->send(it->second.batcher, retire_atom::value);
        self->state.batchers.erase(it);
        metrics::get().batchers.Set(static_cast<double>(self->state.batchers.size() + (self->state.overflow ? 1 : 0)));
      },
      [=](flush_atom) {
        for (auto& [tenant, e] : self->state.batchers) self->send(e.batcher, flush_atom::value);
        if (self->state.overflow) self->send(self->state.overflow, flush_atom::value);
      },
  };
}

}  // namespace trail
