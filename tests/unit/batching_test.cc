// Tenant router and batchers on CAF's deterministic test scheduler: time only
// moves when the test advances it.
#include <catch2/catch.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/batching.h"
#include "common/metrics.h"

namespace {

using namespace trail;

struct collecting_sink final : batch_sink {
  std::vector<record_batch> batches;
  void submit(record_batch&& b) override { batches.push_back(std::move(b)); }
  size_t events() const {
    size_t n = 0;
    for (const auto& b : batches) n += b.size();
    return n;
  }
};

record_batch records(const std::string& tenant, int n) {
  record_batch b;
  for (int i = 0; i < n; ++i) {
    audit_record r;
    r.tenant_id = tenant;
    r.ce_id = std::to_string(i);
    r.copy_tail = std::string(100, 'x');
    b.push_back(std::move(r));
  }
  return b;
}

struct fixture {
  config cfg = load_config("", {});
  collecting_sink sink;
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  caf::actor router;

  fixture() {
    cfg.batch_max_events = 3;
    cfg.batch_max_bytes = 1 << 20;
    cfg.batch_max_linger_ms = 50;
    cfg.batcher_idle_s = 60;
    sys_cfg.set("scheduler.policy", caf::atom("testing"));
    sys_cfg.set("logger.console", caf::atom("none"));
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    router = sys->spawn(tenant_router, &cfg, &sink);
  }
  ~fixture() {
    caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
    sched->run();
  }
  void send(tenant_groups g) {
    caf::anon_send(router, std::move(g));
    sched->run();
  }
};

}  // namespace

TEST_CASE("a batcher flushes at max_events and after max_linger", "[batching]") {
  fixture f;
  tenant_groups g;
  g.push_back(records("acme", 2));
  f.send(std::move(g));
  CHECK(f.sink.batches.empty());  // 2 < 3 and no time has passed

  g = {};
  g.push_back(records("acme", 2));
  f.send(std::move(g));
  REQUIRE(f.sink.batches.size() == 1);  // reached 3: flushed at once
  CHECK(f.sink.batches[0].size() == 4);

  g = {};
  g.push_back(records("acme", 1));
  f.send(std::move(g));
  CHECK(f.sink.batches.size() == 1);
  f.sched->advance_time(std::chrono::milliseconds(49));
  f.sched->run();
  CHECK(f.sink.batches.size() == 1);
  f.sched->advance_time(std::chrono::milliseconds(1));
  f.sched->run();
  REQUIRE(f.sink.batches.size() == 2);
  CHECK(f.sink.batches[1].size() == 1);
  CHECK(f.sink.batches[1][0].tenant_id == "acme");
}

TEST_CASE("tenants are batched apart", "[batching]") {
  fixture f;
  tenant_groups g;
  g.push_back(records("a", 3));
  g.push_back(records("b", 1));
  f.send(std::move(g));
  REQUIRE(f.sink.batches.size() == 1);
  CHECK(f.sink.batches[0].front().tenant_id == "a");
  f.sched->advance_time(std::chrono::milliseconds(50));
  f.sched->run();
  REQUIRE(f.sink.batches.size() == 2);
  CHECK(f.sink.batches[1].front().tenant_id == "b");
}

TEST_CASE("an idle batcher is retired and a new one takes over without losing records", "[batching]") {
  fixture f;
  tenant_groups g;
  g.push_back(records("acme", 1));
  f.send(std::move(g));
  f.sched->advance_time(std::chrono::milliseconds(50));
  f.sched->run();
  REQUIRE(f.sink.events() == 1);
  CHECK(metrics::get().batchers.Value() == 1);
  // After batch.idle_stop_s of quiet the batcher asks to retire; the router agrees.
  f.sched->advance_time(std::chrono::seconds(61));
  f.sched->run();
  CHECK(metrics::get().batchers.Value() == 0);
  // Records for the tenant still arrive and are flushed (by a fresh batcher).
  g = {};
  g.push_back(records("acme", 3));
  f.send(std::move(g));
  CHECK(f.sink.events() == 4);
}

TEST_CASE("flush_atom at the router flushes every batcher", "[batching]") {
  fixture f;
  tenant_groups g;
  g.push_back(records("a", 1));
  g.push_back(records("b", 2));
  f.send(std::move(g));
  CHECK(f.sink.events() == 0);
  caf::anon_send(f.router, flush_atom::value);
  f.sched->run();
  CHECK(f.sink.events() == 3);
}

TEST_CASE("hostile: a flood of tenant ids is capped at batch.max_tenant_batchers, the rest share the overflow batcher",
          "[batching][hostile]") {
  fixture f;
  f.cfg.max_tenant_batchers = 4;  // read by the router on every message
  tenant_groups g;
  for (int t = 0; t < 50; ++t) g.push_back(records("tenant-" + std::to_string(t), 1));
  const double overflow_before = metrics::get().overflow_records.Value();
  f.send(std::move(g));
  // 4 tenant batchers and 1 shared overflow batcher, not 50 actors.
  CHECK(metrics::get().batchers.Value() == 5);
  CHECK(metrics::get().overflow_records.Value() - overflow_before == 46);
  f.sched->advance_time(std::chrono::milliseconds(50));
  f.sched->run();
  // Nothing is lost: every record reaches the sink; the overflow batch holds many tenants.
  CHECK(f.sink.events() == 50);
  bool mixed = false;
  for (const auto& b : f.sink.batches)
    for (const auto& r : b) mixed |= r.tenant_id != b.front().tenant_id;
  CHECK(mixed);
  // Idle tenant batchers retire; the overflow batcher stays (it is never retired).
  f.sched->advance_time(std::chrono::seconds(61));
  f.sched->run();
  CHECK(metrics::get().batchers.Value() == 1);
}
