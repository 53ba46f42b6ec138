// The canonical bytes (decode/canonical.h, docs/INTEGRITY.md) agree with
// what a real PostgreSQL gives back: a writer computes them from the event it
// stores, a verifier from the row it reads, and the two must be equal byte
// for byte whatever jsonb and inet did to the values.
#include <catch2/catch.hpp>
#include <openssl/sha.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "decode/canonical.h"
#include "decode/event_decoder.h"
#include "sinks/event_reader.h"
#include "sinks/event_rows.h"
#include "sinks/pg_session.h"
#include "store/migrate.h"
#include "tests/integration/harness.h"
#include "tests/unit/defaults.h"

using namespace trail::test;

namespace {

std::string canon(const std::string& json) {
  std::string out;
  REQUIRE(trail::append_canonical_json(json, out));
  return out;
}

// A JSON number text from the grammar's corners: signs, leading zeros of the
// fraction, trailing zeros, exponents of both signs and cases.
std::string random_number(std::mt19937_64& rng) {
  std::string n = rng() % 3 == 0 ? "-" : "";
  const int int_digits = static_cast<int>(rng() % 6);
  if (int_digits == 0) n += "0";
  else {
    n.push_back(static_cast<char>('1' + rng() % 9));
    for (int i = 1; i < int_digits; ++i) n.push_back(static_cast<char>('0' + rng() % 10));
  }
  if (rng() % 2) {
    n += ".";
    const int frac = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < frac; ++i) n.push_back(static_cast<char>('0' + rng() % (i + 1 == frac && rng() % 2 ? 1 : 10)));
  }
  if (rng() % 2) {
    n += rng() % 2 ? "e" : "E";
    const int sign = static_cast<int>(rng() % 3);
    if (sign == 1) n += "+";
    if (sign == 2) n += "-";
    n += std::to_string(rng() % 25);
  }
  return n;
}

// Runs tests/integrity/canonical_check.py (an implementation written from
// docs/INTEGRITY.md alone) over the database's rows against `expected`
// ("<tenant> <sequence> <sha256 of Trail's canonical bytes>" per row).
std::string independent_check(const std::string& dsn, const std::string& expected_path, int& status) {
  const std::string check = std::string("/usr/bin/python3 ") + TRAIL_SOURCE_DIR + "/tests/integrity/canonical_check.py '" +
                            dsn + "' " + expected_path;
  auto r = run_command(check);
  status = r.status;
  return std::move(r.out);
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  std::string out;
  for (unsigned char b : digest) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    out += hex;
  }
  return out;
}

trail::audit_event decoded(trail::event_decoder& decoder, const std::string& body) {
  trail::message_view m;
  m.data = body;
  m.stream_seq = 1;
  m.stream_time_us = 1795168800000000;
  auto out = decoder.decode(m);
  INFO(body);
  REQUIRE_FALSE(out.rejected);
  REQUIRE(out.events.size() == 1);
  return std::move(out.events[0]);
}

}  // namespace

TEST_CASE("canonical JSON and addresses agree with what PostgreSQL's jsonb and inet give back", "[integration][integrity]") {
  const std::string dsn = fresh_database("trail_it_canonical");
  db d(dsn);
  PGconn* c = PQconnectdb(dsn.c_str());
  REQUIRE(PQstatus(c) == CONNECTION_OK);
  auto pg = [&](const char* sql, const std::string& value) {
    const char* params[] = {value.c_str()};
    PGresult* r = PQexecParams(c, sql, 1, nullptr, params, nullptr, nullptr, 0);
    INFO(value << ": " << PQresultErrorMessage(r));
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    std::string out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return out;
  };
  // Values as publishers send them, against the same values after jsonb.
  const std::vector<std::string> values = {
      R"({"b":1,"a":2,"aa":3,"é":4,"Z":{"y":[1,2,{"d":null,"c":true}]}})",
      R"({"quote":"\"","slash":"\/","controls":"\n\t\b\f\r\u0001\u001f","del":"\u007f","emoji":"\ud83d\ude00"})",
      R"([1e3, 1E+3, 1.50, -0, -0.0, 0.000e2, 15e-1, 1.5e-3, -2.50e-2, 123456789012345678901234567890, 1e-20])",
      R"({"nested":{"deeper":{"deepest":[[],{}, "", 0]}}})",
      R"("just a string")",
      "12.0e0",
  };
  for (const auto& v : values) {
    INFO(v);
    CHECK(canon(pg("SELECT $1::jsonb::text", v)) == canon(v));
  }
  std::mt19937_64 rng(20261124);
  for (int i = 0; i < 2000; ++i) {
    const std::string n = random_number(rng);
    INFO(n);
    CHECK(pg("SELECT $1::jsonb::text", n) == trail::numeric_text(n));
  }
  for (const std::string ip : {"10.0.0.1", "2001:DB8:0:0:0:0:0:1", "2001:db8:0:0:1:0:0:1", "::FFFF:10.0.0.1", "::1",
                               "fe80::1:0:0:0", "0:0:0:0:0:0:0:0", "1:0:0:2:0:0:0:3", "::10.0.0.1"}) {
    INFO(ip);
    CHECK(pg("SELECT host($1::inet)", ip) == trail::canonical_ip(ip));
  }
  PQfinish(c);
}

TEST_CASE("an event's canonical bytes and chain links are the same from the event stored and from its row read back",
          "[integration][integrity]") {
  const std::string dsn = fresh_database("trail_it_canonical_rows");
  trail::event_decoder decoder(trail::testing::default_decoder_limits());
  const std::vector<std::string> bodies = {
      // Everything a structured event can carry, with JSON a jsonb column re-renders.
      R"({"specversion":"1.0","id":"c-1","source":"//it/canonical","type":"com.example.audit","subject":"s",
          "time":"2026-11-20T10:00:00.5+02:00","dataschema":"https://example.com/s","traceparent":
          "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","zzext":"v","data":{"tenant_id":"acme",
          "action":"plan.change","severity":"warning","category":"configuration","actor":{"type":"user","id":"u-1",
          "display_name":"Ann \"A\" Lee","ip":"2001:DB8::0:1","user_agent":"curl/8","session_id":"s-1"},
          "primary_resource":{"type":"plan","id":"p-1"},"related_resources":[{"type":"org","id":"o-1"}],
          "changes":{"old_value":{"tier":"free","seats":1.0e1,"ratio":0.50},"new_value":{"tier":"pro","seats":20}},
          "outcome":{"status":"failure","error_code":"E1"},"description":"line\nbreak","metadata":{"b":1,"a":[1e2]},
          "correlation_id":"c","request_id":"r","source_service":"//svc","unknown_field":{"x":-0.0}}})",
      // The least an event can be.
      R"({"specversion":"1.0","id":"c-2","source":"//it/canonical","type":"t","data":{"tenant_id":"acme",
          "action":"a","actor":{"type":"service","id":"svc"},"primary_resource":{"type":"r","id":"1"}}})",
  };
  std::vector<trail::audit_event> events;
  for (const auto& body : bodies) events.push_back(decoded(decoder, body));
  // Stored through the writer's own COPY rows, chained as a writer chains
  // them (from the genesis link, with the transaction's time as recorded_at).
  trail::pg_session s(dsn, trail::pg_timeouts{5, 10}, "it-canonical");
  std::string error;
  REQUIRE(s.connect(&error));
  REQUIRE(s.exec("BEGIN").ok());
  PGresult* now = nullptr;
  REQUIRE(s.exec("SELECT (extract(epoch FROM now()) * 1000000)::bigint", 0, nullptr, &now).ok());
  const int64_t now_us = std::stoll(PQgetvalue(now, 0, 0));
  PQclear(now);
  std::string rows, ids, scratch;
  trail::chain_hash prev = trail::kChainGenesis, link;
  for (size_t i = 0; i < events.size(); ++i) {
    REQUIRE(trail::chain_event(prev, events[i], static_cast<int64_t>(i + 1), now_us, scratch, link));
    trail::render_rows(events[i], static_cast<int64_t>(i + 1), prev, link, rows, ids);
    prev = link;
  }
  REQUIRE(s.copy_in(trail::kEventsCopy, rows).ok());
  REQUIRE(s.exec("COMMIT").ok());
  const std::string expected_path = stack().stack_dir + "/canonical-expected.txt";
  std::ofstream expected(expected_path);
  PGresult* res = nullptr;
  const std::string select = std::string("SELECT ") + trail::kStoredEventColumns + " FROM audit.events e ORDER BY e.sequence";
  REQUIRE(s.exec(select.c_str(), 0, nullptr, &res).ok());
  REQUIRE(PQntuples(res) == static_cast<int>(events.size()));
  for (int i = 0; i < PQntuples(res); ++i) {
    trail::stored_event back;
    REQUIRE(trail::read_stored_event(res, i, back, &error));
    std::string written, read;
    REQUIRE(trail::append_canonical_event(events[static_cast<size_t>(i)], back.sequence, back.recorded_at_us, written));
    REQUIRE(trail::append_canonical_event(back.event, back.sequence, back.recorded_at_us, read));
    CHECK(written == read);
    expected << back.event.get(trail::event_field::tenant_id) << ' ' << back.sequence << ' ' << sha256_hex(written) << '\n';
  }
  PQclear(res);
  expected.close();
  // The same digests from an implementation written from docs/INTEGRITY.md
  // alone (Python's hashlib over the documented bytes).
  int status = 0;
  const std::string report = independent_check(dsn, expected_path, status);
  INFO(report);
  CHECK(status == 0);
  CHECK_THAT(report, Catch::Contains(std::to_string(events.size()) + " rows checked, 0 differ"));
  // And the stored links are the chain that implementation computes.
  CHECK_THAT(report, Catch::Contains(std::to_string(events.size()) + " links checked, 0 broken"));
}

TEST_CASE("migrating to schema 6 chains the events stored before it, exactly as a writer would",
          "[integration][integrity]") {
  const std::string name = "trail_it_chain_backfill";
  {
    db admin(stack().pg_admin_dsn);
    admin.query("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    admin.query("CREATE DATABASE " + name);
  }
  const std::string dsn = "postgresql://postgres@" + stack().pg_host_port + "/" + name;
  auto before = trail::apply_migrations(dsn, 5);
  REQUIRE(before.ok);
  REQUIRE(before.version == 5);
  // Three tenants' events as a schema-5 writer stored them (no links), their
  // transactions at different times.
  trail::event_decoder decoder(trail::testing::default_decoder_limits());
  std::string v5_copy = trail::kEventsCopy;
  v5_copy.replace(v5_copy.find(", prev_hash, hash"), std::string(", prev_hash, hash").size(), "");
  v5_copy.replace(v5_copy.find("(sequence,"), std::string("(sequence,").size(), "(recorded_at, sequence,");
  std::string rows;
  const std::vector<std::pair<std::string, int>> tenants = {{"acme", 5}, {"beta", 1}, {"zeta", 3}};
  for (const auto& [tenant, n] : tenants)
    for (int seq = 1; seq <= n; ++seq) {
      const auto e = decoded(decoder,
                             R"({"specversion":"1.0","id":"b-)" + std::to_string(seq) + R"(","source":"//it/backfill",)"
                             R"("type":"t","data":{"tenant_id":")" + tenant + R"(","action":"a.b","actor":{"type":"user",)"
                             R"("id":"u","ip":"10.0.0.)" + std::to_string(seq) + R"("},"primary_resource":{"type":"r","id":"1"},)"
                             R"("metadata":{"z":1.50,"a":[true,null]}}})");
      std::string line, ids;
      trail::render_rows(e, seq, trail::kChainGenesis, trail::kChainGenesis, line, ids);
      line.resize(line.rfind('\t', line.rfind('\t') - 1));  // without the two links
      rows += "2026-11-2" + std::to_string(seq) + "T08:00:00." + std::to_string(100000 + seq) + "Z\t" + line + "\n";
    }
  {
    trail::pg_session s(dsn, trail::pg_timeouts{5, 10}, "it-backfill");
    std::string error;
    REQUIRE(s.connect(&error));
    REQUIRE(s.exec("BEGIN").ok());
    REQUIRE(s.copy_in(v5_copy, rows).ok());
    REQUIRE(s.exec("INSERT INTO audit.tenant_heads (tenant_id, last_sequence) VALUES ('acme', 5), ('beta', 1), ('zeta', 3)").ok());
    REQUIRE(s.exec("COMMIT").ok());
  }
  SECTION("a ledger with a gap is refused: a chain over it would certify the damage") {
    db d(dsn);
    d.query("ALTER TABLE audit.events DISABLE TRIGGER events_append_only");
    d.query("DELETE FROM audit.events WHERE tenant_id = 'zeta' AND sequence = 2");
    d.query("ALTER TABLE audit.events ENABLE TRIGGER events_append_only");
    auto r = trail::apply_migrations(dsn, 6);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.error, Catch::Contains("tenant zeta: sequence 2 is missing"));
    CHECK(trail::schema_version(dsn) == 5);
    CHECK(d.count("SELECT count(*) FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'hash'") == 0);
  }
  SECTION("every tenant's chain, checked by the independent implementation; the heads hold the last links") {
    auto r = trail::apply_migrations(dsn, 6);
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(r.version == 6);
    trail::pg_session s(dsn, trail::pg_timeouts{5, 10}, "it-backfill");
    std::string error;
    REQUIRE(s.connect(&error));
    PGresult* res = nullptr;
    const std::string select =
        std::string("SELECT ") + trail::kStoredEventColumns + " FROM audit.events e ORDER BY e.tenant_id, e.sequence";
    REQUIRE(s.exec(select.c_str(), 0, nullptr, &res).ok());
    REQUIRE(PQntuples(res) == 9);
    const std::string expected_path = stack().stack_dir + "/backfill-expected.txt";
    std::ofstream expected(expected_path);
    for (int i = 0; i < PQntuples(res); ++i) {
      trail::stored_event back;
      REQUIRE(trail::read_stored_event(res, i, back, &error));
      std::string bytes;
      REQUIRE(trail::append_canonical_event(back.event, back.sequence, back.recorded_at_us, bytes));
      expected << back.event.get(trail::event_field::tenant_id) << ' ' << back.sequence << ' ' << sha256_hex(bytes) << '\n';
    }
    PQclear(res);
    expected.close();
    int status = 0;
    const std::string report = independent_check(dsn, expected_path, status);
    INFO(report);
    CHECK(status == 0);
    CHECK_THAT(report, Catch::Contains("9 links checked, 0 broken"));
    db d(dsn);
    CHECK(d.count("SELECT count(*) FROM audit.tenant_heads h JOIN audit.events e ON e.tenant_id = h.tenant_id "
                  "AND e.sequence = h.last_sequence AND e.hash = h.head_hash") == 3);
    // The links are required from now on, and the table is append-only again.
    CHECK(d.count("SELECT count(*) FROM pg_attribute WHERE attrelid = 'audit.events'::regclass "
                  "AND attname IN ('prev_hash', 'hash') AND attnotnull") == 2);
    PGconn* c = PQconnectdb(dsn.c_str());
    PGresult* refused = PQexec(c, "UPDATE audit.events SET action = 'x' WHERE tenant_id = 'acme'");
    CHECK(PQresultStatus(refused) == PGRES_FATAL_ERROR);
    CHECK_THAT(std::string(PQresultErrorMessage(refused)), Catch::Contains("append-only"));
    PQclear(refused);
    PQfinish(c);
  }
}
