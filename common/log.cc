#include "common/log.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <unordered_map>
#include <cstdio>
#include <mutex>

#include "common/time.h"

namespace trail::log {
namespace {
std::atomic<bool> g_json{true};
std::atomic<int> g_min{static_cast<int>(level::info)};
std::mutex g_mu;
std::function<void(const std::string&)> g_sink;  // guarded by g_mu

struct window_state {
  std::chrono::steady_clock::time_point start;
  int written = 0;
  int64_t suppressed = 0;
};
std::mutex g_limit_mu;
std::unordered_map<std::string, window_state> g_windows;  // guarded by g_limit_mu
const char* name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "?";
}
}  // namespace

void append_escaped(std::string& out, std::string_view text) {
  // Text lines are for people and line-oriented tools: a value must never
  // start a new line or move the cursor, whatever a publisher put in it.
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
}

void configure(bool json, level min_level) {
  g_json = json;
  g_min = static_cast<int>(min_level);
}

bool enabled(level l) { return static_cast<int>(l) >= g_min.load(std::memory_order_relaxed); }

void write(level l, std::string_view component, std::string_view message,
           std::initializer_list<field> fields) {
  write(l, component, message, std::vector<field>(fields));
}

void write(level l, std::string_view component, std::string_view message, const std::vector<field>& fields) {
  if (!enabled(l)) return;
  std::string line;
  const std::string ts = format_rfc3339_us(now_unix_us());
  if (g_json) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("ts");
    w.String(ts.data(), static_cast<rapidjson::SizeType>(ts.size()));
    w.Key("level");
    w.String(name(l));
    w.Key("component");
    w.String(component.data(), static_cast<rapidjson::SizeType>(component.size()));
    w.Key("msg");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    for (const auto& f : fields) {
      w.Key(f.key.data(), static_cast<rapidjson::SizeType>(f.key.size()));
      w.String(f.value.data(), static_cast<rapidjson::SizeType>(f.value.size()));
    }
    w.EndObject();
    line.assign(sb.GetString(), sb.GetSize());
  } else {
    line = ts + " " + name(l) + " [" + std::string(component) + "] ";
    append_escaped(line, message);
    for (const auto& f : fields) {
      line += ' ';
      append_escaped(line, f.key);
      line += '=';
      append_escaped(line, f.value);
    }
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sink) g_sink(line);
  else std::fwrite(line.data(), 1, line.size(), stderr);
}

void set_sink_for_tests(std::function<void(const std::string&)> sink) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sink = std::move(sink);
}

void limited(level l, std::string_view component, std::string_view message, std::initializer_list<field> fields,
             int burst, int window_s) {
  limited_at(std::chrono::steady_clock::now(), l, component, message, fields, burst, window_s);
}

void limited_at(std::chrono::steady_clock::time_point now, level l, std::string_view component,
                std::string_view message, std::initializer_list<field> fields, int burst, int window_s) {
  if (!enabled(l)) return;
  int64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(g_limit_mu);
    auto& w = g_windows[std::string(component) + '\x1f' + std::string(message)];
    if (now - w.start >= std::chrono::seconds(window_s)) {
      w.start = now;
      w.written = 0;
    }
    if (w.written >= burst) {
      ++w.suppressed;
      return;
    }
    ++w.written;
    suppressed = std::exchange(w.suppressed, 0);
  }
  std::vector<field> all(fields);
  if (suppressed > 0) all.emplace_back("suppressed", suppressed);
  write(l, component, message, all);
}

}  // namespace trail::log
