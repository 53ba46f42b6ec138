#pragma once
// Turns one broker message into typed audit events (decode/audit_event.h), or
// into a rejection. Pure and single-threaded: each validator actor owns one
// event_decoder (and with it the parse buffers it reuses from message to
// message). No broker or database code: the message arrives as a view.

#include <rapidjson/document.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "decode/cloudevent.h"
#include "decode/audit_event.h"
#include "decode/message.h"
#include "decode/rejection.h"

namespace trail {

struct decoder_limits {
  // Filled from [validate] by app/options.cc (the defaults live in config/).
  size_t max_event_bytes = 0;    // one event, headers + body (structured, binary or bare)
  size_t max_batch_bytes = 0;    // one batch-mode message, headers + body
  size_t max_batch_events = 0;   // events in one batch-mode message
  size_t max_depth = 0;          // JSON nesting depth
  size_t max_object_keys = 0;    // members of any one JSON object
  // The largest message the broker takes (its max_payload): an event whose
  // committed copy would not fit is refused (too_large) before it is stored.
  size_t max_message_bytes = 0;
};

struct decode_outcome {
  ingest_mode mode = ingest_mode::structured;
  std::vector<audit_event> events;
  std::optional<rejection> rejected;  // set: the whole message is refused (and `events` is empty)
};

class event_decoder {
 public:
  explicit event_decoder(decoder_limits limits);
  decode_outcome decode(const message_view& msg);

 private:
  // The pools keep these buffers across Clear(), so parsing a typical event
  // allocates nothing.
  static constexpr size_t kParseBufferBytes = 256 * 1024;
  static constexpr size_t kStackBufferBytes = 32 * 1024;
  decoder_limits limits_;
  std::unique_ptr<char[]> parse_buffer_;
  std::unique_ptr<char[]> stack_buffer_;
  rapidjson::MemoryPoolAllocator<> pool_;
  rapidjson::MemoryPoolAllocator<> stack_pool_;
};

using json_document = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                                                 rapidjson::MemoryPoolAllocator<>>;

// Parses JSON as Trail does everywhere: iteratively (deep nesting cannot blow
// the stack), with UTF-8 validation and full-precision numbers.
std::optional<rejection> parse_json(std::string_view text, json_document& doc);

// Rejects what PostgreSQL cannot store or what Trail refuses to take: NUL
// characters, UTF-16 surrogates encoded in UTF-8, nesting deeper than
// `max_depth`, objects with more than `max_keys` members or with a member
// name given twice. Iterative; O(n log n) in an object's size.
std::optional<rejection> check_storable(const rapidjson::Value& v, size_t max_depth, size_t max_keys = 10000);

// Deep equality of two JSON values, O(n log n) in object sizes (rapidjson's
// operator== looks every member up linearly).
bool json_equal(const rapidjson::Value& a, const rapidjson::Value& b);

// Validates the audit payload of one event and builds the typed event.
// `receive_time_us` is the occurred_at of last resort; `size_hint` the
// event's size in the message (to size the event's arena once).
std::optional<rejection> build_event(const ce_envelope& env, const rapidjson::Value& data, ingest_mode mode,
                                     int64_t receive_time_us, size_t size_hint, audit_event& out);

// Top-level keys whose values differ between two objects, sorted. O(n log n).
std::vector<std::string> compute_changed_fields(const rapidjson::Value& old_value,
                                                const rapidjson::Value& new_value);

}  // namespace trail
