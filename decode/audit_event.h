#pragma once
// The typed audit event: what Trail stores, republishes and (later) hashes,
// decoded once from a broker message and rendered from here by each consumer
// (sinks/event_rows.h: the COPY rows; decode/committed_event.h: the committed
// CloudEvent). It holds normalized values only: enums spelled in full
// ("SEVERITY_INFO"), defaults applied (source_service from the envelope,
// trace_id from traceparent, occurred_at from the envelope or the broker).
//
// One allocation per event: every text lives in `arena_` and a field is a
// span of it. JSON-valued fields (related_resources, changes, metadata) hold
// their compact JSON text; `extensions` and `unknown` hold JSON object
// members without the braces ("\"a\":1,\"b\":\"x\"").
//
// No broker or database header is included here, nor anywhere in decode/.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trail {

enum class ingest_mode : uint8_t { structured = 0, binary = 1, batch = 2, bare = 3 };
const char* to_string(ingest_mode m);

enum class event_field : uint8_t {
  tenant_id,
  ce_source,
  ce_id,
  ce_type,
  ce_subject,          // optional
  ce_dataschema,       // optional; kept in `extra`
  occurred_at,         // RFC 3339, microseconds, UTC ("2026-01-02T03:04:05.000006Z")
  action,
  category,
  severity,
  actor_type,
  actor_id,
  actor_display_name,  // optional
  actor_ip,            // optional
  actor_user_agent,    // optional
  actor_session_id,    // optional
  resource_type,
  resource_id,
  related_resources,   // optional JSON array
  changes,             // optional JSON object (changed_fields computed when absent)
  outcome_status,      // optional: SUCCESS | FAILURE
  outcome_error_code,  // optional
  description,         // optional
  metadata,            // optional JSON object
  correlation_id,      // optional
  request_id,          // optional
  source_service,
  trace_id,            // optional
  extensions,          // optional JSON members: every CloudEvents extension attribute (for `extra`)
  committed_extensions,  // optional JSON members: those the committed event carries (all but
                       // tenantid, sequence and recordedtime, which Trail sets itself)
  unknown,             // optional JSON members: payload fields Trail does not know
  count_
};
inline constexpr size_t kEventFieldCount = static_cast<size_t>(event_field::count_);

class audit_event {
 public:
  bool has(event_field f) const { return (present_ >> idx(f)) & 1u; }
  // Empty when absent.
  std::string_view get(event_field f) const {
    const auto& s = spans_[idx(f)];
    return {arena_.data() + s.offset, s.length};
  }
  std::optional<std::string_view> opt(event_field f) const {
    if (!has(f)) return std::nullopt;
    return get(f);
  }

  int64_t occurred_at_us = 0;
  ingest_mode mode = ingest_mode::structured;
  // related_resources, changes and metadata hold canonical JSON, and
  // extensions and unknown canonical members (decode/canonical.h), already:
  // the decoder writes them so, and the writers' hashing then copies them
  // (and composes `extra` of them) instead of parsing them again. Setting one
  // of them clears it.
  bool canonical_json = false;

  // Bytes the event's texts take (its share of a transaction's size).
  size_t text_bytes() const { return arena_.size(); }

  // ---- building (the decoder) ----
  void reserve(size_t bytes) { arena_.reserve(bytes); }
  void set(event_field f, std::string_view v) {
    if (f == event_field::related_resources || f == event_field::changes || f == event_field::metadata ||
        f == event_field::extensions || f == event_field::unknown)
      canonical_json = false;
    auto& s = spans_[idx(f)];
    s.offset = static_cast<uint32_t>(arena_.size());
    s.length = static_cast<uint32_t>(v.size());
    arena_.append(v);
    present_ |= 1u << idx(f);
  }
  void set_optional(event_field f, const std::optional<std::string_view>& v) {
    if (v) set(f, *v);
  }
 private:
  static constexpr size_t idx(event_field f) { return static_cast<size_t>(f); }
  struct span {
    uint32_t offset = 0, length = 0;
  };
  static_assert(kEventFieldCount <= 32, "presence is a 32-bit mask");
  std::string arena_;
  std::array<span, kEventFieldCount> spans_{};
  uint32_t present_ = 0;
};

}  // namespace trail
