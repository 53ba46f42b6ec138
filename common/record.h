#pragma once
// The two objects that travel through Trail's pipeline.
//
// inbound_message: one JetStream message, from the fetch thread until its final
// disposition (ack after commit, term after the dead letter is stored, nak to
// hand it back). Ownership: created by the fetch thread; read-only for
// validators. A message whose events go on to be written is settled through
// its events' message_refs (below): the last reference to go settles it with
// the merged outcome of all its events. A message refused whole is settled by
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
  // Live message_refs (one per record, set by the validator before any record
  // is handed on) and the worst outcome reported through them so far.
  std::atomic<uint32_t> refs{0};
  std::atomic<uint8_t> worst{0};
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

// What became of one event of a message. A message is settled once, by the
// worst of its events' outcomes: one event left to retry makes the whole
// message a nak (its committed events come back as duplicates, absorbed by the
// dedupe path; a dead-lettered one is dead-lettered again under the same
// Msg-Id), never a term or an ack that would lose it. So retry outranks
// dead_lettered, which outranks committed.
enum class event_outcome : uint8_t {
  committed = 0,      // stored, or found stored already: ack
  dead_lettered = 1,  // refused, and its dead letter is stored: term
  retry = 2,          // neither (dropped at shutdown, say): nak, to be redelivered
};

// Settles a message once its last reference is gone (implemented by the
// broker source, jetstream_source).
class message_settlement {
 public:
  virtual ~message_settlement() = default;
  virtual void settle_message(inbound_message* m, event_outcome merged) = 0;
};

// One event's counted reference to its message. A record holds one; the
// message is settled when the last reference goes. A reference dropped
// without settle() counts as `retry`: a record lost on any path (shutdown,
// an abandoned write, an actor that exits) can hand its message back, never
// leave it unsettled or let it be acked. Copies (CAF copies messages it
// cannot move) are references of their own.
class message_ref {
 public:
  message_ref() = default;
  // Takes over one of the references the validator counted in `m->refs`.
  static message_ref adopt(inbound_message* m, message_settlement* s) {
    message_ref r;
    r.m_ = m;
    r.s_ = s;
    return r;
  }
  // Not counted: tests and the micro-benchmark, where nothing settles.
  static message_ref unmanaged(inbound_message* m) {
    message_ref r;
    r.m_ = m;
    return r;
  }
  message_ref(const message_ref& o) : m_(o.m_), s_(o.s_) {
    if (s_) m_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  message_ref(message_ref&& o) noexcept : m_(o.m_), s_(std::exchange(o.s_, nullptr)) {}
  message_ref& operator=(message_ref o) noexcept {
    drop(event_outcome::retry);
    m_ = o.m_;
    s_ = std::exchange(o.s_, nullptr);
    return *this;
  }
  ~message_ref() { drop(event_outcome::retry); }

  inbound_message* get() const { return m_; }
  inbound_message* operator->() const { return m_; }
  explicit operator bool() const { return m_ != nullptr; }
  // Reports this event's outcome and gives up the reference.
  void settle(event_outcome o) { drop(o); }

 private:
  void drop(event_outcome o) {
    if (!s_) return;
    auto* s = std::exchange(s_, nullptr);
    uint8_t seen = m_->worst.load(std::memory_order_relaxed);
    const auto v = static_cast<uint8_t>(o);
    while (seen < v && !m_->worst.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
    }
    // The last reference sees every outcome merged before it (acq_rel).
    if (m_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
      s->settle_message(m_, static_cast<event_outcome>(m_->worst.load(std::memory_order_relaxed)));
  }
  inbound_message* m_ = nullptr;
  message_settlement* s_ = nullptr;
};

struct audit_record {
  message_ref origin;  // the message it came in (a counted reference, see above)
  audit_event event;
  // Assigned by the writer.
  int64_t sequence = 0;
  int64_t recorded_at_us = 0;
  bool duplicate = false;  // already stored by an earlier delivery
  // The audit.outbox row naming this event until its republish is confirmed
  // (0: none, e.g. a duplicate, or the committed stream is off).
  int64_t outbox_id = 0;
  // Whether the finalizer publishes the committed event (decided by the writer).
  bool republish = true;

  std::string_view tenant_id() const { return event.get(event_field::tenant_id); }
  std::string_view ce_source() const { return event.get(event_field::ce_source); }
  std::string_view ce_id() const { return event.get(event_field::ce_id); }
};

using record_batch = std::vector<audit_record>;

}  // namespace trail
