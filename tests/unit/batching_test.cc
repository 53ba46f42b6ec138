// Lane batchers on CAF's deterministic test scheduler: messages are delivered
// only when the test runs the scheduler, and the "writer" is the test itself,
// which says when it is ready for the next transaction.
#include <catch2/catch.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <map>
#include <random>

#include "tests/unit/defaults.h"
#include "actors/batching.h"
#include "common/metrics.h"

namespace {

using namespace trail;

struct lane_sink final : batch_sink {
  std::vector<record_batch> submitted;
  size_t lanes() const override { return 1; }
  size_t lane_of(std::string_view) const override { return 0; }
  void submit(size_t lane, record_batch&& b) override {
    REQUIRE(lane == 0);
    submitted.push_back(std::move(b));
  }
  void on_ready(size_t, std::function<void()>) override {}
  size_t events() const {
    size_t n = 0;
    for (const auto& b : submitted) n += b.size();
    return n;
  }
};

record_batch records(const std::string& tenant, int n, int first = 0, size_t bytes = 100) {
  record_batch b;
  for (int i = 0; i < n; ++i) {
    audit_record r;
    r.event.set(trail::event_field::tenant_id, tenant);
    r.event.set(trail::event_field::ce_id, std::to_string(first + i));
    // The batcher sizes a transaction by the events' text bytes.
    r.event.set(trail::event_field::description, std::string(bytes - tenant.size() - r.ce_id().size(), 'x'));
    b.push_back(std::move(r));
  }
  return b;
}

std::string tenants_of(const record_batch& b) {
  std::string out;
  for (const auto& r : b) out += std::string(r.tenant_id()) + std::string(r.ce_id()) + " ";
  return out;
}

struct fixture {
  lane_sink sink;
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  caf::actor batcher;

  explicit fixture(batcher_limits limits = testing::default_batcher_limits()) {
    sys_cfg.set("scheduler.policy", caf::atom("testing"));
    sys_cfg.set("logger.console", caf::atom("none"));
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    batcher = sys->spawn(lane_batcher, size_t{0}, limits, &sink);
  }
  ~fixture() {
    caf::anon_send_exit(batcher, caf::exit_reason::user_shutdown);
    sched->run();
  }
  void send(record_batch b) {
    caf::anon_send(batcher, std::move(b));
    sched->run();
  }
  void ready() {
    caf::anon_send(batcher, ready_atom::value);
    sched->run();
  }
};

}  // namespace

TEST_CASE("an idle writer gets an event as soon as it is validated: no linger", "[batching]") {
  fixture f;
  f.send(records("acme", 1));
  REQUIRE(f.sink.submitted.size() == 1);
  CHECK(tenants_of(f.sink.submitted[0]) == "acme0 ");
  // An idle writer with nothing to do stays idle: the next event also goes at once.
  f.ready();
  CHECK(f.sink.submitted.size() == 1);
  f.send(records("acme", 1, 1));
  REQUIRE(f.sink.submitted.size() == 2);
  CHECK(tenants_of(f.sink.submitted[1]) == "acme1 ");
}

TEST_CASE("while the writer is busy, events gather by tenant and go together when it asks", "[batching]") {
  fixture f;
  f.send(records("a", 1));  // the writer takes it and is busy now
  REQUIRE(f.sink.submitted.size() == 1);
  f.send(records("b", 2));
  record_batch mixed = records("a", 2, 1);
  for (auto& r : records("c", 1)) mixed.push_back(std::move(r));
  for (auto& r : records("b", 1, 2)) mixed.push_back(std::move(r));
  f.send(std::move(mixed));
  CHECK(f.sink.submitted.size() == 1);  // nothing handed while the writer is busy
  CHECK(actor_metrics::get().batcher_pending(0).Value() == 6);
  f.ready();
  REQUIRE(f.sink.submitted.size() == 2);
  // Whole tenant batches, tenants in order of first arrival, events in arrival order.
  CHECK(tenants_of(f.sink.submitted[1]) == "b0 b1 b2 a1 a2 c0 ");
  CHECK(actor_metrics::get().batcher_pending(0).Value() == 0);
}

TEST_CASE("a transaction is bounded by pg.txn_max_events and pg.txn_max_bytes, the rest waits for the next ask",
          "[batching]") {
  SECTION("events") {
    fixture f(batcher_limits{3, 1 << 20});
    f.send(records("a", 1));
    f.send(records("a", 2, 1));
    f.send(records("b", 3));
    f.ready();
    REQUIRE(f.sink.submitted.size() == 2);
    CHECK(tenants_of(f.sink.submitted[1]) == "a1 a2 b0 ");  // tenant b is split at the bound
    f.ready();
    REQUIRE(f.sink.submitted.size() == 3);
    CHECK(tenants_of(f.sink.submitted[2]) == "b1 b2 ");
    f.ready();
    CHECK(f.sink.submitted.size() == 3);
  }
  SECTION("bytes") {
    fixture f(batcher_limits{1000, 250});
    f.send(records("a", 1));
    f.send(records("a", 4, 1));  // 100 bytes each
    f.ready();
    REQUIRE(f.sink.submitted.size() == 2);
    CHECK(f.sink.submitted[1].size() == 2);
    f.ready();
    CHECK(f.sink.submitted[2].size() == 2);
  }
  SECTION("one event larger than the byte bound still goes, alone") {
    fixture f(batcher_limits{1000, 50});
    f.send(records("a", 2, 0, 100));
    f.ready();
    REQUIRE(f.sink.submitted.size() == 2);
    CHECK(f.sink.submitted[0].size() == 1);
    CHECK(f.sink.submitted[1].size() == 1);
  }
}

TEST_CASE("take_transaction: nothing lost or reordered within a tenant, whatever the chunks", "[batching]") {
  std::mt19937 rng(7);
  batcher_limits limits{37, 1 << 20};
  fixture f(limits);
  std::map<std::string, int> sent;
  for (int chunk = 0; chunk < 200; ++chunk) {
    record_batch b;
    const int n = static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) {
      const std::string t = "t" + std::to_string(rng() % 9);
      for (auto& r : records(t, 1, sent[t]++)) b.push_back(std::move(r));
    }
    f.send(std::move(b));
    if (rng() % 3 == 0) f.ready();
  }
  for (int i = 0; i < 200; ++i) f.ready();
  size_t total = 0;
  std::map<std::string, int> next;
  for (const auto& txn : f.sink.submitted) {
    CHECK(txn.size() <= limits.max_events);
    for (const auto& r : txn) {
      CHECK(r.ce_id() == std::to_string(next[std::string(r.tenant_id())]));
      ++next[std::string(r.tenant_id())];
      ++total;
    }
  }
  size_t expected = 0;
  for (const auto& [t, n] : sent) {
    expected += static_cast<size_t>(n);
    CHECK(next[t] == n);
  }
  CHECK(total == expected);
}
