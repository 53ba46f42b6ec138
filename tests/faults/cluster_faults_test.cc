// Scale-out on a clustered JetStream: three nats-server nodes (streams with 3
// replicas) and three traild replicas sharing the durable consumer, through
// a traild SIGKILLed and restarted and a nats-server node restarted while
// they drain. Everything ends as in every fault scenario: each valid event
// stored exactly once, sequences and hash chains unbroken, the invalid ones
// dead-lettered, every committed event broadcast, nothing pending.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

using namespace trail::test;
using namespace std::chrono_literals;

TEST_CASE("15. a 3-node JetStream cluster and 3 traild replicas: one traild SIGKILLed and restarted, one nats-server "
          "node restarted, 200,000 events",
          "[faults][cluster]") {
  nats_cluster cluster;
  REQUIRE(cluster.wait_ready(30000));
  broker b(cluster.urls());
  b.reset_streams(3);
  const std::string dsn = fresh_database("trail_fault_cluster");
  const std::map<std::string, std::string> env = {{"TRAIL_NATS_URL", cluster.urls()},
                                                  {"TRAIL_NATS_STREAM_REPLICAS", "3"}};
  std::vector<std::unique_ptr<traild_process>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(std::make_unique<traild_process>(dsn, env));

  // Half before the replicas start, half while one of them is killed.
  workload w = publish_workload(b, 100000, 0);
  for (auto& r : replicas) r->start();
  std::jthread second([&] {  // joined on every exit, a failed assertion too
    workload more = publish_workload(b, 100000, 1000000);
    w.valid_request_ids.insert(more.valid_request_ids.begin(), more.valid_request_ids.end());
    w.invalid_bodies.insert(more.invalid_bodies.begin(), more.invalid_bodies.end());
    w.invalid_kinds.insert(more.invalid_kinds.begin(), more.invalid_kinds.end());
    w.valid_events += more.valid_events;
    w.messages += more.messages;
  });
  REQUIRE(wait_until([&] { return stored_events(dsn) > 30000; }, 120000));
  replicas[1]->kill9();
  std::this_thread::sleep_for(2s);
  replicas[1]->start();
  second.join();
  // A broker node leaves and comes back while the replicas drain.
  REQUIRE(wait_until([&] { return stored_events(dsn) > 120000; }, 240000));
  cluster.stop(2);
  std::this_thread::sleep_for(3s);
  cluster.start(2);
  REQUIRE(cluster.wait_ready(30000));

  INFO("stored " << stored_events(dsn) << " of " << w.valid_events);
  REQUIRE(wait_until([&] { return stored_events(dsn) == static_cast<int64_t>(w.valid_events); }, 300000));
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 120000));
  // The replicas that ran throughout both took part (the restarted one's
  // counters began again at its restart).
  CHECK(replicas[0]->metric("trail_events_committed_total") > 0);
  CHECK(replicas[2]->metric("trail_events_committed_total") > 0);
  verify_exactly_once(dsn, b, w, committed_check::at_least_once);
  for (auto& r : replicas) CHECK(r->stop() == 0);
}
