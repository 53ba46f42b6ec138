#pragma once
// The JSON renderings of a typed audit event, in one place:
//   - the committed CloudEvent republished on audit.committed.<tenant_id>
//     (structured mode, datacontenttype application/json, with the
//     `sequence` and `recordedtime` extensions Trail assigns);
//   - the `extra` column: the envelope's dataschema and extensions and the
//     payload fields Trail does not know, kept verbatim.
// Later renderings of the same event (the canonical bytes of the hash chain)
// belong here too, so that every consumer sees one event.

#include <cstdint>
#include <string>
#include <string_view>

#include "decode/audit_event.h"

namespace trail {

// The sequence as the CloudEvents sequence extension carries it: 19 digits,
// zero-padded, so that string order is numeric order.
struct padded_sequence {
  explicit padded_sequence(int64_t sequence);
  std::string_view text() const { return {digits, 19}; }
  char digits[20];
};

// Appends the committed event to `out`. `recorded_time` is RFC 3339 (the
// transaction's time).
void render_committed_event(const audit_event& e, const padded_sequence& sequence, std::string_view recorded_time,
                            std::string& out);

// The extension attributes Trail sets on the committed event itself
// (tenantid, sequence, recordedtime): a publisher's are kept in `extra` only.
bool is_trail_set_extension(std::string_view name);

// An upper bound on render_committed_event's size, in O(1): every text byte
// escaped at worst as \u00XX, plus the fixed keys.
size_t committed_event_bound(const audit_event& e);

// True when the event has anything for the `extra` column; then render_extra
// appends the object.
bool has_extra(const audit_event& e);
void render_extra(const audit_event& e, std::string& out);
// The inverse, for an event read back from the table: sets dataschema,
// extensions (and the committed ones) and unknown from the `extra` column's
// JSON. False if the text is not an object of that shape.
bool parse_extra(std::string_view extra_json, audit_event& e);

}  // namespace trail
