// Tamper evidence on a live stack (docs/INTEGRITY.md): a traild with a
// signing key ingests a tenant's events and checkpoints them (in PostgreSQL
// and on the broker's checkpoint stream); then the ledger is tampered with as
// a database superuser would (triggers off), and the verify endpoint, the
// offline `traild verify` and the broker's copies must each name the first
// broken link with its exact reason.
//
// The ledger is built once per run and copied for each case (CREATE DATABASE
// … TEMPLATE); the verifying traild has the public key only, so nothing signs
// the tampered state behind the test's back.
#include <catch2/catch.hpp>
#include <httplib.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <fstream>

#include "api/auth.h"
#include "common/time.h"
#include "integrity/note.h"
#include "integrity/verify.h"
#include "sinks/event_reader.h"
#include "sinks/event_rows.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-tamper-secret-0123456789";
const std::string kBase = "trail_it_tamper_base";
const std::string kTenant = "acme";
constexpr int kEvents = 30;

std::string token(unsigned scopes) {
  return trail::issue_hs256_token(kSecret, "auditor", {kTenant}, scopes, time(nullptr), 600);
}

std::string key_path() { return stack().stack_dir + "/tamper-key"; }

std::string dsn_of(const std::string& name) { return "postgresql://postgres@" + stack().pg_host_port + "/" + name; }

std::string event_body(int n) {
  return R"({"specversion":"1.0","id":"t-)" + std::to_string(n) +
         R"(","source":"//it/tamper","type":"com.example.audit","time":"2026-11-20T10:00:00.000001Z","data":{"tenant_id":")" +
         kTenant + R"(","action":"plan.change","actor":{"type":"user","id":"u-)" + std::to_string(n % 3) +
         R"("},"primary_resource":{"type":"plan","id":"p-1"},"changes":{"old_value":{"seats":)" + std::to_string(n) +
         R"(},"new_value":{"seats":)" + std::to_string(n + 1) + R"(}}}})";
}

// The base ledger: 30 events of acme, checkpointed at 15 and at 30 at least.
void build_base() {
  static bool built = false;
  if (built) return;
  broker b;
  b.reset_streams();
  std::remove(key_path().c_str());
  std::remove((key_path() + ".pub").c_str());
  const std::string keygen = std::string(TRAIL_BIN_DIR) + "/traild keygen --name it.trail.test/audit --out " + key_path() +
                             " > /dev/null";
  REQUIRE(std::system(keygen.c_str()) == 0);
  const std::string dsn = fresh_database(kBase);
  {
    traild_process t(dsn, {{"TRAIL_INTEGRITY_SIGNING_KEY_FILE", key_path()},
                           {"TRAIL_INTEGRITY_CHECKPOINT_INTERVAL_S", "1"}});
    t.start();
    auto wave = [&](int first, int last) {
      for (int n = first; n <= last; ++n)
        b.publish("audit.events", event_body(n), {{"Content-Type", "application/cloudevents+json"}});
      b.wait_published();
      REQUIRE(wait_until([&] { return stored_events(dsn) == last; }, 30000));
      REQUIRE(wait_until(
          [&] {
            return count_now(dsn, "SELECT coalesce(max(sequence), 0) FROM audit.checkpoints WHERE tenant_id = 'acme'") == last;
          },
          15000));
    };
    wave(1, 15);
    wave(16, kEvents);
    CHECK(t.metric("trail_checkpoints_signed_total") >= 2);
    CHECK(t.stop() == 0);
  }
  // Connections to the template must be gone before it is copied.
  db admin(stack().pg_admin_dsn);
  admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + kBase + "'");
  built = true;
}

// A fresh copy of the base ledger.
std::string copy_of_base(const std::string& name) {
  build_base();
  db admin(stack().pg_admin_dsn);
  admin.query("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  admin.query("CREATE DATABASE " + name + " TEMPLATE " + kBase);
  return dsn_of(name);
}

// A traild that serves the API and verifies, but signs nothing. Like any
// traild it also ingests: the access events of the test's own requests
// (meta-audit) join acme's trail after the 30, chained on from its head.
std::unique_ptr<traild_process> verifier(const std::string& dsn) {
  auto t = std::make_unique<traild_process>(
      dsn, std::map<std::string, std::string>{{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")},
                                              {"TRAIL_API_JWT_HS256_SECRET", kSecret},
                                              {"TRAIL_API_META_AUDIT", "best_effort"},
                                              {"TRAIL_INTEGRITY_PUBLIC_KEY_FILE", key_path() + ".pub"}});
  t->start();
  return t;
}

struct verdict {
  int status = 0;
  std::string body;
  bool verified = false;
  int64_t sequence = 0;
  std::string reason;
  int64_t checked = 0, checkpoints = 0, broker = -1;
};

verdict verify(int port, const std::string& query = "") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  auto res = cli.Get(("/v1/tenants/acme/verify" + query).c_str(),
                     httplib::Headers{{"Authorization", "Bearer " + token(trail::scope_read)}});
  REQUIRE(res);
  verdict v;
  v.status = res->status;
  v.body = res->body;
  rapidjson::Document d;
  d.Parse(res->body.c_str());
  if (v.status != 200 || d.HasParseError()) return v;
  v.verified = d["verified"].GetBool();
  v.checked = d["events_checked"].GetInt64();
  v.checkpoints = d["checkpoints_checked"].GetInt64();
  if (d["broker_checkpoints_checked"].IsInt64()) v.broker = d["broker_checkpoints_checked"].GetInt64();
  if (d["first_break"].IsObject()) {
    v.sequence = d["first_break"]["sequence"].GetInt64();
    v.reason = d["first_break"]["reason"].GetString();
  }
  return v;
}

// Runs SQL as a superuser with every trigger off (session_replication_role).
void as_superuser(const std::string& dsn, const std::vector<std::string>& statements) {
  db d(dsn);
  d.query("SET session_replication_role = replica");
  for (const auto& s : statements) d.query(s);
}

std::vector<trail::stored_event> read_events(const std::string& dsn) {
  PGconn* c = PQconnectdb(dsn.c_str());
  const std::string sql = std::string("SELECT ") + trail::kStoredEventWithLinksColumns +
                          " FROM audit.events e WHERE e.tenant_id = 'acme' ORDER BY e.sequence";
  PGresult* r = PQexec(c, sql.c_str());
  REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
  std::vector<trail::stored_event> out(static_cast<size_t>(PQntuples(r)));
  std::string error;
  for (int i = 0; i < PQntuples(r); ++i) REQUIRE(trail::read_stored_event(r, i, out[static_cast<size_t>(i)], &error));
  PQclear(r);
  PQfinish(c);
  return out;
}

// What an attacker who knows the format does: replaces the tenant's events
// from `from` on with `events` (numbered from `from`), every link recomputed
// from the stored one before, identities and head kept consistent. The
// chain in the database is then whole; only signed checkpoints can tell.
void rewrite_chain(const std::string& dsn, int64_t from, const std::vector<trail::stored_event>& events) {
  const auto old = read_events(dsn);
  trail::chain_hash link = from > 1 ? old[static_cast<size_t>(from - 2)].hash : trail::kChainGenesis;
  std::string copy = trail::kEventsCopy;
  copy.replace(copy.find("(sequence,"), 10, "(recorded_at, sequence,");
  std::string rows, ids, scratch;
  int64_t seq = from;
  for (const auto& ev : events) {
    trail::chain_hash next;
    REQUIRE(trail::chain_event(link, ev.event, seq, ev.recorded_at_us, scratch, next));
    rows += trail::format_rfc3339_us(ev.recorded_at_us) + "\t";
    trail::render_rows(ev.event, seq, link, next, rows, ids);
    link = next;
    ++seq;
  }
  PGconn* c = PQconnectdb(dsn.c_str());
  auto exec = [&](const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    INFO(sql << ": " << PQresultErrorMessage(r));
    REQUIRE((PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK));
    PQclear(r);
  };
  auto copy_in = [&](const std::string& sql, const std::string& data) {
    PGresult* r = PQexec(c, sql.c_str());
    REQUIRE(PQresultStatus(r) == PGRES_COPY_IN);
    PQclear(r);
    REQUIRE(PQputCopyData(c, data.data(), static_cast<int>(data.size())) == 1);
    REQUIRE(PQputCopyEnd(c, nullptr) == 1);
    r = PQgetResult(c);
    INFO(PQresultErrorMessage(r));
    REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    while ((r = PQgetResult(c))) PQclear(r);
  };
  exec("SET session_replication_role = replica");
  exec("BEGIN");
  exec("DELETE FROM audit.events WHERE tenant_id = 'acme' AND sequence >= " + std::to_string(from));
  exec("DELETE FROM audit.event_ids WHERE tenant_id = 'acme' AND sequence >= " + std::to_string(from));
  copy_in(copy, rows);
  copy_in(trail::kEventIdsCopy, ids);
  exec("UPDATE audit.tenant_heads SET last_sequence = " + std::to_string(seq - 1) + ", head_hash = decode('" +
       trail::to_hex(link) + "', 'hex') WHERE tenant_id = 'acme'");
  exec("COMMIT");
  PQfinish(c);
}

// An event's content changed the way a forger would (a field of its payload).
trail::stored_event forged(trail::stored_event ev, const std::string& action) {
  ev.event.set(trail::event_field::action, action);
  ev.event.set(trail::event_field::ce_id, "forged-" + action);  // an identity of its own
  return ev;
}

std::string fetch(int port, const std::string& path, unsigned scopes) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  auto res = cli.Get(path.c_str(), httplib::Headers{{"Authorization", "Bearer " + token(scopes)}});
  REQUIRE(res);
  INFO(res->body);
  REQUIRE(res->status == 200);
  return res->body;
}

// `traild verify` on files fetched through the API: its exit status and output.
std::pair<int, std::string> offline_verify(int port) {
  const std::string dir = stack().stack_dir;
  std::ofstream(dir + "/tamper-ledger.ndjson") << fetch(port, "/v1/tenants/acme/export?format=ledger", trail::scope_export);
  std::ofstream(dir + "/tamper-checkpoints.json") << fetch(port, "/v1/tenants/acme/checkpoints", trail::scope_read);
  std::ofstream(dir + "/tamper-key.json") << fetch(port, "/v1/integrity/public-key", trail::scope_read);
  const std::string cmd = std::string(TRAIL_BIN_DIR) + "/traild verify --export " + dir + "/tamper-ledger.ndjson --checkpoints " +
                          dir + "/tamper-checkpoints.json --public-key " + dir + "/tamper-key.json";
  auto r = run_command(cmd);
  return {r.status, std::move(r.out)};
}

}  // namespace

TEST_CASE("tamper evidence: an untouched ledger verifies online, against the broker, and offline",
          "[integration][integrity][tamper]") {
  const std::string dsn = copy_of_base("trail_it_tamper");
  auto t = verifier(dsn);
  const auto v = verify(t->http_port());
  INFO(v.body);
  CHECK(v.verified);
  CHECK(v.checked == kEvents);
  CHECK(v.checkpoints >= 2);
  const auto b = verify(t->http_port(), "?against=broker");
  INFO(b.body);
  CHECK(b.verified);
  CHECK(b.broker >= 2);
  // A range in the middle continues the signed checkpoint before it.
  const auto mid = verify(t->http_port(), "?from_sequence=16&to_sequence=30");
  CHECK(mid.verified);
  CHECK(mid.checked == 15);
  const auto [status, out] = offline_verify(t->http_port());
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("tenant acme: sequences 1.."));
  CHECK_THAT(out, Catch::Contains(" verified: "));
  // Public key and checkpoints as the API gives them: C2SP notes of the tenant's log.
  const std::string key = fetch(t->http_port(), "/v1/integrity/public-key", trail::scope_read);
  CHECK_THAT(key, Catch::Contains("\"key\":\"it.trail.test/audit+"));
  const std::string cps = fetch(t->http_port(), "/v1/tenants/acme/checkpoints", trail::scope_read);
  CHECK_THAT(cps, Catch::Contains("it.trail.test/audit/acme\\n30\\n"));
  // Another tenant's token sees nothing of acme's integrity data.
  httplib::Client cli("127.0.0.1", t->http_port());
  auto other = cli.Get("/v1/tenants/acme/checkpoints",
                       httplib::Headers{{"Authorization", "Bearer " + trail::issue_hs256_token(kSecret, "x", {"beta"},
                                                                                           trail::scope_read, time(nullptr), 600)}});
  REQUIRE(other);
  CHECK(other->status == 403);
}

TEST_CASE("tamper evidence: each kind of tampering is named at its first broken link", "[integration][integrity][tamper]") {
  const std::string dsn = copy_of_base("trail_it_tamper");
  auto events = read_events(dsn);
  REQUIRE(events.size() == static_cast<size_t>(kEvents));
  std::string expected_reason;
  int64_t expected_sequence = 0;

  SECTION("UPDATE of one field of one event") {
    as_superuser(dsn, {"UPDATE audit.events SET actor_id = 'mallory' WHERE tenant_id = 'acme' AND sequence = 7"});
    expected_sequence = 7;
    expected_reason = "sequence 7: stored hash differs from recomputed";
  }
  SECTION("DELETE of one event (and its identity)") {
    as_superuser(dsn, {"DELETE FROM audit.events WHERE tenant_id = 'acme' AND sequence = 12",
                       "DELETE FROM audit.event_ids WHERE tenant_id = 'acme' AND sequence = 12"});
    expected_sequence = 12;
    expected_reason = "sequence 12 missing";
  }
  SECTION("two events swapped") {
    as_superuser(dsn, {"UPDATE audit.events SET sequence = -5 WHERE tenant_id = 'acme' AND sequence = 5",
                       "UPDATE audit.events SET sequence = 5 WHERE tenant_id = 'acme' AND sequence = 9",
                       "UPDATE audit.events SET sequence = 9 WHERE tenant_id = 'acme' AND sequence = -5"});
    expected_sequence = 5;
    expected_reason = "sequence 5: prev_hash does not link to sequence 4";
  }
  SECTION("INSERT of a forged event, the chain recomputed from there on: caught by the signed checkpoints") {
    std::vector<trail::stored_event> tail;
    tail.push_back(forged(events[19], "billing.refund"));  // a new event at 20
    for (size_t i = 19; i < events.size(); ++i) tail.push_back(events[i]);  // the old 20..30 become 21..31
    rewrite_chain(dsn, 20, tail);
    CHECK(chain_problem(dsn) == "");  // self-consistent: the chain alone cannot tell
    expected_sequence = 30;
    expected_reason = "checkpoint at sequence 30 does not match the chain";
  }
  SECTION("a checkpoint row replaced") {
    const std::string note = db(dsn).scalar("SELECT note FROM audit.checkpoints WHERE tenant_id = 'acme' AND sequence = 30");
    std::string altered = note;
    const size_t at = altered.find("\n30\n");
    REQUIRE(at != std::string::npos);
    altered.replace(at, 4, "\n31\n");
    as_superuser(dsn, {"UPDATE audit.checkpoints SET note = '" + altered + "' WHERE tenant_id = 'acme' AND sequence = 30"});
    expected_sequence = 30;
    expected_reason = "checkpoint at sequence 30: bad signature";
  }
  auto t = verifier(dsn);
  const auto v = verify(t->http_port());
  INFO(v.body);
  REQUIRE(v.status == 200);
  CHECK_FALSE(v.verified);
  CHECK(v.sequence == expected_sequence);
  CHECK(v.reason == expected_reason);
  // Offline, from the files an auditor takes away: the same words.
  const auto [status, out] = offline_verify(t->http_port());
  INFO(out);
  CHECK(status == 1);
  CHECK_THAT(out, Catch::Contains("BROKEN at sequence " + std::to_string(expected_sequence) + ": " + expected_reason));
}

TEST_CASE("tamper evidence: a rewritten range whose stored checkpoints were deleted is caught only by the broker's copies",
          "[integration][integrity][tamper]") {
  const std::string dsn = copy_of_base("trail_it_tamper");
  auto events = read_events(dsn);
  std::vector<trail::stored_event> tail;
  for (size_t i = 9; i < events.size(); ++i) tail.push_back(i == 9 ? forged(events[i], "billing.refund") : events[i]);
  rewrite_chain(dsn, 10, tail);
  as_superuser(dsn, {"DELETE FROM audit.checkpoints WHERE tenant_id = 'acme' AND sequence >= 10"});
  auto t = verifier(dsn);
  // The database alone: a whole chain, no checkpoint left to contradict it.
  const auto alone = verify(t->http_port());
  INFO(alone.body);
  CHECK(alone.verified);
  // The broker's copies contradict it where they were signed.
  const auto b = verify(t->http_port(), "?against=broker");
  INFO(b.body);
  CHECK_FALSE(b.verified);
  CHECK(b.sequence == 15);
  CHECK(b.reason == "the broker's checkpoint at sequence 15 does not match the chain");

  SECTION("and with the signing key stolen, re-signed checkpoints still differ from the broker's copies") {
    std::string text;
    std::ifstream(key_path()) >> text;
    const auto key = trail::integrity::parse_signing_key(text, nullptr);
    REQUIRE(key);
    const auto now = read_events(dsn);
    for (int64_t seq : {15, 30}) {
      trail::integrity::checkpoint c;
      c.origin = trail::integrity::checkpoint_origin(key->name, "acme");
      c.size = seq;
      c.root = now[static_cast<size_t>(seq - 1)].hash;
      c.time_us = trail::now_unix_us();
      as_superuser(dsn, {"INSERT INTO audit.checkpoints VALUES ('acme', " + std::to_string(seq) + ", decode('" +
                             trail::to_hex(c.root) + "', 'hex'), now(), '" + trail::integrity::sign_checkpoint(c, *key) +
                             "')"});
    }
    const auto resigned = verify(t->http_port());
    CHECK(resigned.verified);  // the forgery is consistent in the database
    const auto against = verify(t->http_port(), "?against=broker");
    INFO(against.body);
    CHECK_FALSE(against.verified);
    CHECK(against.sequence == 15);
    CHECK(against.reason == "checkpoint at sequence 15 does not match the broker's copy");
  }
}

TEST_CASE("two traild processes writing the same tenants at once extend each chain without forking it",
          "[integration][integrity]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_two_writers");
  // Small transactions and several writers each: many interleavings per tenant.
  const std::map<std::string, std::string> env = {{"TRAIL_PG_TXN_MAX_EVENTS", "20"}, {"TRAIL_PG_WRITERS", "3"}};
  traild_process one(dsn, env), two(dsn, env);
  one.start();
  two.start();
  constexpr int kTotal = 4000;
  const char* tenants[] = {"t0", "t1", "t2", "t3", "t4"};
  for (int n = 0; n < kTotal; ++n) {
    const std::string tenant = tenants[n % 5];
    b.publish("audit.events",
              R"({"specversion":"1.0","id":"w-)" + std::to_string(n) +
                  R"(","source":"//it/two","type":"t","data":{"tenant_id":")" + tenant +
                  R"(","action":"a.b","actor":{"type":"user","id":"u"},"primary_resource":{"type":"r","id":"1"}}})",
              {{"Content-Type", "application/cloudevents+json"}});
  }
  b.wait_published();
  REQUIRE(wait_until([&] { return stored_events(dsn) == kTotal; }, 60000));
  // Both took part, and every tenant's chain is one unbroken line.
  CHECK(one.metric("trail_events_committed_total") > 0);
  CHECK(two.metric("trail_events_committed_total") > 0);
  CHECK(chain_problem(dsn) == "");
  db d(dsn);
  CHECK(d.count("SELECT count(*) FROM audit.tenant_heads WHERE last_sequence = 800") == 5);
  CHECK(one.stop() == 0);
  CHECK(two.stop() == 0);
}

TEST_CASE("break-glass: a change is refused unless the transaction declares why, then it is logged, recorded as an "
          "audit event in the tenant's trail, and still named by verification",
          "[integration][integrity][tamper]") {
  const std::string dsn = copy_of_base("trail_it_break_glass");
  {
    PGconn* c = PQconnectdb(dsn.c_str());
    PGresult* r = PQexec(c, "UPDATE audit.events SET description = 'x' WHERE tenant_id = 'acme' AND sequence = 3");
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
    CHECK_THAT(std::string(PQresultErrorMessage(r)), Catch::Contains("append-only") && Catch::Contains("break-glass"));
    PQclear(r);
    PQfinish(c);
  }
  db d(dsn);
  d.query("BEGIN");
  d.query("SET LOCAL trail.break_glass = 'INC-42: court order to redact a description'");
  d.query("UPDATE audit.events SET description = 'redacted' WHERE tenant_id = 'acme' AND sequence = 3");
  d.query("COMMIT");
  CHECK(d.count("SELECT count(*) FROM audit.break_glass_log WHERE tenant_id = 'acme' AND sequence = 3 AND operation = 'UPDATE' "
                "AND reason LIKE 'INC-42%'") == 1);
  // A traild records it in acme's own trail.
  auto t = verifier(dsn);
  REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme' AND "
                                          "action = 'trail.break_glass'") == 1; },
                     20000));
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE action = 'trail.break_glass' AND severity = 'SEVERITY_CRITICAL' "
                "AND metadata->>'reason' LIKE 'INC-42%' AND metadata->>'sequence' = '3'") == 1);
  CHECK(d.count("SELECT count(*) FROM audit.break_glass_recorded") == 1);
  // The change itself is not hidden.
  const auto v = verify(t->http_port());
  CHECK_FALSE(v.verified);
  CHECK(v.reason == "sequence 3: stored hash differs from recomputed");
}
