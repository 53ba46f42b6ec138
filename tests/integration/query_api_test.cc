// The read side on a live stack: traild serving /v1 as the trail_reader role,
// events published through the broker, requests through a real HTTP client;
// and the roles and row-level security proven with their own connections.
#include <catch2/catch.hpp>
#include <httplib.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "api/auth.h"
#include "sinks/pg_session.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-secret-0123456789abcdef";

std::string token(const std::vector<std::string>& tenants, unsigned scopes, int64_t ttl_s = 600) {
  return trail::issue_hs256_token(kSecret, "it-user", tenants, scopes, time(nullptr), ttl_s);
}

struct reply {
  int status = 0;
  std::string body;
  std::string request_id;
  rapidjson::Document json;
};

// One request through a real HTTP client: a GET without a body, or a POST
// with one; `bearer` may be empty (no Authorization header).
reply call(int port, const std::string& path, const std::string& bearer, const std::string* body = nullptr,
           httplib::Headers extra = {}, const char* type = "application/cloudevents+json") {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(15, 0);
  if (!bearer.empty()) extra.emplace("Authorization", "Bearer " + bearer);
  auto res = body ? cli.Post(path.c_str(), extra, *body, type) : cli.Get(path.c_str(), extra);
  reply r;
  REQUIRE(res);
  r.status = res->status;
  r.body = res->body;
  r.request_id = res->get_header_value("X-Request-Id");
  r.json.Parse(r.body.c_str());
  return r;
}

reply get(int port, const std::string& path, const std::string& bearer) { return call(port, path, bearer); }

reply send(int port, const std::string& path, const std::string& bearer, const std::string& body, httplib::Headers extra = {},
           const char* type = "application/cloudevents+json") {
  return call(port, path, bearer, &body, std::move(extra), type);
}

// Event n of `tenant`: actor alternates between two users, occurred_at one
// second apart (n = 0 oldest), a few with the same time to exercise ties.
std::string event_body(const std::string& tenant, int n) {
  const int second = n - n % 3;  // groups of three share their time
  char when[40];
  std::snprintf(when, sizeof when, "2026-11-20T10:%02d:%02d.000001Z", second / 60, second % 60);
  const std::string actor = n % 2 ? "bob" : "alice";
  return R"({"specversion":"1.0","id":"q-)" + tenant + "-" + std::to_string(n) +
         R"(","source":"//it/query","type":"com.example.audit","time":")" + when + R"(","data":{"tenant_id":")" + tenant +
         R"(","action":")" + (n % 5 == 0 ? "plan.change" : "doc.read") + R"(","severity":")" +
         (n % 7 == 0 ? "warning" : "info") + R"(","actor":{"type":"user","id":")" + actor +
         R"("},"primary_resource":{"type":"doc","id":"d-)" + std::to_string(n % 4) + R"("},"request_id":"r-)" +
         std::to_string(n) + R"("}})";
}

std::string url_encode(const std::string& s) { return httplib::detail::encode_query_param(s); }

// Every page of a listing, following next_page_token; the events' sequences
// in order (and their times, when asked).
std::vector<int64_t> walk(int port, const std::string& path, const std::string& bearer, int* pages = nullptr,
                          std::vector<std::string>* times = nullptr) {
  std::vector<int64_t> seqs;
  std::string next;
  for (int page = 0; page < 1000; ++page) {
    const std::string sep = path.find('?') == std::string::npos ? "?" : "&";
    reply r = get(port, path + (next.empty() ? "" : sep + "page_token=" + url_encode(next)), bearer);
    REQUIRE(r.status == 200);
    REQUIRE(r.json.IsObject());
    for (const auto& e : r.json["events"].GetArray()) {
      seqs.push_back(std::stoll(e["sequence"].GetString()));
      if (times) times->push_back(e["time"].GetString());
    }
    if (pages) *pages = page + 1;
    if (r.json["next_page_token"].IsNull()) return seqs;
    next = r.json["next_page_token"].GetString();
  }
  FAIL("more than 1000 pages");
  return seqs;
}

}  // namespace

TEST_CASE("query API: authentication, tenant isolation, keyset paging, filters, gets and catch-up", "[integration][api]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_query");
  const std::string reader_dsn = as_role(dsn, "trail_reader");
  constexpr int kEvents = 60;
  for (int n = 0; n < kEvents; ++n) {
    b.publish("audit.events", event_body("acme", n));
    if (n < 10) b.publish("audit.events", event_body("globex", n));
  }
  b.publish("audit.events", R"({"specversion":"1.0","id":"chg-1","source":"//it/query","type":"t","data":{"tenant_id":"initech",)"
                            R"("action":"plan.change","actor":{"type":"user","id":"u"},"primary_resource":{"type":"org","id":"o"},)"
                            R"("changes":{"old_value":{"plan":"basic","limits":{"seats":5}},"new_value":{"plan":"pro","limits":{"seats":10}}}}})");
  b.wait_published();
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", reader_dsn}, {"TRAIL_API_JWT_HS256_SECRET", kSecret}});
  t.start();
  REQUIRE(wait_until([&] { return stored_events(dsn) == kEvents + 10 + 1; }, 30000));
  const int port = t.http_port();
  const std::string reader = token({"acme"}, trail::scope_read);
  // Every read is itself recorded in the tenant's trail (meta-audit): the
  // listings below select the test's own events by their source_service.
  const std::string own = "source_service=%2F%2Fit%2Fquery";

  SECTION("who may ask") {
    reply r = get(port, "/v1/tenants/acme/events", "");
    CHECK(r.status == 401);
    CHECK(std::string(r.json["code"].GetString()) == "unauthenticated");
    CHECK_FALSE(r.request_id.empty());
    CHECK(get(port, "/v1/tenants/acme/events", "not-a-key").status == 401);
    CHECK(get(port, "/v1/tenants/acme/events", token({"acme"}, trail::scope_read, -120)).status == 401);  // expired
    CHECK(get(port, "/v1/tenants/acme/events", trail::issue_hs256_token("wrong-secret-000000", "x", {"acme"}, trail::scope_read, time(nullptr), 60)).status == 401);
    // Another tenant, or no read scope: 403, whether the event exists or not.
    reply other = get(port, "/v1/tenants/globex/events/1", reader);
    reply missing = get(port, "/v1/tenants/globex/events/999999", reader);
    CHECK(other.status == 403);
    CHECK(missing.status == 403);
    CHECK(other.body == missing.body);
    CHECK(get(port, "/v1/tenants/acme/events", token({"acme"}, trail::scope_write)).status == 403);
    // An operator token reads any tenant.
    CHECK(get(port, "/v1/tenants/globex/events", token({"*"}, trail::scope_read)).status == 200);
  }

  SECTION("newest first, every event once across pages, stable ties") {
    int pages = 0;
    std::vector<std::string> times;
    const auto seqs = walk(port, "/v1/tenants/acme/events?page_size=7&" + own, reader, &pages, &times);
    CHECK(pages == (kEvents + 6) / 7);
    REQUIRE(seqs.size() == kEvents);
    CHECK(std::set<int64_t>(seqs.begin(), seqs.end()).size() == kEvents);
    // Occurred-at descending, sequence descending among equal times (groups
    // of three events share their time, so ties cross page boundaries).
    for (size_t i = 1; i < seqs.size(); ++i) {
      INFO(times[i - 1] << " #" << seqs[i - 1] << " then " << times[i] << " #" << seqs[i]);
      CHECK((times[i] < times[i - 1] || (times[i] == times[i - 1] && seqs[i] < seqs[i - 1])));
    }
    CHECK(times.front() == "2026-11-20T10:00:57.000001Z");
    reply first = get(port, "/v1/tenants/acme/events?page_size=1&" + own, reader);
    CHECK(std::string(first.json["events"][0]["tenantid"].GetString()) == "acme");
    CHECK(std::stoll(first.json["events"][0]["sequence"].GetString()) == seqs.front());
  }

  SECTION("filters") {
    auto count_of = [&](const std::string& query) {
      return walk(port, "/v1/tenants/acme/events?page_size=1000&" + own + "&" + query, reader).size();
    };
    CHECK(count_of("actor_id=bob") == kEvents / 2);
    CHECK(count_of("actions=plan.change") == kEvents / 5);
    CHECK(count_of("actions=plan.change,doc.read") == kEvents);
    CHECK(count_of("severities=warning") == (kEvents + 6) / 7);
    CHECK(count_of("resource_type=doc&resource_id=d-1") == kEvents / 4);
    CHECK(count_of("actor_type=user&outcome=success") == 0);  // no event carries an outcome
    CHECK(count_of("from=2026-11-20T10:00:30Z&to=2026-11-20T10:00:45Z") == 15);
    CHECK(count_of("ce_source=%2F%2Fit%2Fquery&ce_id=q-acme-7") == 1);
    // The reads above, each recorded in acme's trail (committed a moment after their answer).
    CHECK(wait_until([&] { return walk(port, "/v1/tenants/acme/events?page_size=1000&last=1h&source_service=traild", reader).size() >= 9; }, 10000));
    CHECK(count_of("last=1h") == 0);  // the events are from 2026-11-20
    // Filtered paging covers the same rows as one big page.
    const auto paged = walk(port, "/v1/tenants/acme/events?page_size=4&actor_id=alice", reader);
    const auto whole = walk(port, "/v1/tenants/acme/events?page_size=1000&actor_id=alice", reader);
    CHECK(paged == whole);
  }

  SECTION("bad requests name what is wrong") {
    reply r = get(port, "/v1/tenants/acme/events?actor=bob", reader);
    CHECK(r.status == 400);
    CHECK(std::string(r.json["code"].GetString()) == "unknown_parameter");
    CHECK_THAT(r.body, Catch::Contains("actor"));
    CHECK(get(port, "/v1/tenants/acme/events?page_size=5000", reader).status == 400);
    CHECK(get(port, "/v1/tenants/acme/events?severities=high", reader).status == 400);
    // A tenant id with '.' in the path is named as such; in a token it makes the token malformed.
    CHECK(get(port, "/v1/tenants/acme.x/events", token({"*"}, trail::scope_read)).status == 400);
    CHECK(get(port, "/v1/tenants/acme.x/events", token({"acme.x"}, trail::scope_read)).status == 401);
    // A page token under other filters, or forged.
    reply page = get(port, "/v1/tenants/acme/events?page_size=5&actor_id=bob", reader);
    const std::string next = page.json["next_page_token"].GetString();
    reply changed = get(port, "/v1/tenants/acme/events?page_size=5&actor_id=alice&page_token=" + url_encode(next), reader);
    CHECK(changed.status == 400);
    CHECK(std::string(changed.json["code"].GetString()) == "invalid_page_token");
    std::string forged = next;
    forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
    CHECK(get(port, "/v1/tenants/acme/events?page_size=5&actor_id=bob&page_token=" + url_encode(forged), reader).status == 400);
    CHECK(get(port, "/v1/tenants/acme/events/abc", reader).status == 400);
    reply unknown = get(port, "/v1/nothing-here", reader);
    CHECK(unknown.status == 404);
    CHECK(std::string(unknown.json["code"].GetString()) == "not_found");
  }

  SECTION("one event by sequence") {
    reply r = get(port, "/v1/tenants/acme/events/5", reader);
    REQUIRE(r.status == 200);
    CHECK(std::string(r.json["sequence"].GetString()) == "0000000000000000005");
    CHECK(std::string(r.json["data"]["tenant_id"].GetString()) == "acme");
    reply none = get(port, "/v1/tenants/acme/events/9999", reader);
    CHECK(none.status == 404);
    CHECK_THAT(none.body, Catch::Contains("no event 9999 in tenant acme"));
  }

  SECTION("the ChangeSet of an event") {
    const std::string initech = token({"initech"}, trail::scope_read);
    reply r = get(port, "/v1/tenants/initech/events/1/diff", initech);
    REQUIRE(r.status == 200);
    CHECK(r.json["has_changes"].GetBool());
    CHECK(r.json["changed_fields"].Size() == 2);  // computed at ingest: limits, plan
    REQUIRE(r.json["fields"].Size() == 2);
    CHECK(std::string(r.json["fields"][0]["field"].GetString()) == "/limits/seats");
    CHECK(r.json["fields"][0]["old"].GetInt() == 5);
    CHECK(r.json["fields"][0]["new"].GetInt() == 10);
    CHECK(std::string(r.json["fields"][1]["field"].GetString()) == "/plan");
    reply plain = get(port, "/v1/tenants/acme/events/1/diff", reader);
    REQUIRE(plain.status == 200);
    CHECK_FALSE(plain.json["has_changes"].GetBool());
    CHECK(get(port, "/v1/tenants/initech/events/1/diff", reader).status == 403);
    CHECK(get(port, "/v1/tenants/initech/events/9999/diff", initech).status == 404);
  }

  SECTION("exports stream every match, oldest first, as NDJSON or CSV") {
    const std::string exporter = token({"acme"}, trail::scope_read | trail::scope_export);
    CHECK(get(port, "/v1/tenants/acme/export?format=ndjson", reader).status == 403);  // audit:export needed
    CHECK(get(port, "/v1/tenants/acme/export?format=xml", exporter).status == 400);
    CHECK(get(port, "/v1/tenants/acme/export?format=csv&page_size=5", exporter).status == 400);
    reply nd = get(port, "/v1/tenants/acme/export?format=ndjson&actor_id=bob", exporter);
    REQUIRE(nd.status == 200);
    std::vector<std::string> times;
    size_t lines = 0;
    for (size_t start = 0; start < nd.body.size();) {
      const size_t end = nd.body.find('\n', start);
      REQUIRE(end != std::string::npos);
      rapidjson::Document e;
      e.Parse(nd.body.c_str() + start, end - start);
      REQUIRE(e.IsObject());
      CHECK(std::string(e["data"]["actor"]["id"].GetString()) == "bob");
      times.push_back(e["time"].GetString());
      ++lines;
      start = end + 1;
    }
    CHECK(lines == kEvents / 2);
    CHECK(std::is_sorted(times.begin(), times.end()));
    reply csv = get(port, "/v1/tenants/acme/export?format=csv&" + own, exporter);
    REQUIRE(csv.status == 200);
    CHECK(csv.body.rfind("sequence,occurred_at,recorded_at,ingest_mode,tenant_id,", 0) == 0);
    size_t rows = 0;
    for (size_t at = 0; (at = csv.body.find("\r\n", at)) != std::string::npos; at += 2) ++rows;
    CHECK(rows == kEvents + 1);  // the header and one line per event (no field here holds a line break)
    // A filter value with a quote and a "$1" stays a value (COPY inlines it as an escaped literal).
    reply odd = get(port, "/v1/tenants/acme/export?format=csv&actor_id=it%27s%20%241%27%29%3B", exporter);
    REQUIRE(odd.status == 200);
    CHECK(odd.body.find("\r\n") == odd.body.size() - 2);  // the header alone
  }

  SECTION("catch-up by sequence returns every sequence once, in order") {
    const auto seqs = walk(port, "/v1/tenants/acme/events?after_sequence=10&order=asc&page_size=9&" + own, reader);
    REQUIRE(seqs.size() == kEvents - 10);
    for (size_t i = 0; i < seqs.size(); ++i) CHECK(seqs[i] == static_cast<int64_t>(11 + i));
    CHECK(walk(port, "/v1/tenants/acme/events?after_sequence=60&order=asc&" + own, reader).empty());
    // Unfiltered, catch-up still sees every sequence once: the access events
    // recorded meanwhile take the sequences after 60.
    const auto all = walk(port, "/v1/tenants/acme/events?after_sequence=0&order=asc&page_size=50", reader);
    for (size_t i = 0; i < all.size(); ++i) CHECK(all[i] == static_cast<int64_t>(1 + i));
  }
  CHECK(t.stop() == 0);
}

TEST_CASE("roles: the reader sees one tenant even without a tenant predicate, and neither role can change events", "[integration][api][rls]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_roles");
  for (int n = 0; n < 5; ++n) {
    b.publish("audit.events", event_body("acme", n));
    b.publish("audit.events", event_body("globex", n));
  }
  b.wait_published();
  {
    traild_process t(dsn);
    t.start();
    REQUIRE(wait_until([&] { return stored_events(dsn) == 10; }, 30000));
    CHECK(t.stop() == 0);
  }
  const std::string host = stack().pg_host_port;
  auto try_sql = [](PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    const auto st = PQresultStatus(r);
    std::string out = st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    std::string err = PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "";
    PQclear(r);
    return std::make_pair(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, err.empty() ? out : err);
  };
  {
    PGconn* c = PQconnectdb(("postgresql://trail_reader@" + host + "/trail_it_roles").c_str());
    REQUIRE(PQstatus(c) == CONNECTION_OK);
    CHECK(try_sql(c, "SELECT count(*) FROM audit.events").second == "0");  // no tenant set: nothing
    try_sql(c, "BEGIN");
    try_sql(c, "SET LOCAL trail.tenant = 'acme'");
    CHECK(try_sql(c, "SELECT count(*) FROM audit.events").second == "5");  // the predicate "forgotten"
    CHECK(try_sql(c, "SELECT count(DISTINCT tenant_id) FROM audit.events").second == "1");
    CHECK(try_sql(c, "SELECT count(*) FROM audit.event_ids").second == "5");
    try_sql(c, "ROLLBACK");
    for (const char* sql : {"UPDATE audit.events SET action = 'x'", "DELETE FROM audit.events", "TRUNCATE audit.events",
                            "INSERT INTO audit.tenant_heads (tenant_id) VALUES ('x')",
                            "SELECT count(*) FROM audit.tenant_heads", "SELECT count(*) FROM audit.dead_letters"}) {
      INFO(sql);
      auto r = try_sql(c, sql);
      CHECK_FALSE(r.first);
      CHECK(r.second == "42501");  // insufficient_privilege
    }
    // A partition directly: no rights at all.
    CHECK(try_sql(c, "SELECT count(*) FROM audit.events_default").second == "42501");
    PQfinish(c);
  }
  {
    PGconn* c = PQconnectdb(("postgresql://trail_ingest@" + host + "/trail_it_roles").c_str());
    REQUIRE(PQstatus(c) == CONNECTION_OK);
    CHECK(try_sql(c, "SELECT count(*) FROM audit.events").second == "10");
    for (const char* sql : {"UPDATE audit.events SET action = 'x'", "DELETE FROM audit.events", "TRUNCATE audit.events",
                            "DELETE FROM audit.event_ids", "ALTER TABLE audit.events DISABLE TRIGGER events_append_only"}) {
      INFO(sql);
      auto r = try_sql(c, sql);
      CHECK_FALSE(r.first);
      CHECK((r.second == "42501" || r.second == "42P01"));  // insufficient_privilege (or not the owner)
    }
    CHECK(try_sql(c, "SELECT audit.ensure_partitions(current_date, current_date + 2)").first);
    PQfinish(c);
  }
  {
    // A role that row-level security applies to cannot COPY: traild says so at start.
    db admin(dsn);
    admin.query("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trail_it_plain') THEN CREATE ROLE trail_it_plain LOGIN; END IF; END $$");
    admin.query("GRANT trail_reader TO trail_it_plain");
    traild_process t(as_role(dsn, "trail_it_plain"));
    t.start(start_wait::nothing);
    REQUIRE(wait_until([&] { return !t.running(); }, 20000));
    CHECK_THAT(file_text(t.log_path()), Catch::Contains("BYPASSRLS"));
  }
}

TEST_CASE("traild refuses to serve queries through a role that bypasses row-level security", "[integration][api][rls]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_bypass");
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", dsn}, {"TRAIL_API_JWT_HS256_SECRET", kSecret}});
  t.start(start_wait::nothing);
  REQUIRE(wait_until([&] { return !t.running(); }, 20000));
  CHECK_THAT(file_text(t.log_path()), Catch::Contains("bypasses row-level security"));
}

TEST_CASE("reader sessions: a pipeline carries the tenant to its statement, a refused statement leaves the session "
          "usable, prepared statements outlive neither their connection nor a failed PREPARE", "[integration][api][pipeline]") {
  const std::string dsn = fresh_database("trail_it_pipeline");
  trail::pg_session s(dsn, trail::pg_timeouts{5, 10}, "it-pipeline");
  std::string error;
  REQUIRE(s.connect(&error));
  const std::string begin = "BEGIN READ ONLY", rollback = "ROLLBACK";
  const std::string setting = "SELECT set_config('trail.tenant', $1, true)";
  const std::string read_back = "SELECT current_setting('trail.tenant') || '/' || $1::text";
  auto pipeline = [&](const std::string& statement, const std::vector<std::string>& params, PGresult** keep) {
    const std::vector<std::string> tenant{"acme"};
    return s.exec_pipeline({{&begin}, {&setting, &tenant}, {&statement, &params, true, keep}, {&rollback}});
  };
  // The setting holds for the statement after it in the same transaction.
  PGresult* res = nullptr;
  REQUIRE(pipeline(read_back, {"x"}, &res).ok());
  REQUIRE(res);
  CHECK(std::string(PQgetvalue(res, 0, 0)) == "acme/x");
  PQclear(res);
  CHECK_FALSE(s.in_transaction_block());
  // Executed again by name: the same answer with another value.
  REQUIRE(pipeline(read_back, {"y"}, &res).ok());
  CHECK(std::string(PQgetvalue(res, 0, 0)) == "acme/y");
  PQclear(res);
  {
    PGresult* n = nullptr;
    REQUIRE(s.exec("SELECT count(*) FROM pg_prepared_statements", 0, nullptr, &n).ok());
    CHECK(std::string(PQgetvalue(n, 0, 0)) == "1");
    PQclear(n);
  }
  // A statement the server refuses: the error comes back, no rows are kept,
  // the skipped ROLLBACK leaves the transaction aborted; once rolled back the
  // session serves again.
  const std::string refused = "SELECT 1 / ($1::int - 1)";
  res = nullptr;
  const trail::db_result bad = pipeline(refused, {"1"}, &res);
  CHECK_FALSE(bad.ok());
  CHECK(bad.sqlstate == "22012");
  CHECK(res == nullptr);
  CHECK(s.in_transaction_block());
  REQUIRE(s.exec("ROLLBACK").ok());
  REQUIRE(pipeline(read_back, {"z"}, &res).ok());
  CHECK(std::string(PQgetvalue(res, 0, 0)) == "acme/z");
  PQclear(res);
  // The refused statement was prepared on the server before its execution
  // failed, and forgotten by the session: a new statement must not be given
  // its name.
  const std::string fresh = "SELECT $1::text || '!'";
  REQUIRE(pipeline(fresh, {"new"}, &res).ok());
  CHECK(std::string(PQgetvalue(res, 0, 0)) == "new!");
  PQclear(res);
  // A PREPARE that fails is forgotten, so fixing nothing and retrying fails
  // the same way instead of executing a statement that does not exist.
  const std::string broken = "SELECT no_such_column FROM audit.events WHERE tenant_id = $1";
  for (int i = 0; i < 2; ++i) {
    const trail::db_result r = pipeline(broken, {"acme"}, &res);
    CHECK(r.sqlstate == "42703");
    if (s.in_transaction_block()) REQUIRE(s.exec("ROLLBACK").ok());
  }
  // The server ends the connection: the next pipeline fails, a reconnect
  // prepares afresh.
  db admin(dsn);
  admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'it-pipeline'");
  CHECK_FALSE(pipeline(read_back, {"w"}, &res).ok());
  REQUIRE(s.connect(&error));
  REQUIRE(pipeline(read_back, {"v"}, &res).ok());
  CHECK(std::string(PQgetvalue(res, 0, 0)) == "acme/v");
  PQclear(res);
}

TEST_CASE("export: 200,000 rows stream through a flat traild", "[integration][api][export]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_export");
  constexpr int kRows = 200000;
  {
    // Rows written straight into the ledger (the pipeline's speed is not under
    // test here; their chain links are zeros).
    db admin(dsn);
    admin.query("INSERT INTO audit.events (tenant_id, sequence, occurred_at, ce_source, ce_id, ce_type, ingest_mode, action, "
                "category, severity, actor_type, actor_id, resource_type, resource_id, source_service, description, metadata, "
                "prev_hash, hash) "
                "SELECT 'bulk', n, timestamptz '2026-11-20 00:00:00+00' + n * interval '1 ms', '//it/bulk', 'b-' || n, 't', "
                "'structured', 'doc.read', 'CATEGORY_DATA', 'SEVERITY_INFO', 'ACTOR_TYPE_USER', 'u-' || (n % 100), 'doc', "
                "'d-' || n, 'bulk', repeat('x', 500) || ', with a comma and a \"quote\"', '{\"n\": 1}', "
                "decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex') "
                "FROM generate_series(1, " + std::to_string(kRows) + ") n");
  }
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")}, {"TRAIL_API_JWT_HS256_SECRET", kSecret}});
  t.start();
  REQUIRE(get(t.http_port(), "/v1/tenants/bulk/events?page_size=1", token({"bulk"}, trail::scope_read)).status == 200);
  const int64_t before = t.peak_rss_bytes();
  httplib::Client cli("127.0.0.1", t.http_port());
  cli.set_read_timeout(120, 0);
  httplib::Headers h{{"Authorization", "Bearer " + token({"bulk"}, trail::scope_export)}};
  size_t bytes = 0, lines = 0;
  int status = 0;
  // A slow reader: the server must not buffer what the client has not taken.
  auto res = cli.Get("/v1/tenants/bulk/export?format=csv&source_service=bulk", h,
                     [&](const httplib::Response& r) { status = r.status; return true; },
                     [&](const char* data, size_t len) {
                       bytes += len;
                       lines += static_cast<size_t>(std::count(data, data + len, '\n'));
                       if (lines < 2000) std::this_thread::sleep_for(std::chrono::microseconds(200));
                       return true;
                     });
  REQUIRE(res);
  CHECK(status == 200);
  CHECK(lines == kRows + 1);
  CHECK(bytes > 100u * 1000 * 1000);  // ~600 bytes a row
  const int64_t growth = t.peak_rss_bytes() - before;
  INFO("traild peak RSS grew by " << growth / (1 << 20) << " MiB while exporting " << bytes / (1 << 20) << " MiB");
  CHECK(growth < 48LL * 1024 * 1024);
  CHECK(t.stop() == 0);
}

TEST_CASE("paging misses nothing and repeats nothing while 10,000 events arrive", "[integration][api][paging]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_paging");
  constexpr int kBefore = 500;
  for (int n = 0; n < kBefore; ++n) b.publish("audit.events", event_body("acme", n % 60));  // ids repeat: q-acme-0..59
  b.wait_published();
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")}, {"TRAIL_API_JWT_HS256_SECRET", kSecret}});
  t.start();
  REQUIRE(wait_until([&] { return stored_events(dsn) == 60; }, 30000));  // the repeats are the same 60 events
  // 440 more, distinct, in the past.
  for (int n = 0; n < 440; ++n) {
    std::string body = event_body("acme", n % 60);
    const std::string id = "\"id\":\"q-acme-" + std::to_string(n % 60) + "\"";
    body.replace(body.find(id), id.size(), "\"id\":\"old-" + std::to_string(n) + "\"");
    b.publish("audit.events", body);
  }
  b.wait_published();
  REQUIRE(wait_until([&] { return stored_events(dsn) == kBefore; }, 30000));
  const std::string reader = token({"acme"}, trail::scope_read);

  // Newer events (current time) arrive while both walks run.
  std::atomic<bool> publishing{true};
  std::jthread publisher([&] {  // joined on every exit, a failed assertion too
    broker b2;
    for (int n = 0; n < 10000; ++n) {
      b2.publish("audit.events", R"({"tenant_id":"acme","action":"live","actor":{"type":"user","id":"l"},)"
                                 R"("primary_resource":{"type":"doc","id":"x"},"request_id":"live-)" + std::to_string(n) + "\"}");
      if (n % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // ~2 s of arrivals
    }
    b2.wait_published();
    publishing = false;
  });
  // Newest first, from a first page taken before most of them arrived: every
  // event older than that page's start, exactly once.
  std::vector<int64_t> seen;
  std::string next;
  reply first = get(t.http_port(), "/v1/tenants/acme/events?page_size=25", reader);
  REQUIRE(first.status == 200);
  for (const auto& e : first.json["events"].GetArray()) seen.push_back(std::stoll(e["sequence"].GetString()));
  next = first.json["next_page_token"].GetString();
  while (!next.empty()) {
    reply r = get(t.http_port(), "/v1/tenants/acme/events?page_size=25&page_token=" + url_encode(next), reader);
    REQUIRE(r.status == 200);
    for (const auto& e : r.json["events"].GetArray()) seen.push_back(std::stoll(e["sequence"].GetString()));
    next = r.json["next_page_token"].IsNull() ? "" : r.json["next_page_token"].GetString();
  }
  // Catch-up by sequence during the same inserts: contiguous, once each.
  std::vector<int64_t> caught;
  int64_t after = 0;
  while (caught.size() < 5000) {
    reply r = get(t.http_port(), "/v1/tenants/acme/events?order=asc&page_size=300&after_sequence=" + std::to_string(after), reader);
    REQUIRE(r.status == 200);
    for (const auto& e : r.json["events"].GetArray()) caught.push_back(std::stoll(e["sequence"].GetString()));
    if (!caught.empty()) after = caught.back();
    if (r.json["events"].Empty() && !publishing) break;
  }
  publisher.join();
  // Every one of the 500 older events was seen once, and only live events beside them.
  std::set<int64_t> unique(seen.begin(), seen.end());
  CHECK(unique.size() == seen.size());
  db check(dsn);
  const int64_t older = check.count("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme' AND source_service = '//it/query'");
  CHECK(older == kBefore);
  int64_t older_seen = 0;
  for (int64_t s : seen)
    if (check.scalar("SELECT source_service FROM audit.events WHERE tenant_id = 'acme' AND sequence = " + std::to_string(s)) == "//it/query") ++older_seen;
  CHECK(older_seen == kBefore);
  for (size_t i = 0; i < caught.size(); ++i) REQUIRE(caught[i] == static_cast<int64_t>(i + 1));
  CHECK(caught.size() >= static_cast<size_t>(kBefore));
  INFO("live events committed while the walks ran: " << caught.size() - kBefore);
  CHECK(t.stop() == 0);
}

TEST_CASE("synchronous writes answer after COMMIT, exactly once under retries", "[integration][api][write]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_write");
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")}, {"TRAIL_API_JWT_HS256_SECRET", kSecret}});
  t.start();
  const int port = t.http_port();
  const std::string writer = token({"acme"}, trail::scope_write | trail::scope_read);
  db check(dsn);

  // A structured CloudEvent: 201 with its sequence, then the same id again: 200, the same sequence.
  const std::string ev = event_body("acme", 1);
  reply first = send(port, "/v1/tenants/acme/events", writer, ev);
  REQUIRE(first.status == 201);
  const int64_t seq = first.json["sequence"].GetInt64();
  CHECK(seq >= 1);
  CHECK(std::string(first.json["ce_id"].GetString()) == "q-acme-1");
  CHECK(std::string(first.json["occurred_at"].GetString()) == "2026-11-20T10:00:00.000001Z");
  CHECK(check.count("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme' AND ce_id = 'q-acme-1'") == 1);  // committed before the answer
  reply again = send(port, "/v1/tenants/acme/events", writer, ev);
  CHECK(again.status == 200);
  CHECK(again.json["already_stored"].GetBool());
  CHECK(again.json["sequence"].GetInt64() == seq);

  // A bare event with an Idempotency-Key, twice: one event.
  const std::string bare = R"({"tenant_id":"acme","action":"user.delete","actor":{"type":"user","id":"admin"},"primary_resource":{"type":"user","id":"u-9"}})";
  reply k1 = send(port, "/v1/tenants/acme/events", writer, bare, {{"Idempotency-Key", "del-u-9"}}, "application/json");
  REQUIRE(k1.status == 201);
  reply k2 = send(port, "/v1/tenants/acme/events", writer, bare, {{"Idempotency-Key", "del-u-9"}}, "application/json");
  CHECK(k2.status == 200);
  CHECK(k2.json["sequence"].GetInt64() == k1.json["sequence"].GetInt64());
  CHECK(check.count("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme' AND ce_id = 'del-u-9'") == 1);

  // Binary mode, through the CloudEvents HTTP binding's ce-* headers.
  reply bin = send(port, "/v1/tenants/acme/events", writer,
                   R"({"tenant_id":"acme","action":"doc.share","actor":{"type":"user","id":"u"},"primary_resource":{"type":"doc","id":"d"}})",
                   {{"ce-specversion", "1.0"}, {"ce-id", "bin-1"}, {"ce-source", "//it/http"}, {"ce-type", "t"}}, "application/json");
  CHECK(bin.status == 201);

  // Refusals: validation (with the stream's reason code), another tenant in the body, no write scope.
  reply bad = send(port, "/v1/tenants/acme/events", writer, R"({"specversion":"1.0","id":"x","source":"s","type":"t","data":{"tenant_id":"acme"}})");
  CHECK(bad.status == 400);
  CHECK(std::string(bad.json["code"].GetString()) == "payload_invalid");
  CHECK(send(port, "/v1/tenants/acme/events", writer, event_body("globex", 2)).status == 400);
  CHECK(send(port, "/v1/tenants/acme/events", token({"acme"}, trail::scope_read), event_body("acme", 3)).status == 403);
  CHECK(send(port, "/v1/tenants/acme/events", writer, "{not json").status == 400);

  // A batch: the valid ones commit, the refused one is named, in order.
  const std::string batch = "[" + event_body("acme", 10) + "," + R"({"tenant_id":"acme"})" + "," + event_body("acme", 11) + "," +
                            event_body("acme", 1) + "]";
  reply br = send(port, "/v1/tenants/acme/events:batch", writer, batch, {}, "application/json");
  REQUIRE(br.status == 200);
  const auto& results = br.json["results"];
  REQUIRE(results.Size() == 4);
  CHECK(results[0]["status"].GetInt() == 201);
  CHECK(results[1]["status"].GetInt() == 400);
  CHECK(std::string(results[1]["code"].GetString()) == "payload_invalid");
  CHECK(results[2]["status"].GetInt() == 201);
  CHECK(results[3]["status"].GetInt() == 200);  // stored by the first request
  CHECK(results[3]["sequence"].GetInt64() == seq);
  CHECK(send(port, "/v1/tenants/acme/events:batch", writer, "[]", {}, "application/json").status == 400);
  CHECK(send(port, "/v1/tenants/acme/events:batch", writer, "[" + bare + "]", {{"Idempotency-Key", std::string(201, 'k')}},
             "application/json").status == 400);
  CHECK(send(port, "/v1/tenants/acme/events", writer, bare, {{"Idempotency-Key", std::string(257, 'k')}}, "application/json")
            .status == 400);
  CHECK(check.count("SELECT count(*) FROM audit.events WHERE tenant_id = 'acme' AND ce_source <> 'trail:api' OR tenant_id = 'acme' AND ce_id = 'del-u-9'") == 5);
  CHECK(t.stop() == 0);
}

TEST_CASE("meta-audit: reads and refusals are recorded in the tenant read, and a required record gates the data", "[integration][api][meta]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_meta");
  for (int n = 0; n < 3; ++n) b.publish("audit.events", event_body("acme", n));
  b.wait_published();
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")}, {"TRAIL_API_JWT_HS256_SECRET", kSecret}});
  t.start();
  REQUIRE(wait_until([&] { return stored_events(dsn) == 3; }, 30000));
  const int port = t.http_port();
  reply list = get(port, "/v1/tenants/acme/events?actor_id=alice&page_size=10", token({"acme"}, trail::scope_read));
  REQUIRE(list.status == 200);
  CHECK(get(port, "/v1/tenants/acme/events", token({"globex"}, trail::scope_read)).status == 403);
  db check(dsn);
  REQUIRE(wait_until([&] { return check.count_or_error("SELECT count(*) FROM audit.events WHERE category = 'CATEGORY_AUDIT_ACCESS'") == 2; }, 10000));
  auto rows = check.query("SELECT action, actor_id, actor_type, outcome_status, metadata->>'rows', metadata->>'query', request_id "
                          "FROM audit.events WHERE tenant_id = 'acme' AND category = 'CATEGORY_AUDIT_ACCESS' ORDER BY action");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][0] == "audit.access.denied");
  CHECK(rows[0][3] == "FAILURE");
  CHECK(rows[1][0] == "audit.events.list");
  CHECK(rows[1][1] == "it-user");
  CHECK(rows[1][2] == "ACTOR_TYPE_USER");
  CHECK(rows[1][3] == "SUCCESS");
  CHECK(rows[1][4] == "2");  // alice: events 0 and 2
  CHECK(rows[1][5] == "actor_id=alice&page_size=10");
  CHECK(rows[1][6] == list.request_id);

  // With the broker away, a required record cannot be made: the read is refused.
  stack_outage nats_down("stop-nats", "start-nats");  // put back even if the test fails
  reply refused = get(port, "/v1/tenants/acme/events", token({"acme"}, trail::scope_read));
  CHECK(refused.status == 503);
  CHECK(std::string(refused.json["code"].GetString()) == "meta_audit_unavailable");
  nats_down.restore();
  REQUIRE(wait_until([&] { return get(port, "/v1/tenants/acme/events", token({"acme"}, trail::scope_read)).status == 200; }, 30000));
  CHECK(t.stop() == 0);
}

TEST_CASE("the OpenAPI document describes every route, and live responses conform to it", "[integration][api][openapi]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_openapi");
  b.publish("audit.events", event_body("acme", 0));
  b.publish("audit.events", R"({"specversion":"1.0","id":"chg-1","source":"//it/query","type":"t","data":{"tenant_id":"acme",)"
                            R"("action":"plan.change","actor":{"type":"user","id":"u"},"primary_resource":{"type":"org","id":"o"},)"
                            R"("changes":{"old_value":{"plan":"basic"},"new_value":{"plan":"pro"}}}})");
  b.wait_published();
  const std::string key = stack().stack_dir + "/openapi-key";
  std::remove(key.c_str());
  std::remove((key + ".pub").c_str());
  REQUIRE(std::system((std::string(TRAIL_BIN_DIR) + "/traild keygen --name it/openapi --out " + key + " > /dev/null").c_str()) == 0);
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")}, {"TRAIL_API_JWT_HS256_SECRET", kSecret},
                         {"TRAIL_INTEGRITY_SIGNING_KEY_FILE", key}, {"TRAIL_INTEGRITY_CHECKPOINT_INTERVAL_S", "1"}});
  t.start();
  REQUIRE(wait_until([&] { return stored_events(dsn) == 2; }, 30000));
  REQUIRE(wait_until([&] { return http_get(t.http_port(), "/readyz").find("\"ready\"") != std::string::npos; }, 15000));
  db waiting(dsn);
  REQUIRE(wait_until([&] { return waiting.count_or_error("SELECT count(*) FROM audit.checkpoints") > 0; }, 15000));
  db check(dsn);
  const std::string diff_seq = check.scalar("SELECT sequence FROM audit.events WHERE ce_id = 'chg-1'");
  const std::string out = stack().stack_dir + "/openapi_check.out";
  // Debian's interpreter, with the python3-jsonschema that scripts/deps.sh installs.
  const std::string cmd = std::string("/usr/bin/python3 ") + TRAIL_SOURCE_DIR + "/tests/api/openapi_check.py --port " +
                          std::to_string(t.http_port()) + " --tenant acme --diff-sequence " + diff_seq + " --token " +
                          token({"acme"}, trail::scope_read | trail::scope_write | trail::scope_export) + " --other-token " +
                          token({"globex"}, trail::scope_read) + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  INFO(file_text(out));
  CHECK(rc == 0);
  CHECK_THAT(file_text(out), Catch::Contains("14 operations exercised, 0 problems"));
  CHECK(t.stop() == 0);
}
