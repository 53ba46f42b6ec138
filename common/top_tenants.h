#pragma once
// Opt-in per-tenant view for finding a noisy tenant: the N tenants with the
// most committed events since start, exported as
// trail_top_tenant_committed_events{tenant}. Off by default (metrics.top_tenants
// = 0): tenant labels are unbounded, so only a bounded top N is ever exported.
// Writer threads call add(); the consumer keep-alive thread calls publish()
// once a second. Counts live in memory for at most `max_tracked` tenants
// (default 100 x N, at least 10,000): when a new tenant would exceed that, the
// less busy half is forgotten, so a flood of one-off tenant ids cannot grow
// memory; a busy tenant is never forgotten, a forgotten one starts again at 0.

#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace trail {

class top_tenants {
 public:
  // `tracked`: optional gauge of how many tenants are counted (set by publish()).
  top_tenants(prometheus::Family<prometheus::Gauge>& family, size_t n, size_t max_tracked = 0,
              prometheus::Gauge* tracked = nullptr)
      : family_(family),
        n_(n),
        max_tracked_(max_tracked ? max_tracked : std::max<size_t>(10000, 100 * n)),
        tracked_(tracked) {}

  void add(const std::string& tenant, uint64_t events);
  // Sets the gauges of the current top N and removes those that dropped out.
  void publish();
  size_t tracked() {
    std::lock_guard lock(mu_);
    return counts_.size();
  }

 private:
  prometheus::Family<prometheus::Gauge>& family_;
  const size_t n_;
  const size_t max_tracked_;
  prometheus::Gauge* tracked_;
  std::mutex mu_;
  std::unordered_map<std::string, uint64_t> counts_;
  std::map<std::string, prometheus::Gauge*> shown_;  // guarded by mu_ too
};

}  // namespace trail
