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
// audit_record: one validated audit event, ready to be written. Created by a
// validator actor; moved through the tenant batcher into a writer's queue;
// the writer assigns `sequence` and `recorded_at_us` inside its transaction.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trail {

enum class ingest_mode : uint8_t { structured = 0, binary = 1, batch = 2, bare = 3 };
const char* to_string(ingest_mode m);

struct inbound_message {
  void* handle = nullptr;        // natsMsg*, owned (see above)
  std::string_view data;         // body; points into the message, valid while it lives
  // Copied at fetch, one entry per value (a header sent several times keeps
  // every value, in order).
  std::vector<std::pair<std::string, std::string>> headers;
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
  const std::string* header(std::string_view name) const;
  // How many values a header has (case-insensitive name).
  size_t header_count(std::string_view name) const;
};

// A header block as NATS sends it ("NATS/1.0\r\n" + "Key: Value\r\n"… + "\r\n";
// empty when there are no headers), and its size without building it.
std::string header_wire_text(const std::vector<std::pair<std::string, std::string>>& headers);
size_t header_wire_size(const std::vector<std::pair<std::string, std::string>>& headers);
// The bytes an inbound message holds (see inbound_message::held_bytes).
int64_t held_bytes_of(const inbound_message& m);

struct audit_record {
  inbound_message* origin = nullptr;  // not owned
  std::string tenant_id;
  std::string ce_source;
  std::string ce_id;
  int64_t occurred_at_us = 0;
  ingest_mode mode = ingest_mode::structured;
  // COPY text-format columns after `sequence`, tab-separated, ending in '\n';
  // rendered by the validator so that writers only prepend the sequence.
  std::string copy_tail;
  // The committed CloudEvent, split around the fields known only after COMMIT:
  // committed_head + "\"sequence\":\"…\",\"recordedtime\":\"…\"," + "\"data\":" + data_json + "}"
  std::string committed_head;
  std::string data_json;
  // Assigned by the writer.
  int64_t sequence = 0;
  int64_t recorded_at_us = 0;
  bool duplicate = false;  // already stored by an earlier delivery
  // Whether the finalizer publishes the committed event (decided by the writer).
  bool republish = true;
};

using record_batch = std::vector<audit_record>;

// Why a message or event was dead-lettered: the Trail-Dlq-Reason header (its
// text, from to_string) and the label of trail_events_dead_lettered_total
// (exported at 0 for each). One enum, so that no reason exists only as a
// string somewhere.
enum class dlq_reason : uint8_t {
  malformed_json,
  too_large,
  envelope_invalid,
  batch_invalid,
  payload_invalid,
  unstorable_value,
  unsupported_content_type,
  database_rejected,
  max_deliver_exceeded,
};
const char* to_string(dlq_reason r);

namespace reason {
inline constexpr dlq_reason malformed_json = dlq_reason::malformed_json;
inline constexpr dlq_reason too_large = dlq_reason::too_large;
inline constexpr dlq_reason envelope_invalid = dlq_reason::envelope_invalid;
inline constexpr dlq_reason batch_invalid = dlq_reason::batch_invalid;
inline constexpr dlq_reason payload_invalid = dlq_reason::payload_invalid;
inline constexpr dlq_reason unstorable = dlq_reason::unstorable_value;
inline constexpr dlq_reason unsupported_content = dlq_reason::unsupported_content_type;
inline constexpr dlq_reason database_rejected = dlq_reason::database_rejected;
inline constexpr dlq_reason max_deliver_exceeded = dlq_reason::max_deliver_exceeded;
inline constexpr dlq_reason all[] = {malformed_json, too_large,           envelope_invalid,
                                     batch_invalid,  payload_invalid,     unstorable,
                                     unsupported_content, database_rejected, max_deliver_exceeded};
}  // namespace reason

// Why a message or event was refused: `code` is the stable machine-readable
// reason; `message` speaks to the publisher.
struct rejection {
  dlq_reason code;
  std::string message;
};

}  // namespace trail
