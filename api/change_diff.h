#pragma once
// The ChangeSet of one event as the diff route answers it: the stored
// `changes` ({old_value, new_value, changed_fields}) plus a per-field list
// {field, old, new} in which nested objects are walked down to their leaves
// and named by JSON pointer (RFC 6901: "/billing/plan", "~1" for '/', "~0"
// for '~'). Arrays and values of different types are compared whole. A side
// where the field does not exist has no "old" (or "new") member. Pure.

#include <cstdint>
#include <string>
#include <string_view>

namespace trail {

// Appends the diff object to `out`. `changes_json` is the stored column
// (empty when the event has none: then the values are null and the lists
// empty). False if `changes_json` is not a JSON object.
bool render_change_diff(std::string_view tenant, int64_t sequence, std::string_view changes_json, std::string& out);

}  // namespace trail
