#pragma once
// Opt-in per-tenant view for finding a noisy tenant: the N tenants with the
// most committed events since start, exported as
// trail_top_tenant_committed_events{tenant}. Off by default (metrics.top_tenants
// = 0): tenant labels are unbounded, so only a bounded top N is ever exported.
// Writer threads call add(); the consumer keep-alive thread calls publish()
// once a second. Counts live in memory (one entry per tenant seen).

#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace trail {

class top_tenants {
 public:
  top_tenants(prometheus::Family<prometheus::Gauge>& family, size_t n) : family_(family), n_(n) {}

  void add(const std::string& tenant, uint64_t events);
  // Sets the gauges of the current top N and removes those that dropped out.
  void publish();

 private:
  prometheus::Family<prometheus::Gauge>& family_;
  const size_t n_;
  std::mutex mu_;
  std::unordered_map<std::string, uint64_t> counts_;
  std::map<std::string, prometheus::Gauge*> shown_;  // guarded by mu_ too
};

}  // namespace trail
