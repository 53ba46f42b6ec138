// The opt-in top-N tenant gauge: only the N busiest tenants are exported, and
// a tenant that drops out of the top N loses its series.
#include <catch2/catch.hpp>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/top_tenants.h"

#include <map>

namespace {

std::map<std::string, double> exported(prometheus::Registry& r) {
  std::map<std::string, double> out;
  for (const auto& family : r.Collect())
    for (const auto& m : family.metric) out[m.label.at(0).value] = m.gauge.value;
  return out;
}

}  // namespace

TEST_CASE("top tenants: the N busiest are exported, and only they") {
  prometheus::Registry registry;
  auto& family = prometheus::BuildGauge().Name("t").Help("h").Register(registry);
  trail::top_tenants top(family, 2);
  top.publish();
  CHECK(exported(registry).empty());

  top.add("a", 5);
  top.add("b", 3);
  top.add("c", 1);
  top.add("a", 1);
  top.publish();
  CHECK(exported(registry) == std::map<std::string, double>{{"a", 6}, {"b", 3}});

  top.add("c", 10);  // c overtakes both; b drops out and loses its series
  top.publish();
  CHECK(exported(registry) == std::map<std::string, double>{{"a", 6}, {"c", 11}});

  top.add("b", 3);   // a tie at 6 with a: broken by name, so a stays
  top.publish();
  CHECK(exported(registry) == std::map<std::string, double>{{"a", 6}, {"c", 11}});
}
