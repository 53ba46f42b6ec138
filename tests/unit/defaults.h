#pragma once
// The components' limits at the configuration's defaults (declared once, in
// config/config.cc), with a broker that takes NATS's default 1 MiB messages.

#include "actors/batching.h"
#include "app/options.h"
#include "config/config.h"

namespace trail::testing {

inline constexpr size_t kBrokerMaxPayload = 1 << 20;

inline decoder_limits default_decoder_limits() { return decoder_limits_of(load_config("", {}), kBrokerMaxPayload); }

inline batcher_limits default_batcher_limits() {
  const pipeline_options o = pipeline_options_of(load_config("", {}), kBrokerMaxPayload);
  return batcher_limits{o.txn_max_events, o.txn_max_bytes};
}

}  // namespace trail::testing
