#include "common/top_tenants.h"

#include <algorithm>
#include <vector>

namespace trail {

void top_tenants::add(const std::string& tenant, uint64_t events) {
  std::lock_guard lock(mu_);
  counts_[tenant] += events;
}

void top_tenants::publish() {
  std::lock_guard lock(mu_);
  std::vector<std::pair<uint64_t, const std::string*>> all;
  all.reserve(counts_.size());
  for (const auto& [tenant, n] : counts_) all.emplace_back(n, &tenant);
  const size_t k = std::min(n_, all.size());
  // Most events first; ties broken by name so that the set is stable.
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : *a.second < *b.second; });
  std::map<std::string, prometheus::Gauge*> next;
  for (size_t i = 0; i < k; ++i) {
    const std::string& tenant = *all[i].second;
    auto it = shown_.find(tenant);
    prometheus::Gauge* g = it != shown_.end() ? it->second : &family_.Add({{"tenant", tenant}});
    g->Set(static_cast<double>(all[i].first));
    next.emplace(tenant, g);
  }
  for (const auto& [tenant, g] : shown_)
    if (!next.count(tenant)) family_.Remove(g);
  shown_ = std::move(next);
}

}  // namespace trail
