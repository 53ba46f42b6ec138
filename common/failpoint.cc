#include "common/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/log.h"

namespace trail::failpoint {
namespace {
const auto g_start = std::chrono::steady_clock::now();
std::atomic<int64_t> g_commits{0};
}  // namespace

const settings& get() {
  static const settings s = [] {
    settings out;
    const char* env = std::getenv("TRAIL_FAILPOINTS");
    if (!env) return out;
    std::string spec(env);
    size_t pos = 0;
    while (pos < spec.size()) {
      size_t comma = spec.find(',', pos);
      if (comma == std::string::npos) comma = spec.size();
      const std::string item = spec.substr(pos, comma - pos);
      const size_t eq = item.find('=');
      if (eq != std::string::npos) {
        const std::string k = item.substr(0, eq);
        const int64_t v = std::atoll(item.c_str() + eq + 1);
        if (k == "crash_after_commit") out.crash_after_commit = v;
        else if (k == "commit_delay_ms") out.commit_delay_ms = v;
        else if (k == "commit_delay_for_s") out.commit_delay_for_s = v;
      }
      pos = comma + 1;
    }
    log::warn("failpoint", "fault injection is active (tests only)", {{"spec", spec}});
    return out;
  }();
  return s;
}

void after_commit() {
  const auto& s = get();
  if (s.crash_after_commit > 0 && g_commits.fetch_add(1) + 1 == s.crash_after_commit) {
    log::warn("failpoint", "crash_after_commit: SIGKILL between COMMIT and ack");
    ::kill(::getpid(), SIGKILL);
  }
}

void before_commit() {
  const auto& s = get();
  if (s.commit_delay_ms <= 0) return;
  if (s.commit_delay_for_s > 0 &&
      std::chrono::steady_clock::now() - g_start > std::chrono::seconds(s.commit_delay_for_s))
    return;
  std::this_thread::sleep_for(std::chrono::milliseconds(s.commit_delay_ms));
}

}  // namespace trail::failpoint
