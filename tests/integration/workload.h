#pragma once
// A known workload for integration and fault tests: N valid audit events
// across 200 tenants (structured, binary, batch and bare modes mixed) plus
// about 1% invalid messages of seven kinds, each identifiable afterwards
// (valid events by request_id, invalid ones by their exact bytes).

#include <set>
#include <string>
#include <unordered_set>

#include "tests/integration/harness.h"

namespace trail::test {

struct workload {
  std::unordered_set<std::string> valid_request_ids;  // one per valid event
  std::set<std::string> invalid_bodies;               // exact bytes of each invalid message
  std::set<std::string> invalid_kinds;                // the reasons they must be dead-lettered with
  size_t valid_events = 0;
  size_t messages = 0;
};

// Publishes the workload (request ids "req-<first_n>"…) and waits for every PubAck.
// `per_second` > 0 paces the publishing; `invalid_every` = k puts one invalid
// message after every k-1 messages (0 = none).
workload publish_workload(broker& b, size_t target_events, int first_n = 0, int invalid_every = 67,
                          int per_second = 0);

// "" when `got` holds exactly the elements of `want`; otherwise how many are
// missing and how many unexpected, with a few of each. (Catch would print
// both sets whole: 200,000 ids once filled a failing test's output.)
template <typename Got, typename Want>
std::string set_mismatch(const Got& got, const Want& want) {
  size_t missing = 0, extra = 0;
  std::string missing_ex, extra_ex;
  for (const auto& x : want)
    if (!got.count(x) && missing++ < 5) missing_ex += (missing_ex.empty() ? "" : ", ") + x.substr(0, 80);
  for (const auto& x : got)
    if (!want.count(x) && extra++ < 5) extra_ex += (extra_ex.empty() ? "" : ", ") + x.substr(0, 80);
  if (!missing && !extra) return "";
  return std::to_string(missing) + " missing (" + missing_ex + "), " + std::to_string(extra) + " unexpected (" + extra_ex + ")";
}

// Waits until the durable consumer has nothing pending or un-acked and the
// dead-letter stream holds `dead_letters` messages.
bool wait_drained(broker& b, size_t dead_letters, int timeout_ms);

// What the committed stream must show.
enum class committed_check {
  exactly_once,   // every committed event, none twice
  at_least_once,  // every committed event; a repeat is the same event under the same (tenant, sequence)
};

// The checks every scenario ends with: every valid event stored exactly once,
// gap-free sequences, exactly the invalid messages dead-lettered (bytes and
// reasons), nothing pending or un-acked, and the committed stream as asked.
void verify_exactly_once(const std::string& dsn, broker& b, const workload& w,
                         committed_check committed = committed_check::exactly_once);

}  // namespace trail::test
