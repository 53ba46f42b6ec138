#include "actors/batching.h"

namespace trail {

void tenant_groups::add(record_batch&& records) {
  for (auto& r : records) {
    auto [it, fresh] = group_of_.emplace(r.tenant_id(), groups_.size());
    if (fresh) groups_.emplace_back();
    groups_[it->second].push_back(std::move(r));
  }
  pending_ += records.size();
}

record_batch tenant_groups::take(const batcher_limits& limits) {
  record_batch out;
  size_t bytes = 0;
  size_t whole = 0;  // groups taken entirely
  for (; whole < groups_.size(); ++whole) {
    auto& g = groups_[whole];
    if (out.empty() && g.size() <= limits.max_events) {
      // The common case under light load: the first group fits; move it whole.
      size_t gb = 0;
      for (const auto& r : g) gb += r.event.text_bytes();
      if (gb <= limits.max_bytes) {
        out = std::move(g);
        bytes = gb;
        continue;
      }
    }
    size_t k = 0;
    while (k < g.size() && out.size() < limits.max_events &&
           (out.empty() || bytes + g[k].event.text_bytes() <= limits.max_bytes)) {
      bytes += g[k].event.text_bytes();
      out.push_back(std::move(g[k]));
      ++k;
    }
    if (k < g.size()) {  // the transaction is full: the rest of this tenant waits
      g.erase(g.begin(), g.begin() + static_cast<long>(k));
      break;
    }
  }
  groups_.erase(groups_.begin(), groups_.begin() + static_cast<long>(whole));
  group_of_.clear();
  for (size_t i = 0; i < groups_.size(); ++i) group_of_.emplace(groups_[i].front().tenant_id(), i);
  pending_ -= out.size();
  return out;
}

caf::behavior lane_batcher(caf::stateful_actor<batcher_state>* self, size_t lane, batcher_limits limits,
                           batch_sink* sink) {
  self->state.lane = lane;
  prometheus::Gauge* pending_gauge = &actor_metrics::get().batcher_pending(lane);
  // Hands the writer its next transaction if it is waiting for one.
  auto hand_over = [=] {
    auto& st = self->state;
    if (st.writer_idle && st.waiting.pending() > 0) {
      st.writer_idle = false;
      sink->submit(st.lane, st.waiting.take(limits));
    }
    pending_gauge->Set(static_cast<double>(st.waiting.pending()));
  };
  return {
      [=](record_batch& records) {
        sample_mailbox(self, self->state.handled, actor_metrics::get().mailbox_batcher);
        self->state.waiting.add(std::move(records));
        hand_over();
      },
      [=](ready_atom) {
        self->state.writer_idle = true;
        hand_over();
      },
  };
}

}  // namespace trail
