#pragma once
// The outcome of a database step, classified the way writers act on it.

#include <string>

namespace trail {

enum class result_kind { ok, duplicate_key, bad_data, unavailable };

struct db_result {
  result_kind kind = result_kind::ok;
  std::string sqlstate;    // empty when the server said nothing (connection lost, timeout)
  std::string constraint;  // for integrity violations: the constraint's name
  std::string message;
  bool ok() const { return kind == result_kind::ok; }
};

}  // namespace trail
