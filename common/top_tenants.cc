#include "common/top_tenants.h"

#include <algorithm>
#include <vector>

namespace trail {

void top_tenants::add(const std::string& tenant, uint64_t events) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(tenant);
  if (it != counts_.end()) {
    it->second += events;
    return;
  }
  if (counts_.size() >= max_tracked_) {
    // Forget the less busy half (amortized O(1) per new tenant).
    std::vector<uint64_t> all;
    all.reserve(counts_.size());
    for (const auto& [t, n] : counts_) all.push_back(n);
    auto mid = all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2);
    std::nth_element(all.begin(), mid, all.end());
    const uint64_t median = *mid;
    size_t to_drop = counts_.size() - max_tracked_ / 2;
    for (auto i = counts_.begin(); i != counts_.end() && to_drop > 0;) {
      if (i->second <= median && !shown_.count(i->first)) {
        i = counts_.erase(i);
        --to_drop;
      } else {
        ++i;
      }
    }
  }
  counts_.emplace(tenant, events);
}

void top_tenants::publish() {
  std::lock_guard lock(mu_);
  if (tracked_) tracked_->Set(static_cast<double>(counts_.size()));
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
