// Synchronous writes (POST /v1/tenants/{t}/events and …:batch) while the
// broker and then PostgreSQL are down: the caller is told which (503: not
// handed over; 504: handed over, commit not yet seen), retrying with the same
// id is always safe, and every event ends stored exactly once and
// republished once.
#include <catch2/catch.hpp>
#include <httplib.h>
#include <rapidjson/document.h>

#include <chrono>
#include <set>
#include <thread>

#include "api/auth.h"
#include "tests/integration/harness.h"

using namespace trail::test;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "fault-write-secret-0123456789";

struct answer {
  int status = 0;  // -1: no HTTP answer at all
  rapidjson::Document json;
};

answer post(int port, const std::string& path, const std::string& bearer, const std::string& body,
            const char* type = "application/cloudevents+json") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(30, 0);
  auto res = cli.Post(path.c_str(), httplib::Headers{{"Authorization", "Bearer " + bearer}}, body, type);
  answer a;
  if (!res) {
    a.status = -1;
    return a;
  }
  a.status = res->status;
  a.json.Parse(res->body.c_str());
  return a;
}

std::string event(const std::string& id) {
  return R"({"specversion":"1.0","id":")" + id +
         R"(","source":"//fault/write","type":"com.example.audit","time":"2026-11-20T10:00:00Z","data":{"tenant_id":"acme",)"
         R"("action":"plan.change","actor":{"type":"user","id":"admin"},"primary_resource":{"type":"plan","id":"p-1"}}})";
}

int64_t copies(db& d, const std::string& id) {
  return d.count("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme' AND ce_id = '" + id + "'");
}

}  // namespace

TEST_CASE("14. synchronous writes with the broker down (503), then PostgreSQL down (504): retries store each event once",
          "[faults][api]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_fault_sync_write");
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")},
                         {"TRAIL_API_JWT_HS256_SECRET", kSecret},
                         {"TRAIL_API_WRITE_COMMIT_WAIT_MS", "2000"}});
  t.start();
  INFO("traild log: " << t.log_path());
  const int port = t.http_port();
  const std::string writer =
      trail::issue_hs256_token(kSecret, "fault-writer", {"acme"}, trail::scope_write | trail::scope_read, time(nullptr), 3600);
  db check(dsn);
  REQUIRE(post(port, "/v1/tenants/acme/events", writer, event("w-before")).status == 201);

  // The broker is down: nothing can be handed over, and the caller hears so
  // at once (503), not after a timeout.
  stack_outage nats_down("stop-nats", "start-nats");  // put back even if the test fails
  {
    const auto t0 = std::chrono::steady_clock::now();
    const answer a = post(port, "/v1/tenants/acme/events", writer, event("w-broker"));
    CHECK(a.status == 503);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    const answer batch = post(port, "/v1/tenants/acme/events:batch", writer, "[" + event("w-broker-batch") + "]",
                              "application/json");
    REQUIRE(batch.status == 200);
    CHECK(batch.json["results"][0]["status"].GetInt() == 503);
  }
  nats_down.restore();
  // Retried with the same ids until the broker is back: one 201 each.
  for (const std::string id : {"w-broker", "w-broker-batch"}) {
    int status = 0;
    REQUIRE(wait_until([&] { return (status = post(port, "/v1/tenants/acme/events", writer, event(id)).status) != 503; },
                       60000));
    CHECK((status == 201 || status == 200));
    CHECK(copies(check, id) == 1);
  }

  // PostgreSQL is down: the broker takes the event, its commit cannot be
  // seen (504: retry to learn the sequence); a retry during the outage is
  // not a second event.
  stack_outage pg_down("stop-pg", "start-pg");
  const answer pending = post(port, "/v1/tenants/acme/events", writer, event("w-db"));
  CHECK(pending.status == 504);
  CHECK(std::string(pending.json["code"].GetString()) == "commit_pending");
  CHECK(post(port, "/v1/tenants/acme/events", writer, event("w-db")).status == 504);
  pg_down.restore();
  answer done;
  REQUIRE(wait_until([&] {
    done = post(port, "/v1/tenants/acme/events", writer, event("w-db"));
    return done.status == 200 || done.status == 201;
  }, 90000));
  const int64_t sequence = done.json["sequence"].GetInt64();
  CHECK(sequence >= 1);
  // The event the first 504 handed over was committed by the stream, so the
  // answer is most likely "already stored"; either way it is one event.
  db after(dsn);
  CHECK(copies(after, "w-db") == 1);
  CHECK(after.count("SELECT sequence FROM audit.events WHERE tenant_id = 'acme' AND ce_id = 'w-db'") == sequence);
  CHECK(post(port, "/v1/tenants/acme/events", writer, event("w-db")).status == 200);

  // Every event once in the ledger, gap-free, and once on the committed stream.
  CHECK(after.count("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme'") == 4);
  CHECK(after.count("SELECT max(sequence) FROM audit.events WHERE tenant_id = 'acme'") == 4);
  const auto committed = b.read_stream("AUDIT_COMMITTED", 4, 60000);
  std::set<std::string> seen;
  for (const auto& m : committed) {
    rapidjson::Document d;
    d.Parse(m.data.c_str());
    REQUIRE(d.IsObject());
    CHECK(seen.insert(d["id"].GetString()).second);
  }
  CHECK(seen == std::set<std::string>{"w-before", "w-broker", "w-broker-batch", "w-db"});
  CHECK(t.stop() == 0);
}
