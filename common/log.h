#pragma once
// Structured logs: one JSON object per line on stderr (or "key=value" text for
// humans), with level, component, message and context fields.

#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace trail::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

struct field {
  std::string key;
  std::string value;
  field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  field(std::string_view k, const char* v) : key(k), value(v) {}
  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
  field(std::string_view k, N v) : key(k), value(std::to_string(v)) {}
};

void configure(bool json, level min_level);
bool enabled(level l);
void write(level l, std::string_view component, std::string_view message,
           std::initializer_list<field> fields = {});
void write(level l, std::string_view component, std::string_view message, const std::vector<field>& fields);

inline void debug(std::string_view c, std::string_view m, std::initializer_list<field> f = {}) {
  if (enabled(level::debug)) write(level::debug, c, m, f);
}
inline void info(std::string_view c, std::string_view m, std::initializer_list<field> f = {}) {
  write(level::info, c, m, f);
}
inline void warn(std::string_view c, std::string_view m, std::initializer_list<field> f = {}) {
  write(level::warn, c, m, f);
}
inline void error(std::string_view c, std::string_view m, std::initializer_list<field> f = {}) {
  write(level::error, c, m, f);
}

}  // namespace trail::log
