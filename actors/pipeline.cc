#include "actors/pipeline.h"

#include <caf/all.hpp>

#include <chrono>
#include <unordered_map>

#include "actors/event_decoder.h"
#include "common/log.h"
#include "common/metrics.h"

namespace trail {

using inbound_chunk = std::vector<inbound_message*>;
using tenant_groups = std::vector<record_batch>;

}  // namespace trail

// Local-only message types (never serialized): they carry pointers and
// move-only payloads between actors of one process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::inbound_chunk)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::record_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::tenant_groups)

namespace trail {
namespace {

using flush_atom = caf::atom_constant<caf::atom("flush")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using retire_atom = caf::atom_constant<caf::atom("retire")>;

// ---- tenant_batcher ---------------------------------------------------------

struct batcher_state {
  std::string tenant;
  record_batch pending;
  size_t pending_bytes = 0;
  uint64_t epoch = 0;           // identifies the current linger timer
  bool linger_armed = false;
  bool idle_armed = false;
  uint64_t received = 0;        // record messages received from the router
  std::chrono::steady_clock::time_point last_flush;
};

caf::behavior tenant_batcher(caf::stateful_actor<batcher_state>* self, std::string tenant, caf::actor router,
                             const config* cfg, batch_sink* sink) {
  self->state.tenant = std::move(tenant);
  self->state.last_flush = std::chrono::steady_clock::now();
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
    st.last_flush = std::chrono::steady_clock::now();
    arm_idle(idle);
  };
  return {
      [=](record_batch& records) {
        auto& st = self->state;
        ++st.received;
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
        const auto quiet = std::chrono::steady_clock::now() - st.last_flush;
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

struct router_state {
  struct entry {
    caf::actor batcher;
    uint64_t sent = 0;
  };
  std::unordered_map<std::string, entry> batchers;
};

caf::behavior tenant_router(caf::stateful_actor<router_state>* self, const config* cfg, batch_sink* sink) {
  return {
      [=](tenant_groups& groups) {
        for (auto& g : groups) {
          auto& e = self->state.batchers[g.front().tenant_id];
          if (!e.batcher) {
            e.batcher = self->spawn<caf::linked>(tenant_batcher, g.front().tenant_id, caf::actor_cast<caf::actor>(self), cfg, sink);
            metrics::get().batchers.Set(static_cast<double>(self->state.batchers.size()));
          }
          ++e.sent;
          self->send(e.batcher, std::move(g));
        }
      },
      [=](idle_atom, const std::string& tenant, uint64_t received) {
        auto it = self->state.batchers.find(tenant);
        // Retire only if every record message sent to it has been received.
        if (it == self->state.batchers.end() || it->second.sent != received) return;
        self->send(it->second.batcher, retire_atom::value);
        self->state.batchers.erase(it);
        metrics::get().batchers.Set(static_cast<double>(self->state.batchers.size()));
      },
      [=](flush_atom) {
        for (auto& [tenant, e] : self->state.batchers) self->send(e.batcher, flush_atom::value);
      },
  };
}

// ---- validator ----------------------------------------------------------------

struct validator_state {
  std::unique_ptr<event_decoder> decoder;
  std::unordered_map<std::string, size_t> group_of;
};

caf::behavior validator(caf::stateful_actor<validator_state>* self, caf::actor router, decoder_limits limits,
                        message_settler* settler) {
  self->state.decoder = std::make_unique<event_decoder>(limits);
  return {
      [=](inbound_chunk& chunk) {
        auto& m = metrics::get();
        tenant_groups groups;
        auto& group_of = self->state.group_of;
        group_of.clear();
        for (inbound_message* msg : chunk) {
          decode_outcome out = self->state.decoder->decode(*msg);
          m.received(out.mode).Increment(out.rejected ? 1.0 : static_cast<double>(out.records.size()));
          if (out.rejected) {
            settler->reject(msg, std::move(*out.rejected));
            continue;
          }
          if (out.records.empty()) {
            settler->settle_empty(msg);
            continue;
          }
          // Set before any record leaves this actor: the finalizer counts down.
          msg->outstanding.store(static_cast<uint32_t>(out.records.size()), std::memory_order_release);
          for (auto& r : out.records) {
            auto [it, fresh] = group_of.emplace(r.tenant_id, groups.size());
            if (fresh) groups.emplace_back();
            groups[it->second].push_back(std::move(r));
          }
        }
        if (!groups.empty()) self->send(router, std::move(groups));
      },
  };
}

}  // namespace

namespace {
caf::actor_system_config& configure(caf::actor_system_config& sc, const config& cfg) {
  sc.set("scheduler.max-threads", static_cast<size_t>(std::max<int64_t>(2, cfg.validators)));
  // Idle scheduler threads must not spin: on a small machine the cores are
  // needed by PostgreSQL and nats-server.
  sc.set("work-stealing.aggressive-poll-attempts", static_cast<size_t>(10));
  sc.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(20));
  sc.set("logger.console", caf::atom("none"));
  return sc;
}
}  // namespace

struct actor_pipeline::impl {
  explicit impl(const config& cfg) : system(configure(system_config, cfg)) {}
  caf::actor_system_config system_config;
  caf::actor_system system;
  caf::actor router;
  std::vector<caf::actor> validators;
  std::atomic<size_t> next{0};
};

actor_pipeline::actor_pipeline(const config& cfg, batch_sink& sink, message_settler& settler)
    : impl_(std::make_unique<impl>(cfg)) {
  impl_->router = impl_->system.spawn(tenant_router, &cfg, &sink);
  decoder_limits limits{static_cast<size_t>(cfg.max_event_bytes), static_cast<size_t>(cfg.max_batch_bytes),
                        static_cast<size_t>(cfg.max_batch_events), static_cast<size_t>(cfg.max_json_depth)};
  for (int64_t i = 0; i < cfg.validators; ++i)
    impl_->validators.push_back(impl_->system.spawn(validator, impl_->router, limits, &settler));
}

actor_pipeline::~actor_pipeline() { stop(); }

void actor_pipeline::deliver(std::vector<inbound_message*>&& chunk) {
  const size_t i = impl_->next.fetch_add(1, std::memory_order_relaxed) % impl_->validators.size();
  caf::anon_send(impl_->validators[i], std::move(chunk));
}

void actor_pipeline::flush_all() { caf::anon_send(impl_->router, flush_atom::value); }

void actor_pipeline::stop() {
  if (!impl_ || impl_->validators.empty()) return;
  for (auto& v : impl_->validators) caf::anon_send_exit(v, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(impl_->router, caf::exit_reason::user_shutdown);
  impl_->validators.clear();
  impl_->system.await_all_actors_done();
}

}  // namespace trail
