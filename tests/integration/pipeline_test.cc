// The core pipeline against real nats-server and PostgreSQL: 100,000 events
// across 200 tenants, structured, binary, batch and bare modes mixed, plus
// about 1% invalid messages of several kinds.
#include <catch2/catch.hpp>

#include "store/migrate.h"
#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

using namespace trail::test;

TEST_CASE("100,000 mixed events are stored exactly once, invalid ones dead-lettered, all republished", "[integration]") {
  const size_t kEvents = 100000;
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_pipeline");
  workload w = publish_workload(b, kEvents);
  REQUIRE(w.valid_events == kEvents);
  REQUIRE(w.invalid_bodies.size() >= 990);
  REQUIRE(b.stream_messages("AUDIT") == w.messages);

  traild_process traild(dsn);
  traild.start();
  INFO("traild log: " << traild.log_path());
  REQUIRE(wait_drained(b, w.invalid_bodies.size(), 180000));
  CHECK(traild.stop() == 0);
  verify_exactly_once(dsn, b, w);

  // Every mode made it; computed changed_fields; the binary source was
  // percent-decoded; text with tabs, newlines, backslashes, quotes and
  // non-ASCII characters survived COPY and the database unchanged.
  db d(dsn);
  CHECK(d.count("SELECT count(DISTINCT tenant_id) FROM audit.events") == 200);
  for (const char* mode : {"structured", "binary", "batch", "bare"})
    CHECK(d.count(std::string("SELECT count(*) FROM audit.events WHERE ingest_mode = '") + mode + "'") > 1000);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE action = 'user.role.updated' AND changes->'changed_fields' <> '[\"role\"]'::jsonb") == 0);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ingest_mode = 'binary' AND ce_source <> '//it/binary'") == 0);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE description <> E'Zo\\u00eb changed a \"role\"\\twith tabs\\nand lines \\\\ backslashes'") == 0);
}

TEST_CASE("traild serves /healthz and /readyz, and migrations are idempotent", "[integration]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_health");
  const std::string again = std::string("TRAIL_PG_DSN='") + dsn + "' " + TRAIL_BIN_DIR + "/traild --log-level warn migrate";
  REQUIRE(std::system(again.c_str()) == 0);
  db d(dsn);
  CHECK(d.count("SELECT count(*) FROM audit.schema_migrations") == static_cast<int64_t>(trail::embedded_migrations().size()));
  CHECK(d.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'audit' AND tablename LIKE 'events_2%'") >= 8);

  traild_process traild(dsn);
  traild.start();
  int status = 0;
  CHECK(http_get(traild.http_port(), "/healthz", &status).find("ok") != std::string::npos);
  CHECK(status == 200);
  CHECK(wait_until([&] { int s = 0; http_get(traild.http_port(), "/readyz", &s); return s == 200; }, 10000));
  CHECK(traild.stop() == 0);
}

TEST_CASE("stored events cannot be updated or deleted", "[integration]") {
  const std::string dsn = fresh_database("trail_it_immutable");
  db d(dsn);
  d.query("INSERT INTO audit.events (tenant_id, sequence, occurred_at, ce_source, ce_id, ce_type, ingest_mode, action, "
          "category, severity, actor_type, actor_id, resource_type, resource_id, source_service, prev_hash, hash) VALUES "
          "('t', 1, now(), 's', 'i', 'x', 'bare', 'a', 'CATEGORY_UNSPECIFIED', 'SEVERITY_INFO', 'ACTOR_TYPE_USER', 'u', 'r', 'r1', 's', "
          "decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))");
  PGconn* c = PQconnectdb(dsn.c_str());
  for (const char* sql : {"UPDATE audit.events SET action = 'b'", "DELETE FROM audit.events", "TRUNCATE audit.events"}) {
    PGresult* r = PQexec(c, sql);
    INFO(sql);
    CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
    CHECK(std::string(PQresultErrorMessage(r)).find("append-only") != std::string::npos);
    PQclear(r);
  }
  PQfinish(c);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE action = 'a'") == 1);
}
