#pragma once
// Why a message or event is refused: the decoder's (and the writer's) verdict,
// carried to the dead-letter subject as the Trail-Dlq-Reason header.

#include <cstdint>
#include <string>

namespace trail {

// The Trail-Dlq-Reason header (its text, from to_string) and the label of
// trail_events_dead_lettered_total (exported at 0 for each). One enum, so that
// no reason exists only as a string somewhere.
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

// `code` is the stable machine-readable reason; `message` speaks to the publisher.
struct rejection {
  dlq_reason code;
  std::string message;
};

}  // namespace trail
