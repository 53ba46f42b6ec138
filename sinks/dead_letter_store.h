#pragma once
// Where a dead letter goes when its copy cannot travel through the broker
// (headers + body over the server's max_payload, or a broker that keeps
// refusing the dead-letter stream): the original bytes are kept in
// PostgreSQL (audit.dead_letters) and only a reference is published.
//
// Thread: used by the dead-letter publisher thread only; it owns the
// connection, opened on first use.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sinks/pg_session.h"

namespace trail {

struct oversized_dead_letter {
  std::string_view stream;
  uint64_t stream_sequence = 0;
  uint64_t delivered = 0;
  std::string_view subject;
  std::string_view reason;
  std::string_view message;
  std::string_view headers;  // NATS wire format
  std::string_view body;
};

class dead_letter_store {
 public:
  virtual ~dead_letter_store() = default;
  // The row id, or nullopt with `error` set (the caller retries later).
  virtual std::optional<int64_t> store(const oversized_dead_letter& d, std::string* error) = 0;
};

class postgres_dead_letter_store final : public dead_letter_store {
 public:
  postgres_dead_letter_store(const std::string& dsn, pg_timeouts timeouts)
      : session_(dsn, timeouts, "traild-dead-letters") {}
  std::optional<int64_t> store(const oversized_dead_letter& d, std::string* error) override;

 private:
  pg_session session_;
};

}  // namespace trail
