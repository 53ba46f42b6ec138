// Hostile operations (docs/RELIABILITY.md, "Hostile input"): a black-holed
// database, a dead-letter stream that refuses everything, a broker that stops
// confirming publishes. Nothing may block the pipeline or a shutdown forever,
// and each scenario still ends with the exactly-once proof.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

using namespace trail::test;
using namespace std::chrono_literals;

namespace {

// SIGTERM and the time until the process has exited.
std::chrono::milliseconds timed_stop(traild_process& t, int* status) {
  const auto t0 = std::chrono::steady_clock::now();
  *status = t.stop(60000);
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
}

// Changes one setting of a stream the broker already has.
template <class Change>
void update_stream(broker& b, const char* stream, Change change) {
  jsStreamInfo* si = nullptr;
  REQUIRE(js_GetStreamInfo(&si, b.js(), stream, nullptr, nullptr) == NATS_OK);
  jsStreamConfig cfg = *si->Config;
  change(cfg);
  REQUIRE(js_UpdateStream(nullptr, b.js(), &cfg, nullptr, nullptr) == NATS_OK);
  jsStreamInfo_Destroy(si);
}

void set_no_ack(broker& b, const char* stream, bool no_ack) {
  update_stream(b, stream, [&](jsStreamConfig& c) { c.NoAck = no_ack; });
}

void set_subjects(broker& b, const char* stream, const char* subject) {
  const char* subjects[] = {subject};
  update_stream(b, stream, [&](jsStreamConfig& c) {
    c.Subjects = subjects;
    c.SubjectsLen = 1;
  });
}

}  // namespace

TEST_CASE("10. PostgreSQL black-holed (frozen): not ready, SIGTERM within the deadline, nothing lost", "[faults][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_fault_pg_frozen");
  workload w = publish_workload(b, 20000);
  {
    traild_process t(dsn, {{"TRAIL_PG_STATEMENT_TIMEOUT_S", "3"}, {"TRAIL_PG_CONNECT_TIMEOUT_S", "2"},
                           {"TRAIL_SHUTDOWN_DEADLINE_S", "6"}});
    t.start();
    INFO("traild log: " << t.log_path());
    REQUIRE(wait_until([&] { return stored_events(dsn) >= 3000; }, 60000));
    // Every PostgreSQL process stopped: connections stay open, nothing answers.
    stack_outage frozen("freeze-pg", "thaw-pg");  // thawed even if the test fails
    const bool not_ready = wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 503; }, 20000);
    int status = 0;
    const auto took = timed_stop(t, &status);
    frozen.restore();
    CHECK(not_ready);
    INFO("SIGTERM took " << took.count() << " ms");
    CHECK(status >= 0);  // exited by itself, not killed by the harness
    CHECK(took < 8s);    // the deadline (6 s) and a margin
  }
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 120000));
  CHECK(t.stop() == 0);
  verify_exactly_once(dsn, b, w, committed_check::at_least_once);
}

TEST_CASE("11. a dead-letter stream that stops answering does not hold SIGTERM past the deadline",
          "[faults][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_fault_dlq_silent");
  workload w = publish_workload(b, 5000);
  {
    traild_process t(dsn, {{"TRAIL_SHUTDOWN_DEADLINE_S", "5"}});
    t.start();
    INFO("traild log: " << t.log_path());
    REQUIRE(wait_drained(b, w.invalid_bodies.size(), 60000));
    // The dead-letter stream stops answering (no_ack): each dead-letter
    // publish now waits for a PubAck that never comes.
    set_no_ack(b, "AUDIT_DLQ", true);
    for (int i = 0; i < 5; ++i) {
      const std::string body = "stuck dead letter " + std::to_string(i);
      b.publish("audit.events", body);
      w.invalid_bodies.insert(body);
      ++w.messages;
    }
    b.wait_published();
    REQUIRE(wait_until([&] { return file_text(t.log_path()).find("could not store a dead letter") != std::string::npos; }, 30000));
    int status = 0;
    const auto took = timed_stop(t, &status);
    INFO("SIGTERM took " << took.count() << " ms");
    CHECK(status >= 0);
    CHECK(took < 7s);
  }
  // Un-acked (nak'ed at shutdown), they are dead-lettered by the next traild.
  // The stream had stored some of them without answering: the dead letters'
  // Nats-Msg-Id (stable across restarts) makes those repeats duplicates.
  set_no_ack(b, "AUDIT_DLQ", false);
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 60000));
  CHECK(t.stop() == 0);
  verify_exactly_once(dsn, b, w);
}

TEST_CASE("12. the broker stops confirming republishes: they time out and are retried, acks never block",
          "[faults][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_fault_lost_pubacks");
  // Few pending publishes allowed: without a PubAck timeout, 200 lost
  // confirmations would stall every later republish and with them every ack.
  traild_process t(dsn, {{"TRAIL_NATS_PUBLISH_MAX_PENDING", "200"}, {"TRAIL_NATS_PUBLISH_ACK_TIMEOUT_MS", "500"},
                         {"TRAIL_SHUTDOWN_DEADLINE_S", "5"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 200; }, 10000));
  // The committed stream keeps storing but no longer answers (no_ack): every
  // PubAck is lost.
  set_no_ack(b, "AUDIT_COMMITTED", true);
  workload w = publish_workload(b, 5000);
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 90000));  // committed and acked all the same
  CHECK(t.metric("trail_republish_retries_total") > 0);
  // Confirmations come back: the retries succeed; the stream's duplicate
  // window drops the copies the broker had stored unconfirmed.
  set_no_ack(b, "AUDIT_COMMITTED", false);
  REQUIRE(wait_until([&] { return t.metric("trail_republish_retry_backlog") == 0 && t.metric("trail_republish_confirmed_total") >= static_cast<double>(w.valid_events); }, 90000));
  verify_exactly_once(dsn, b, w, committed_check::exactly_once);

  // SIGTERM while republishes are unconfirmed: each one is named in the log.
  set_no_ack(b, "AUDIT_COMMITTED", true);
  for (int i = 0; i < 20; ++i)
    b.publish("audit.events", R"({"tenant_id":"late","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"r","id":")" +
                                  std::to_string(i) + R"("}})");
  b.wait_published();
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 30000));
  CHECK(t.stop() == 0);
  const std::string log = file_text(t.log_path());
  CHECK_THAT(log, Catch::Contains("stays in audit.outbox") && Catch::Contains("late:"));
  set_no_ack(b, "AUDIT_COMMITTED", false);
}

TEST_CASE("13. republishes never confirmed before traild stops are republished from the outbox after a restart",
          "[faults][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_fault_outbox");
  {
    traild_process t(dsn, {{"TRAIL_NATS_PUBLISH_ACK_TIMEOUT_MS", "500"}, {"TRAIL_SHUTDOWN_DEADLINE_S", "5"}});
    t.start();
    INFO("traild log: " << t.log_path());
    // The committed stream stops taking Trail's subjects: every republish
    // finds no responder and is retried; acks go on (they never wait for it).
    set_subjects(b, "AUDIT_COMMITTED", "nowhere.>");
    workload w = publish_workload(b, 20000);
    REQUIRE(wait_drained(b, w.invalid_bodies.size(), 90000));
    CHECK(t.metric("trail_republish_retries_total") > 0);
    CHECK(t.stop() == 0);
    // Acked and stored, never republished: audit.outbox still names them.
    CHECK(db(dsn).count("SELECT count(*) FROM audit.outbox") > 0);
    CHECK(b.stream_messages("AUDIT_COMMITTED") == 0);
    set_subjects(b, "AUDIT_COMMITTED", "audit.committed.>");
    // The next traild replicas (two at once) republish them from the
    // table, sharing the rows: each row is claimed by one keeper only.
    traild_process again(dsn, {{"TRAIL_NATS_OUTBOX_RECONCILE_AFTER_S", "1"}});
    traild_process other(dsn, {{"TRAIL_NATS_OUTBOX_RECONCILE_AFTER_S", "1"}});
    again.start();
    other.start();
    REQUIRE(wait_until([&] { return count_now(dsn, "SELECT count(*) FROM audit.outbox") == 0; }, 60000));
    const double a = again.metric("trail_outbox_republished_total"), o = other.metric("trail_outbox_republished_total");
    INFO("republished from the table: " << a << " + " << o);
    CHECK(a + o == static_cast<double>(w.valid_events));  // every event once, no row taken twice
    verify_exactly_once(dsn, b, w, committed_check::exactly_once);
    CHECK(again.stop() == 0);
    CHECK(other.stop() == 0);
  }
}
