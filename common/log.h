#pragma once
// Structured logs: one JSON object per line on stderr (or "key=value" text for
// humans), with level, component, message and context fields.

#include <chrono>
#include <functional>
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

// Text format: appends `text` with backslash, control characters and DEL
// escaped (\n, \r, \t, \xNN), so that no value can forge a log line.
void append_escaped(std::string& out, std::string_view text);
bool enabled(level l);
void write(level l, std::string_view component, std::string_view message,
           std::initializer_list<field> fields = {});
void write(level l, std::string_view component, std::string_view message, const std::vector<field>& fields);

// Like write(), but at most `burst` lines per `window_s` seconds for the same
// component and message; what is held back is counted and reported with the
// next line that gets through ("suppressed": N). For messages a bad input
// stream can repeat at full speed (dead letters, refused rows, retries).
void limited(level l, std::string_view component, std::string_view message, std::initializer_list<field> fields = {},
             int burst = 10, int window_s = 10);

// limited() at a given time (tests move the clock instead of sleeping).
void limited_at(std::chrono::steady_clock::time_point now, level l, std::string_view component,
                std::string_view message, std::initializer_list<field> fields, int burst, int window_s);

// Tests: capture lines instead of writing them to stderr (nullptr restores stderr).
void set_sink_for_tests(std::function<void(const std::string&)> sink);

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
