#include "common/log.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/time.h"

namespace trail::log {
namespace {
std::atomic<bool> g_json{true};
std::atomic<int> g_min{static_cast<int>(level::info)};
std::mutex g_mu;
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
    line = ts + " " + name(l) + " [" + std::string(component) + "] " + std::string(message);
    for (const auto& f : fields) line += " " + std::string(f.key) + "=" + f.value;
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace trail::log
