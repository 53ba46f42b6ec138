#pragma once
// The seam between the validators and the broker: how a validator settles a
// message that will never reach the database. (Messages whose events are
// written are settled after COMMIT by the commit finalizer.)

#include "common/record.h"

namespace trail {

class message_settler {
 public:
  virtual ~message_settler() = default;
  // The whole message is invalid: dead-letter it, then terminate it.
  virtual void reject(inbound_message* m, rejection why) = 0;
  // A valid message holding no events (an empty batch): ack it.
  virtual void settle_empty(inbound_message* m) = 0;
};

}  // namespace trail
