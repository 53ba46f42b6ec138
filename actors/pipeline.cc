#include "actors/pipeline.h"

#include <caf/all.hpp>

#include <unordered_map>

#include "actors/batching.h"
#include "decode/event_decoder.h"
#include "common/log.h"
#include "actors/actor_metrics.h"

namespace trail {

using inbound_chunk = std::vector<inbound_message*>;

}  // namespace trail

// Local-only message type (never serialized): pointers to fetched messages.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trail::inbound_chunk)

namespace trail {
namespace {

// ---- validator ----------------------------------------------------------------

struct validator_state {
  std::unique_ptr<event_decoder> decoder;
  std::vector<record_batch> by_lane;
  uint32_t handled = 0;
};

caf::behavior validator(caf::stateful_actor<validator_state>* self, std::vector<caf::actor> batchers,
                        const batch_sink* sink, decoder_limits limits, uint64_t max_deliver, message_settler* settler,
                        message_settlement* settlement) {
  self->state.decoder = std::make_unique<event_decoder>(limits);
  self->state.by_lane.resize(batchers.size());
  return {
      [=](inbound_chunk& chunk) {
        auto& m = actor_metrics::get();
        sample_mailbox(self, self->state.handled, m.mailbox_validator);
        auto& by_lane = self->state.by_lane;
        for (inbound_message* msg : chunk) {
          if (msg->delivered > max_deliver) {
            // Tried max_deliver times already. The broker never gives up on a
            // message (the consumer's MaxDeliver is unlimited), so this is the
            // one place a message stops being retried: into the dead letters.
            settler->reject(msg, {reason::max_deliver_exceeded, "delivered " + std::to_string(msg->delivered - 1) +
                                                              " times (nats.max_deliver) without being committed"});
            continue;
          }
          decode_outcome out = self->state.decoder->decode(msg->view());
          m.received(out.mode).Increment(out.rejected ? 1.0 : static_cast<double>(out.events.size()));
          if (out.rejected) {
            settler->reject(msg, std::move(*out.rejected));
            continue;
          }
          if (out.events.empty()) {
            settler->settle_empty(msg);
            continue;
          }
          // One reference per record, counted before any record leaves this
          // actor: the last one to be settled settles the message.
          msg->refs.store(static_cast<uint32_t>(out.events.size()), std::memory_order_release);
          for (auto& e : out.events) {
            auto& lane = by_lane[sink->lane_of(e.get(event_field::tenant_id))];
            lane.emplace_back().origin = message_ref::adopt(msg, settlement);
            lane.back().event = std::move(e);
          }
        }
        // One message per lane per chunk; the batcher groups by tenant.
        for (size_t lane = 0; lane < by_lane.size(); ++lane)
          if (!by_lane[lane].empty()) self->send(batchers[lane], std::exchange(by_lane[lane], {}));
      },
  };
}

}  // namespace

namespace {
caf::actor_system_config& configure(caf::actor_system_config& sc, const pipeline_options& opt) {
  sc.set("scheduler.max-threads", std::max<size_t>(2, opt.validators));
  // Idle scheduler threads must not spin: on a small machine the cores are
  // needed by PostgreSQL and nats-server.
  sc.set("work-stealing.aggressive-poll-attempts", static_cast<size_t>(10));
  sc.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(20));
  sc.set("logger.console", caf::atom("none"));
  return sc;
}
}  // namespace

struct actor_pipeline::impl {
  explicit impl(const pipeline_options& opt) : system(configure(system_config, opt)) {}
  caf::actor_system_config system_config;
  caf::actor_system system;
  std::vector<caf::actor> batchers;  // one per writer lane
  std::vector<caf::actor> validators;
  std::atomic<size_t> next{0};
};

actor_pipeline::actor_pipeline(const pipeline_options& opt, batch_sink& sink, message_settler& settler,
                               message_settlement& settlement)
    : impl_(std::make_unique<impl>(opt)) {
  const batcher_limits blimits{opt.txn_max_events, opt.txn_max_bytes};
  for (size_t lane = 0; lane < sink.lanes(); ++lane) {
    caf::actor b = impl_->system.spawn(lane_batcher, lane, blimits, &sink);
    // The writer asks for its next transaction from its own thread.
    sink.on_ready(lane, [b] { caf::anon_send(b, ready_atom::value); });
    impl_->batchers.push_back(std::move(b));
  }
  for (size_t i = 0; i < opt.validators; ++i)
    impl_->validators.push_back(impl_->system.spawn(validator, impl_->batchers, &sink, opt.decoding, opt.max_deliver, &settler, &settlement));
}

actor_pipeline::~actor_pipeline() { stop(); }

void actor_pipeline::deliver(std::vector<inbound_message*>&& chunk) {
  const size_t i = impl_->next.fetch_add(1, std::memory_order_relaxed) % impl_->validators.size();
  caf::anon_send(impl_->validators[i], std::move(chunk));
}

void actor_pipeline::stop() {
  if (!impl_ || impl_->validators.empty()) return;
  for (auto& v : impl_->validators) caf::anon_send_exit(v, caf::exit_reason::user_shutdown);
  for (auto& b : impl_->batchers) caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  impl_->batchers.clear();
  impl_->validators.clear();
  impl_->system.await_all_actors_done();
}

}  // namespace trail
