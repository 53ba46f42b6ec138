#pragma once
// The actor part of the pipeline (CAF 0.17):
//
//   fetch thread --deliver()--> validator actors (a pool, round robin)
//        --tenant groups--> tenant_router --records--> tenant_batcher (one per tenant)
//        --batch_sink::submit--> writers
//
// Validators parse and validate (CPU only, no I/O). The router owns the
// tenant -> batcher map: it spawns a batcher on a tenant's first event and
// retires it after it has been idle, with a handshake that counts messages so
// that no records can be in flight to a batcher that stops. Batchers flush on
// max events, max bytes or max linger; their linger timer is armed only while
// records are waiting. Nothing here blocks.

#include <memory>
#include <vector>

#include "common/record.h"
#include "config/config.h"
#include "ingest/source.h"
#include "sinks/sink.h"

namespace trail {

class actor_pipeline {
 public:
  // `max_message_bytes`: the broker's max_payload (committed copies must fit).
  actor_pipeline(const config& cfg, batch_sink& sink, message_settler& settler, size_t max_message_bytes);
  ~actor_pipeline();

  // Called by the fetch thread; never blocks.
  void deliver(std::vector<inbound_message*>&& chunk);
  // Every batcher hands its records to the sink now (shutdown).
  void flush_all();
  // Stops every actor and waits for them.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace trail
