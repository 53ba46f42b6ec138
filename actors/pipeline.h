#pragma once
// The actor part of the pipeline (CAF 0.17):
//
//   fetch thread --deliver()--> validator actors (a pool, round robin)
//        --records of one lane--> lane batcher (one per writer)
//        --batch_sink::submit--> that lane's writer --ready--> lane batcher
//
// One actor message per fetched chunk per hop. Validators parse and validate
// (CPU only, no I/O) and split a chunk's records by writer lane (a tenant's
// lane is fixed). A lane batcher groups its records by tenant and hands its
// writer one transaction's worth whenever the writer asks (actors/batching.h):
// batch size follows load without a linger. Nothing here blocks.

#include <memory>
#include <vector>

#include "common/record.h"
#include "decode/event_decoder.h"
#include "ingest/source.h"
#include "sinks/sink.h"

namespace trail {

struct pipeline_options {
  size_t validators = 1;     // validator actors (and CAF scheduler threads, at least 2)
  size_t txn_max_events = 0;  // one transaction's bound, in events
  size_t txn_max_bytes = 0;   // and in COPY bytes
  decoder_limits decoding;   // what one event or message may be
  uint64_t max_deliver = 0;  // deliveries after which a message is dead-lettered
};

class actor_pipeline {
 public:
  // `settler` takes the messages refused whole; `settlement` settles a message
  // once the last of its events' records is settled or dropped.
  actor_pipeline(const pipeline_options& opt, batch_sink& sink, message_settler& settler, message_settlement& settlement);
  ~actor_pipeline();

  // Called by the fetch thread; never blocks.
  void deliver(std::vector<inbound_message*>&& chunk);
  // Stops every actor and waits for them.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace trail
