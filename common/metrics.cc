#include "common/metrics.h"

namespace trail::metrics {
using namespace prometheus;

namespace {
struct state {
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  std::unique_ptr<top_tenants> tenants;
  state() {
    BuildGauge().Name("trail_build_info").Help("Build information").Register(*registry).Add({{"version", TRAIL_VERSION}}).Set(1);
  }
};
state& the() {
  static state s;
  return s;
}
}  // namespace

std::shared_ptr<Registry> registry() { return the().registry; }

Family<Counter>& counter_family(const std::string& name, const std::string& help) {
  return BuildCounter().Name(name).Help(help).Register(*the().registry);
}

Family<Gauge>& gauge_family(const std::string& name, const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(*the().registry);
}

Counter& counter(const std::string& name, const std::string& help, const labels& l) {
  return counter_family(name, help).Add(l);
}

Gauge& gauge(const std::string& name, const std::string& help, const labels& l) { return gauge_family(name, help).Add(l); }

Histogram& histogram(const std::string& name, const std::string& help, Histogram::BucketBoundaries buckets, const labels& l) {
  return BuildHistogram().Name(name).Help(help).Register(*the().registry).Add(l, std::move(buckets));
}

void enable_top_tenants(size_t n) {
  auto& s = the();
  if (n == 0 || s.tenants) return;
  auto& family = gauge_family("trail_top_tenant_committed_events",
                              "Events committed since start, for the metrics.top_tenants tenants with the most");
  auto& tracked = gauge("trail_top_tenants_tracked", "Tenants whose committed events the top-N gauge is counting (bounded, see README)");
  s.tenants = std::make_unique<top_tenants>(family, n, 0, &tracked);
}

top_tenants* tenants() { return the().tenants.get(); }

}  // namespace trail::metrics
