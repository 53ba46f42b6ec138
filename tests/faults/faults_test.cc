// Delivery guarantees under faults (docs/RELIABILITY.md lists them). Each
// scenario publishes a known set of N >= 20,000 valid events plus M invalid
// ones, injects its fault into real processes, and ends with the same proof:
// every valid event stored exactly once, exactly the M invalid ones
// dead-lettered, nothing pending or un-acked on the consumer.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

using namespace trail::test;
using namespace std::chrono_literals;

namespace {

bool wait_stored(const std::string& dsn, int64_t at_least, int timeout_ms) {
  return wait_until([&] { return stored_events(dsn) >= at_least; }, timeout_ms);
}

// What every scenario starts with: empty streams, a fresh migrated database,
// and (unless events == 0) a known workload already published.
struct scenario {
  broker b;
  std::string dsn;
  workload w;
  scenario(const std::string& database, size_t events) {
    b.reset_streams();
    dsn = fresh_database(database);
    if (events > 0) w = publish_workload(b, events);
  }
  // And what every scenario ends with: wait until everything is settled,
  // stop traild (exit 0), and prove what was stored.
  void finish(traild_process& t, committed_check committed = committed_check::exactly_once) {
    INFO("traild log: " << t.log_path());
    REQUIRE(wait_drained(b, w.invalid_bodies.size(), 240000));
    CHECK(t.stop() == 0);
    verify_exactly_once(dsn, b, w, committed);
  }
};

void merge(workload& into, const workload& from) {
  into.valid_request_ids.insert(from.valid_request_ids.begin(), from.valid_request_ids.end());
  into.invalid_bodies.insert(from.invalid_bodies.begin(), from.invalid_bodies.end());
  into.invalid_kinds.insert(from.invalid_kinds.begin(), from.invalid_kinds.end());
  into.valid_events += from.valid_events;
  into.messages += from.messages;
}

}  // namespace

TEST_CASE("1. SIGKILL in the middle of the stream, three times", "[faults]") {
  scenario sc("trail_fault_kill", 30000);
  auto& [b, dsn, w] = sc;
  // A short ack_wait, as an operator would set to recover quickly from
  // crashes, and a short outbox age: a kill can lose republishes of events
  // that were committed and acked (waiting in the retry queue, or in nats.c's
  // buffer); the outbox keeper of the next traild republishes them from the
  // table once their row is that old.
  traild_process t(dsn, {{"TRAIL_NATS_ACK_WAIT_S", "10"}, {"TRAIL_NATS_OUTBOX_RECONCILE_AFTER_S", "2"}});
  t.start();
  for (int k = 1; k <= 3; ++k) {
    REQUIRE(wait_stored(dsn, k * 6000, 60000));
    t.kill9();
    t.start();
  }
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 240000));
  db check(dsn);
  CHECK(wait_until([&] { return check.count_or_error("SELECT count(*) FROM audit.outbox") == 0; }, 60000));
  // Events republished before a kill and found again on the dedupe path after
  // it may be republished twice if that is longer ago than the committed
  // stream's duplicate window: same event, same (tenant, sequence).
  sc.finish(t, committed_check::at_least_once);
}

TEST_CASE("2. SIGKILL exactly between COMMIT and ack", "[faults]") {
  scenario sc("trail_fault_commit_ack", 20000);
  auto& [b, dsn, w] = sc;
  {
    traild_process crashing(dsn, {{"TRAIL_FAILPOINTS", "crash_after_commit=3"}, {"TRAIL_NATS_ACK_WAIT_S", "10"}});
    crashing.start(start_wait::nothing);
    REQUIRE(wait_until([&] { return !crashing.running(); }, 60000));
  }
  const int64_t committed_before_restart = stored_events(dsn);
  CHECK(committed_before_restart > 0);  // the crash came after COMMIT…
  CHECK(b.consumer_backlog("AUDIT", "trail-ingest").second > 0);  // …and before the acks
  traild_process t(dsn, {{"TRAIL_NATS_ACK_WAIT_S", "10"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 120000));
  // The redelivered, already-stored events were recognized, not stored again.
  CHECK(t.metric("trail_duplicates_skipped_total") > 0);
  sc.finish(t);
}

TEST_CASE("3. PostgreSQL stopped for 30 s in the middle of the stream", "[faults]") {
  scenario sc("trail_fault_pg_down", 30000);
  auto& [b, dsn, w] = sc;
  // A short ack_wait: without InProgress keep-alives the waiting messages
  // would be redelivered several times during the outage.
  traild_process t(dsn, {{"TRAIL_NATS_ACK_WAIT_S", "6"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_stored(dsn, 3000, 60000));
  stack_outage pg_down("stop-pg", "start-pg");  // put back even if the test fails
  const auto outage_start = std::chrono::steady_clock::now();
  // traild reports not-ready and keeps its memory bounded while it waits.
  CHECK(wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 503; }, 10000));
  std::this_thread::sleep_until(outage_start + 30s);
  CHECK(t.running());
  CHECK(t.metric("trail_inflight_events") <= 20000);
  CHECK(t.metric("trail_events_dead_lettered_total") <= static_cast<double>(w.invalid_bodies.size()));
  pg_down.restore();
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 120000));
  CHECK(wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 200; }, 30000));
  CHECK(t.metric("trail_redeliveries_total") == 0);
  sc.finish(t);
}

TEST_CASE("4. PostgreSQL restarted while transactions are in flight", "[faults]") {
  scenario sc("trail_fault_pg_restart", 20000);
  auto& [b, dsn, w] = sc;
  // Every transaction holds its COPY open for 250 ms before COMMIT, so the
  // restarts below land inside one.
  traild_process t(dsn, {{"TRAIL_FAILPOINTS", "commit_delay_ms=250"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_stored(dsn, 2000, 60000));
  stack_action("restart-pg");
  REQUIRE(wait_stored(dsn, 8000, 60000));
  stack_action("restart-pg");
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 120000));
  CHECK(t.metric("trail_db_errors_total") > 0);
  sc.finish(t);
}

TEST_CASE("5. nats-server restarted in the middle of the stream", "[faults]") {
  workload w;
  std::string dsn;
  {
    broker b;
    b.reset_streams();
    dsn = fresh_database("trail_fault_nats_restart");
    w = publish_workload(b, 20000);
  }
  traild_process t(dsn, {{"TRAIL_NATS_ACK_WAIT_S", "10"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_stored(dsn, 4000, 60000));
  stack_action("restart-nats");
  broker b;  // a fresh publisher after the restart
  merge(w, publish_workload(b, 10000, 20000));
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 120000));
  CHECK(t.stop() == 0);
  verify_exactly_once(dsn, b, w, committed_check::at_least_once);
}

TEST_CASE("6. poison events among valid ones are isolated, the rest commits", "[faults]") {
  scenario sc("trail_fault_poison", 0);
  auto& [b, dsn, w] = sc;
  {
    // A rule only the database knows, so that some events pass validation
    // and are refused by PostgreSQL inside a batch (found by bisecting).
    db d(dsn);
    d.query("ALTER TABLE audit.events ADD CONSTRAINT test_no_poison CHECK (description IS DISTINCT FROM 'poison-pill')");
  }
  w = publish_workload(b, 10000, 0, 0);
  auto poison = [&](int i, const std::string& metadata, const std::string& description) {
    const std::string body = R"({"specversion":"1.0","id":"poison-)" + std::to_string(i) +
                             R"(","source":"//it/poison","type":"t","data":{"tenant_id":"tenant-7","action":"a",)"
                             R"("actor":{"type":"user","id":"u"},"primary_resource":{"type":"r","id":"1"},)"
                             R"("metadata":)" + metadata + R"(,"description":)" + description + "}}";
    b.publish("audit.events", body);
    w.invalid_bodies.insert(body);
    ++w.messages;
  };
  for (int i = 0; i < 5; ++i) poison(i, R"({"k":"nul\u0000here"})", R"("fine")");
  for (int i = 5; i < 10; ++i) poison(i, "{}", R"("lone \ud800 surrogate")");
  for (int i = 10; i < 15; ++i) poison(i, "{}", R"("poison-pill")");
  w.invalid_kinds.insert({"unstorable_value", "database_rejected"});
  merge(w, publish_workload(b, 10000, 10000, 0));
  b.wait_published();

  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  sc.finish(t);
}

TEST_CASE("7. overload: publishers 5x faster than a slowed sink for 60 s", "[faults][slow]") {
  scenario sc("trail_fault_overload", 0);
  auto& [b, dsn, w] = sc;
  // For its first 60 s the sink manages about 400 events/s: 2 writers x 100
  // events per transaction x 2 transactions/s. Publishers send 2,000/s.
  traild_process t(dsn, {{"TRAIL_FAILPOINTS", "commit_delay_ms=500,commit_delay_for_s=60"},
                         {"TRAIL_PG_TXN_MAX_EVENTS", "100"}});
  t.start();
  INFO("traild log: " << t.log_path());
  std::jthread publisher([&] {  // joined on every exit, a failed assertion too
    broker pb;
    w = publish_workload(pb, 120000, 0, 67, 2000);
  });
  std::this_thread::sleep_for(45s);
  // Mid-overload: the backlog sits in JetStream, not in traild.
  CHECK(b.consumer_backlog("AUDIT", "trail-ingest").first > 20000);
  CHECK(t.metric("trail_inflight_events") <= 20000);
  publisher.join();
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 240000));
  const int64_t peak = t.peak_rss_bytes();
  INFO("peak RSS " << peak / (1024 * 1024) << " MiB");
  CHECK(peak > 0);
  CHECK(peak < 512LL * 1024 * 1024);
  sc.finish(t);
}

TEST_CASE("8. SIGTERM under load: exit 0 within the deadline, nothing lost after a restart", "[faults]") {
  // More events than one SIGTERM drain can finish (it commits what is in
  // flight, at most limits.inflight_max_events = 20,000), so that the stop
  // surely lands mid-stream: 40,000 were once all stored before it did.
  scenario sc("trail_fault_sigterm", 60000);
  auto& [b, dsn, w] = sc;
  {
    traild_process t(dsn);
    t.start();
    REQUIRE(wait_stored(dsn, 2000, 60000));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(t.stop(30000) == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < 25s);
    CHECK(stored_events(dsn) < static_cast<int64_t>(w.valid_events));  // it really was mid-stream
  }
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  sc.finish(t);
}

TEST_CASE("9. a downstream subscriber that never reads does not slow commits", "[faults]") {
  scenario sc("trail_fault_slow_subscriber", 30000);
  auto& [b, dsn, w] = sc;
  // A core subscriber that never reads (small pending limits: the server and
  // client drop for it) and a durable consumer on the committed stream that
  // never fetches.
  natsSubscription* lazy = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&lazy, b.nc(), "audit.committed.>") == NATS_OK);
  natsSubscription_SetPendingLimits(lazy, 100, 64 * 1024);
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_until([&] { return b.stream_messages("AUDIT_COMMITTED") > 0; }, 30000));
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = "never_reads";
  cc.AckPolicy = js_AckExplicit;
  REQUIRE(js_AddConsumer(nullptr, b.js(), "AUDIT_COMMITTED", &cc, nullptr, nullptr) == NATS_OK);
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 60000));
  int64_t dropped = 0;
  natsSubscription_GetDropped(lazy, &dropped);
  CHECK(dropped > 0);  // the subscriber really was too slow
  CHECK(t.stop() == 0);
  natsSubscription_Destroy(lazy);
  verify_exactly_once(dsn, b, w);
}
