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

TEST_CASE("an event's canonical bytes are the same from the event stored and from its row read back",
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
  for (const auto& body : bodies) {
    trail::message_view m;
    m.data = body;
    m.stream_seq = events.size() + 1;
    m.stream_time_us = 1795168800000000;
    auto out = decoder.decode(m);
    INFO(body);
    INFO((out.rejected ? out.rejected->message : std::string()));
    REQUIRE_FALSE(out.rejected);
    REQUIRE(out.events.size() == 1);
    events.push_back(std::move(out.events[0]));
  }
  // Stored through the writer's own COPY rows.
  std::string rows, ids;
  for (size_t i = 0; i < events.size(); ++i) trail::render_rows(events[i], static_cast<int64_t>(i + 1), rows, ids);
  trail::pg_session s(dsn, trail::pg_timeouts{5, 10}, "it-canonical");
  std::string error;
  REQUIRE(s.connect(&error));
  REQUIRE(s.exec("BEGIN").ok());
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
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(written.data()), written.size(), digest);
    expected << back.event.get(trail::event_field::tenant_id) << ' ' << back.sequence << ' ';
    for (unsigned char b : digest) {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", b);
      expected << hex;
    }
    expected << '\n';
  }
  PQclear(res);
  expected.close();
  // The same digests from an implementation written from docs/INTEGRITY.md
  // alone (Python's hashlib over the documented bytes).
  const std::string check = std::string("/usr/bin/python3 ") + TRAIL_SOURCE_DIR + "/tests/integrity/canonical_check.py '" +
                            dsn + "' " + expected_path + " 2>&1";
  FILE* p = popen(check.c_str(), "r");
  REQUIRE(p);
  std::string report;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) report += buf;
  const int status = pclose(p);
  INFO(report);
  CHECK(status == 0);
  CHECK_THAT(report, Catch::Contains(std::to_string(events.size()) + " rows checked, 0 differ"));
}
