#pragma once
// The two objects that travel through Trail's pipeline.
//
// inbound_message: one JetStream message, from the fetch thread until its final
// disposition (ack after commit, or term after the dead letter is stored).
// Ownership: created by the fetch thread; read-only for validators; destroyed
// by whichever thread brings `outstanding` to zero (the commit finalizer) or by
// the dead-letter thread. The broker handle inside is opaque here so that
// actors/ and sinks/ never see nats.c.
//
// audit_record: one decoded audit event (decode/audit_event.h) on its way to
// the ledger. Created by a validator actor; moved through a lane batcher into
// a writer; the writer assigns `sequence` and `recorded_at_us` inside its
// transaction.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "decode/audit_event.h"
#include "decode/message.h"
#include "decode/rejection.h"

namespace trail {

struct inbound_message {
  void* handle = nullptr;        // natsMsg*, owned (see above)
  std::string_view data;         // body; points into the message, valid while it lives
  // Copied at fetch, one entry per value (a header sent several times keeps
  // every value, in order).
  header_list headers;
  // What this message holds in memory, counted against the in-flight byte
  // bound: body, headers (in the natsMsg, in its parsed header map and in the
  // copy above), subject and bookkeeping. Set once at fetch.
  int64_t held_bytes = 0;
  // Size of the headers on the wire ("NATS/1.0\r\n" + "Key: Value\r\n"… + "\r\n").
  size_t header_wire_bytes = 0;
  std::string subject;
  uint64_t stream_seq = 0;       // position in the AUDIT stream
  uint64_t delivered = 1;        // JetStream delivery count (1 = first delivery)
  int64_t stream_time_us = 0;    // when the broker stored it: Trail's "receive time"
  int64_t fetched_at_us = 0;
  // Number of events of this message not yet committed. Set once by the
  // validator before any record is handed on; counted down by the finalizer.
  std::atomic<uint32_t> outstanding{0};
  // Set by the first dead letter published for this message (a batch-mode
  // message is dead-lettered once even if several of its events are refused).
  std::atomic<bool> dead_lettered{false};
  // The source's list of messages in flight (guarded by its mutex).
  inbound_message* prev = nullptr;
  inbound_message* next = nullptr;
  int64_t progress_at_us = 0;  // last fetch or InProgress

  // Case-insensitive header lookup; nullptr when absent.
  const std::string* header(std::string_view name) const { return find_header(headers, name); }
  // How many values a header has (case-insensitive name).
  size_t header_count(std::string_view name) const { return count_header(headers, name); }
  // What the decoder reads.
  message_view view() const { return {data, &headers, header_wire_bytes, stream_seq, stream_time_us}; }
};

// A header block as NATS sends it ("NATS/1.0\r\n" + "Key: Value\r\n"… + "\r\n";
// empty when there are no headers), and its size without building it.
std::string header_wire_text(const std::vector<std::pair<std::string, std::string>>& headers);
size_t header_wire_size(const std::vector<std::pair<std::string, std::string>>& headers);
// The bytes an inbound message holds (see inbound_message::held_bytes).
int64_t held_bytes_of(const inbound_message& m);

struct audit_record {
  inbound_message* origin = nullptr;  // not owned
  audit_event event;
  // Assigned by the writer.
  int64_t sequence = 0;
  int64_t recorded_at_us = 0;
  bool duplicate = false;  // already stored by an earlier delivery
  // Whether the finalizer publishes the committed event (decided by the writer).
  bool republish = true;

  std::string_view tenant_id() const { return event.get(event_field::tenant_id); }
  std::string_view ce_source() const { return event.get(event_field::ce_source); }
  std::string_view ce_id() const { return event.get(event_field::ce_id); }
};

using record_batch = std::vector<audit_record>;

}  // namespace trail
