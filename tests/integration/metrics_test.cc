// /metrics on a live traild: Prometheus' own linter accepts the exposition,
// and the counters agree with what was published.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

using namespace trail::test;

TEST_CASE("metrics: promtool accepts a live scrape, counters match the workload", "[integration][metrics]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_metrics");
  const workload w = publish_workload(b, 5000);
  traild_process t(dsn, {{"TRAIL_METRICS_TOP_TENANTS", "5"}});
  t.start();
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 60000));

  const std::string scrape = http_get(t.metrics_port(), "/metrics");
  REQUIRE_FALSE(scrape.empty());
  const std::string path = stack().stack_dir + "/scrape.txt";
  {
    std::ofstream out(path);
    out << scrape;
  }
  const std::string cmd = "promtool check metrics < '" + path + "' > '" + path + ".lint' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream lint_in(path + ".lint");
  const std::string lint((std::istreambuf_iterator<char>(lint_in)), std::istreambuf_iterator<char>());
  INFO("promtool said: " << lint);
  CHECK(rc == 0);

  CHECK(t.metric("trail_events_committed_total") == static_cast<double>(w.valid_events));
  CHECK(t.metric("trail_events_dead_lettered_total") == static_cast<double>(w.invalid_bodies.size()));
  CHECK(t.metric("trail_republish_confirmed_total") == static_cast<double>(w.valid_events));
  CHECK(t.metric("trail_transaction_events_sum") == static_cast<double>(w.valid_events));
  CHECK(t.metric("trail_end_to_end_seconds_count") == static_cast<double>(w.valid_events));
  CHECK(t.metric("trail_inflight_events_limit") == 20000);
  CHECK(t.metric("trail_build_info") == 1);
  // Exported per writer lane, empty once drained.
  CHECK(http_get(t.metrics_port(), "/metrics").find("trail_batcher_pending_events{writer=\"1\"} 0") != std::string::npos);
  for (const char* name : {"trail_events_received_total", "trail_commit_seconds_count", "trail_transaction_bytes_count"}) {
    INFO(name);
    CHECK(t.metric(name) > 0);
  }
  // Polled gauges (every second): the writer connections and the consumer's backlog.
  CHECK(wait_until([&] { return t.metric("trail_pg_connections") == 2; }, 5000));
  CHECK(t.metric("trail_consumer_ack_pending_messages") == 0);

  // Sampled by the actors themselves: the family is exported for each role.
  for (const char* role : {"validator", "batcher"}) {
    INFO(role);
    CHECK(scrape.find(std::string("trail_actor_mailbox_messages_count{actor=\"") + role + "\"}") != std::string::npos);
  }
  // The opt-in top-N gauge: five tenant series whose counts are the five
  // largest in the table (their sum does not depend on how ties are broken).
  db pg(dsn);
  const int64_t top5 = pg.count(
      "SELECT sum(n) FROM (SELECT count(*) AS n FROM audit.events GROUP BY tenant_id ORDER BY 1 DESC LIMIT 5) t");
  CHECK(wait_until([&] { return t.metric("trail_top_tenant_committed_events") == static_cast<double>(top5); }, 5000));
  const std::string again = http_get(t.metrics_port(), "/metrics");
  size_t series = 0;
  for (size_t at = again.find("\ntrail_top_tenant_committed_events{"); at != std::string::npos;
       at = again.find("\ntrail_top_tenant_committed_events{", at + 1))
    ++series;
  CHECK(series == 5);
  CHECK(t.stop() == 0);
}
