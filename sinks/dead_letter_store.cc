#include "sinks/dead_letter_store.h"

namespace trail {

std::optional<int64_t> postgres_dead_letter_store::store(const oversized_dead_letter& d, std::string* error) {
  if (!session_.connect(error)) return std::nullopt;
  const std::string seq = std::to_string(d.stream_sequence), delivered = std::to_string(d.delivered);
  const std::string stream(d.stream), subject(d.subject), reason(d.reason), message(d.message);
  const char* values[] = {stream.c_str(), seq.c_str(), delivered.c_str(), subject.c_str(),
                          reason.c_str(), message.c_str(), d.headers.data(), d.body.data()};
  const int lengths[] = {0, 0, 0, 0, 0, 0, static_cast<int>(d.headers.size()), static_cast<int>(d.body.size())};
  const int formats[] = {0, 0, 0, 0, 0, 0, 1, 1};  // the last two are raw bytes
  PGresult* res = nullptr;
  db_result r = session_.exec(
      "INSERT INTO audit.dead_letters (stream, stream_sequence, delivered, subject, reason, message, headers, body) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
      8, values, &res, lengths, formats);
  if (!r.ok()) {
    if (error) *error = r.message;
    if (!session_.connected()) session_.close();
    return std::nullopt;
  }
  const int64_t id = std::stoll(PQgetvalue(res, 0, 0));
  PQclear(res);
  return id;
}

}  // namespace trail
