// The canonical bytes a hash covers (decode/canonical.h, docs/INTEGRITY.md).
// Agreement with what PostgreSQL gives back is proven against a real server
// in tests/integration; these pin the rules themselves.
#include <catch2/catch.hpp>

#include <string>

#include "decode/canonical.h"

using namespace trail;

namespace {
std::string canon(const std::string& json) {
  std::string out;
  REQUIRE(append_canonical_json(json, out));
  return out;
}
}  // namespace

TEST_CASE("canonical JSON: numbers as PostgreSQL's numeric prints them", "[canonical]") {
  CHECK(numeric_text("0") == "0");
  CHECK(numeric_text("-0") == "0");
  CHECK(numeric_text("-0.0") == "0.0");
  CHECK(numeric_text("12") == "12");
  CHECK(numeric_text("-12") == "-12");
  CHECK(numeric_text("1.50") == "1.50");
  CHECK(numeric_text("1e3") == "1000");
  CHECK(numeric_text("1E+3") == "1000");
  CHECK(numeric_text("1.5e1") == "15");
  CHECK(numeric_text("1.25e1") == "12.5");
  CHECK(numeric_text("15e-1") == "1.5");
  CHECK(numeric_text("1.5e-3") == "0.0015");
  CHECK(numeric_text("-2.50e-2") == "-0.0250");
  CHECK(numeric_text("0e5") == "0");
  CHECK(numeric_text("0.000e2") == "0.0");
  CHECK(numeric_text("123456789012345678901234567890") == "123456789012345678901234567890");
  CHECK(numeric_text("1e400").size() == 401);
}

TEST_CASE("canonical JSON: sorted keys, the last of duplicates, no whitespace, minimal escapes", "[canonical]") {
  CHECK(canon(R"( { "b" : 1 , "a" : [ true , false , null ] } )") == R"({"a":[true,false,null],"b":1})");
  // Byte order of UTF-8 keys (= code point order), not length first as jsonb stores them.
  CHECK(canon(R"({"bb":1,"a":2,"é":3,"Z":4})") == "{\"Z\":4,\"a\":2,\"bb\":1,\"\xc3\xa9\":3}");
  CHECK(canon(R"({"k":1,"j":0,"k":2})") == R"({"j":0,"k":2})");
  CHECK(canon(R"({"o":{"y":1e2,"x":[{"b":1,"a":2}]}})") == R"({"o":{"x":[{"a":2,"b":1}],"y":100}})");
  // Escapes decoded, then only what must be escaped is.
  CHECK(canon(R"("\u00e9\/\"\\\n\t\u0001\u001f\u007f")") == "\"\xc3\xa9/\\\"\\\\\\n\\t\\u0001\\u001f\x7f\"");
  CHECK(canon(R"("\ud83d\ude00")") == "\"\xf0\x9f\x98\x80\"");
  CHECK(canon("[]") == "[]");
  CHECK(canon("{}") == "{}");
  CHECK(canon("\"\"") == "\"\"");
  std::string out = "kept";
  CHECK_FALSE(append_canonical_json("{\"a\":1", out));
  CHECK_FALSE(append_canonical_json("{\"a\":1} x", out));
  CHECK_FALSE(append_canonical_json("\"\xff\"", out));
  CHECK_FALSE(append_canonical_json("", out));
  CHECK(out == "kept");
}

TEST_CASE("canonical addresses as PostgreSQL's inet prints them", "[canonical]") {
  CHECK(canonical_ip("10.0.0.1") == "10.0.0.1");
  CHECK(canonical_ip("2001:DB8:0:0:0:0:0:1") == "2001:db8::1");
  CHECK(canonical_ip("2001:db8:0:0:1:0:0:1") == "2001:db8::1:0:0:1");
  CHECK(canonical_ip("::FFFF:10.0.0.1") == "::ffff:10.0.0.1");
  CHECK(canonical_ip("not an address") == "not an address");
}

TEST_CASE("an event's canonical bytes: every column once, keys in byte order, idempotent", "[canonical]") {
  audit_event e;
  e.set(event_field::tenant_id, "acme");
  e.set(event_field::ce_source, "//svc");
  e.set(event_field::ce_id, "e-1");
  e.set(event_field::ce_type, "com.example.audit");
  e.set(event_field::occurred_at, "2026-11-20T10:00:00.000001Z");
  e.occurred_at_us = 1795168800000001;
  e.set(event_field::action, "plan.change");
  e.set(event_field::category, "CATEGORY_CONFIGURATION");
  e.set(event_field::severity, "SEVERITY_INFO");
  e.set(event_field::actor_type, "ACTOR_TYPE_USER");
  e.set(event_field::actor_id, "u-1");
  e.set(event_field::actor_ip, "2001:DB8::0:1");
  e.set(event_field::resource_type, "plan");
  e.set(event_field::resource_id, "p-1");
  e.set(event_field::changes, R"({"old_value":{"tier":"free","seats":1.0e1},"new_value":{"tier":"pro"}})");
  e.set(event_field::source_service, "//svc");
  std::string bytes;
  REQUIRE(append_canonical_event(e, 7, 1795168800123456, bytes));
  REQUIRE(bytes.rfind(std::string(kCanonicalEventPrefix), 0) == 0);
  const std::string object = bytes.substr(kCanonicalEventPrefix.size());
  // Canonical already: canonicalizing again changes nothing (so the keys are
  // sorted and nothing is repeated).
  CHECK(canon(object) == object);
  CHECK_THAT(object, Catch::StartsWith(R"({"action":"plan.change","actor_display_name":null,"actor_id":"u-1","actor_ip":"2001:db8::1",)"));
  CHECK_THAT(object, Catch::Contains(R"("changes":{"new_value":{"tier":"pro"},"old_value":{"seats":10,"tier":"free"}})"));
  CHECK_THAT(object, Catch::Contains(R"("extra":null,"ingest_mode":"structured",)"));
  CHECK_THAT(object, Catch::Contains(R"("occurred_at":"2026-11-20T10:00:00.000001Z",)"));
  CHECK_THAT(object, Catch::Contains(R"("recorded_at":"2026-11-20T10:00:00.123456Z",)"));
  CHECK_THAT(object, Catch::EndsWith(R"("sequence":7,"severity":"SEVERITY_INFO","source_service":"//svc","tenant_id":"acme","trace_id":null})"));
  // Every column of audit.events.
  for (const char* column :
       {"action", "actor_display_name", "actor_id", "actor_ip", "actor_session_id", "actor_type", "actor_user_agent",
        "category", "ce_id", "ce_source", "ce_subject", "ce_type", "changes", "correlation_id", "description", "extra",
        "ingest_mode", "metadata", "occurred_at", "outcome_error_code", "outcome_status", "recorded_at",
        "related_resources", "request_id", "resource_id", "resource_type", "sequence", "severity", "source_service",
        "tenant_id", "trace_id"})
    CHECK_THAT(object, Catch::Contains("\"" + std::string(column) + "\":"));
  // A JSON column that is not JSON cannot be hashed.
  audit_event bad = e;
  bad.set(event_field::metadata, "{broken");
  std::string ignored;
  CHECK_FALSE(append_canonical_event(bad, 7, 0, ignored));
}
