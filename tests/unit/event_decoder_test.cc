// The audit payload validator and the content-mode decoder (decode/event_decoder), and
// the renderings of the typed event it builds (sinks/event_rows, decode/event_json).
#include <catch2/catch.hpp>

#include "tests/unit/defaults.h"
#include "decode/event_decoder.h"
#include "common/record.h"
#include "common/time.h"
#include "decode/event_json.h"
#include "sinks/copy_encoding.h"
#include "sinks/event_rows.h"

using trail::audit_event;
using trail::event_field;
using trail::decode_outcome;
using trail::event_decoder;
using trail::inbound_message;

namespace {

const char* kPayload = R"({"tenant_id":"acme","action":"user.role.updated","actor":{"type":"user","id":"u1"},)"
                       R"("primary_resource":{"type":"user","id":"u2"}})";

std::string structured(const std::string& data, const std::string& extra_attrs = "") {
  return R"({"specversion":"1.0","id":"ev-1","source":"//iam","type":"com.acme.audit",)" + extra_attrs +
         R"("data":)" + data + "}";
}

struct message {
  std::string body;
  inbound_message in;
  explicit message(std::string b, std::vector<std::pair<std::string, std::string>> headers = {}) : body(std::move(b)) {
    in.data = body;
    in.headers = std::move(headers);
    in.stream_seq = 42;
    in.stream_time_us = 1763800000000000LL;
  }
};

decode_outcome decode(message& m, trail::decoder_limits limits = trail::testing::default_decoder_limits()) {
  event_decoder d(limits);
  return d.decode(m.in.view());
}

// The event's COPY row for audit.events, split into decoded columns after the
// sequence (which the writer assigns).
std::vector<std::string> columns(const audit_event& e) {
  std::vector<std::string> out;
  std::string events, ids;
  trail::render_rows(e, 7, trail::kChainGenesis, trail::kChainGenesis, events, ids);
  std::string_view row(events);
  REQUIRE(row.back() == '\n');
  row.remove_suffix(1);
  REQUIRE(row.substr(0, 2) == "7\t");
  row.remove_prefix(2);
  size_t start = 0;
  while (true) {
    size_t tab = row.find('\t', start);
    auto field = row.substr(start, tab == std::string_view::npos ? row.size() - start : tab - start);
    out.push_back(field == "\\N" ? "<null>" : trail::copy_text::decode_field(field));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return out;
}
enum col { tenant, occurred, source, id, type, subject, mode, action, category, severity, actor_type, actor_id,
           actor_name, actor_ip, actor_ua, actor_session, res_type, res_id, related, changes, outcome_status,
           outcome_code, description, metadata, correlation, request, source_service, trace, extra, prev_hash, hash, ncols };

}  // namespace

TEST_CASE("structured event with a minimal payload gets the documented defaults", "[decoder]") {
  message m(structured(kPayload, R"("time":"2026-11-20T10:00:00.123456789Z",)"));
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected.has_value());
  REQUIRE(out.events.size() == 1);
  auto c = columns(out.events[0]);
  REQUIRE(c.size() == ncols);
  CHECK(c[tenant] == "acme");
  CHECK(c[occurred] == "2026-11-20T10:00:00.123456Z");
  CHECK(c[source] == "//iam");
  CHECK(c[id] == "ev-1");
  CHECK(c[mode] == "structured");
  CHECK(c[category] == "CATEGORY_UNSPECIFIED");
  CHECK(c[severity] == "SEVERITY_INFO");
  CHECK(c[actor_type] == "ACTOR_TYPE_USER");
  CHECK(c[source_service] == "//iam");  // defaults to the CloudEvents source
  CHECK(c[outcome_status] == "<null>");
  CHECK(c[extra] == "<null>");
}

TEST_CASE("payload fields are validated one by one", "[decoder]") {
  struct bad_case {
    const char* data;
    const char* expected;
  };
  const bad_case cases[] = {
      {R"({"action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"}})", "tenant_id is required"},
      {R"({"tenant_id":"a b","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"}})", "tenant_id must be"},
      {R"({"tenant_id":"t","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"}})", "data.action is required"},
      {R"({"tenant_id":"t","action":"a","primary_resource":{"type":"t","id":"i"}})", "data.actor is required"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"robot","id":"u"},"primary_resource":{"type":"t","id":"i"}})", "ACTOR_TYPE"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user"},"primary_resource":{"type":"t","id":"i"}})", "data.actor.id is required"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u","ip":"999.1.1.1"},"primary_resource":{"type":"t","id":"i"}})", "not an IPv4 or IPv6"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"}})", "primary_resource is required"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t"}})", "primary_resource.id is required"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"severity":"LOUD"})", "SEVERITY_DEBUG"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"outcome":{"status":"MAYBE"}})", "not SUCCESS or FAILURE"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"metadata":[1]})", "metadata must be an object"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"occurred_at":"yesterday"})", "RFC 3339"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"related_resources":[{"type":"x"}]})", "related_resources[0].id is required"},
      {R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"changes":{"changed_fields":"x"}})", "changed_fields must be an array"},
  };
  for (const auto& bc : cases) {
    INFO(bc.data);
    message m(structured(bc.data));
    auto out = decode(m);
    REQUIRE(out.rejected.has_value());
    CHECK(std::string(trail::to_string(out.rejected->code)) == "payload_invalid");
    CHECK_THAT(out.rejected->message, Catch::Contains(bc.expected));
    CHECK(out.events.empty());
  }
}

TEST_CASE("tenant id may come from the tenantid extension but must agree with data", "[decoder]") {
  const char* no_tenant = R"({"action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"}})";
  message ok(structured(no_tenant, R"("tenantid":"t-9",)"));
  auto out = decode(ok);
  REQUIRE_FALSE(out.rejected);
  CHECK(out.events[0].get(event_field::tenant_id) == "t-9");

  message clash(structured(kPayload, R"("tenantid":"other",)"));
  auto bad = decode(clash);
  REQUIRE(bad.rejected);
  CHECK_THAT(bad.rejected->message, Catch::Contains("does not match"));
}

TEST_CASE("enums accept short forms and normalize them", "[decoder]") {
  message m(structured(R"({"tenant_id":"t","action":"a","actor":{"type":"api_key","id":"k"},)"
                       R"("resource":{"type":"t","id":"i"},"severity":"warning","category":"auth",)"
                       R"("outcome":"denied"})"));
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected);
  auto c = columns(out.events[0]);
  CHECK(c[actor_type] == "ACTOR_TYPE_API_KEY");
  CHECK(c[severity] == "SEVERITY_WARNING");
  CHECK(c[category] == "CATEGORY_AUTH");
  CHECK(c[outcome_status] == "FAILURE");
  CHECK(c[outcome_code] == "denied");
  CHECK(c[res_type] == "t");
}

TEST_CASE("changed_fields is computed when missing and both values are objects", "[decoder][changes]") {
  rapidjson::Document a, b;
  a.Parse(R"({"role":"viewer","name":"Ann","tags":["x"],"gone":1,"same":{"k":[1,2]}})");
  b.Parse(R"({"role":"admin","name":"Ann","tags":["x","y"],"new":true,"same":{"k":[1,2]}})");
  CHECK(trail::compute_changed_fields(a, b) == std::vector<std::string>{"gone", "new", "role", "tags"});

  message m(structured(R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},)"
                       R"("primary_resource":{"type":"t","id":"i"},)"
                       R"("changes":{"old_value":{"role":"viewer"},"new_value":{"role":"admin","x":1}}})"));
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected);
  auto c = columns(out.events[0]);
  CHECK_THAT(c[changes], Catch::Contains(R"("changed_fields":["role","x"])"));

  message given(structured(R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},)"
                           R"("primary_resource":{"type":"t","id":"i"},)"
                           R"("changes":{"old_value":{"a":1},"new_value":{"a":2},"changed_fields":["mine"]}})"));
  auto out2 = decode(given);
  REQUIRE_FALSE(out2.rejected);
  CHECK_THAT(columns(out2.events[0])[changes], Catch::Contains(R"("changed_fields":["mine"])"));
}

TEST_CASE("trace id, source service and occurred_at fall back to the envelope", "[decoder]") {
  message m(structured(kPayload, R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",)"));
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected);
  auto c = columns(out.events[0]);
  CHECK(c[trace] == "4bf92f3577b34da6a3ce929d0e0e4736");
  // no time anywhere: the broker's receive time
  CHECK(c[occurred] == trail::format_rfc3339_us(m.in.stream_time_us));
  CHECK_THAT(c[extra], Catch::Contains("traceparent"));
}

TEST_CASE("binary mode reads percent-decoded ce- headers case-insensitively", "[decoder][binary]") {
  message m(kPayload, {{"CE-SpecVersion", "1.0"},
                       {"ce-id", "b%2D1"},
                       {"Ce-Source", "%2F%2Fbilling"},
                       {"ce-type", "com.acme.audit"},
                       {"ce-time", "2026-11-20T10:00:00Z"},
                       {"Content-Type", "application/json"}});
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected);
  CHECK(out.mode == trail::ingest_mode::binary);
  CHECK(out.events[0].get(event_field::ce_id) == "b-1");
  CHECK(out.events[0].get(event_field::ce_source) == "//billing");

  message bad(kPayload, {{"ce-specversion", "1.0"}, {"ce-id", "x%zz"}, {"ce-source", "s"}, {"ce-type", "t"}});
  auto r = decode(bad);
  REQUIRE(r.rejected);
  CHECK(std::string(trail::to_string(r.rejected->code)) == "envelope_invalid");

  message text(kPayload, {{"ce-specversion", "1.0"}, {"ce-id", "x"}, {"ce-source", "s"}, {"ce-type", "t"},
                          {"content-type", "text/plain"}});
  auto t = decode(text);
  REQUIRE(t.rejected);
  CHECK(std::string(trail::to_string(t.rejected->code)) == "unsupported_content_type");
}

TEST_CASE("batch mode is valid or invalid as a whole", "[decoder][batch]") {
  const std::string e1 = structured(kPayload);
  std::string e2 = e1;
  e2.replace(e2.find("ev-1"), 4, "ev-2");
  message ok("[" + e1 + "," + e2 + "]", {{"Content-Type", "application/cloudevents-batch+json"}});
  auto out = decode(ok);
  REQUIRE_FALSE(out.rejected);
  CHECK(out.mode == trail::ingest_mode::batch);
  REQUIRE(out.events.size() == 2);
  CHECK(out.events[1].get(event_field::ce_id) == "ev-2");

  const std::string invalid = structured(R"({"tenant_id":"t"})");
  message bad("[" + e1 + "," + invalid + "]");
  auto r = decode(bad);
  REQUIRE(r.rejected);
  CHECK(std::string(trail::to_string(r.rejected->code)) == "batch_invalid");
  CHECK_THAT(r.rejected->message, Catch::Contains("batch element 1"));
  CHECK(r.events.empty());

  message empty("[]", {{"Content-Type", "application/cloudevents-batch+json"}});
  auto e = decode(empty);
  CHECK_FALSE(e.rejected);
  CHECK(e.events.empty());
}

TEST_CASE("a bare audit object gets a deterministic UUIDv7 and the receive time", "[decoder][bare]") {
  message m1(kPayload), m2(kPayload);
  auto a = decode(m1), b = decode(m2);
  REQUIRE_FALSE(a.rejected);
  CHECK(a.mode == trail::ingest_mode::bare);
  CHECK(a.events[0].get(event_field::ce_id) == b.events[0].get(event_field::ce_id));  // same stream position, same identity
  CHECK(a.events[0].get(event_field::ce_id).size() == 36);
  CHECK(a.events[0].get(event_field::ce_id)[14] == '7');
  m2.in.stream_seq = 43;
  CHECK(decode(m2).events[0].get(event_field::ce_id) != a.events[0].get(event_field::ce_id));
}

TEST_CASE("bad bytes are refused with a reason, never stored", "[decoder]") {
  SECTION("malformed JSON") {
    message m("{\"specversion\":");
    auto r = decode(m);
    REQUIRE(r.rejected);
    CHECK(std::string(trail::to_string(r.rejected->code)) == "malformed_json");
  }
  SECTION("NUL in a string") {
    message m(structured(R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},)"
                         R"("primary_resource":{"type":"t","id":"i"},"metadata":{"k":"a\u0000b"}})"));
    auto r = decode(m);
    REQUIRE(r.rejected);
    CHECK(std::string(trail::to_string(r.rejected->code)) == "unstorable_value");
  }
  SECTION("unpaired surrogates, high and low") {
    for (const char* s : {R"("\ud800x")", R"("\udc00")"}) {
      message m(structured(std::string(R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},)"
                                       R"("primary_resource":{"type":"t","id":"i"},"description":)") + s + "}"));
      auto r = decode(m);
      REQUIRE(r.rejected);
      CHECK(std::string(trail::to_string(r.rejected->code)) == "unstorable_value");
    }
  }
  SECTION("invalid UTF-8 bytes") {
    std::string body = structured(kPayload);
    body.replace(body.find("ev-1"), 1, "\xff");
    message m(body);
    auto r = decode(m);
    REQUIRE(r.rejected);
    CHECK(std::string(trail::to_string(r.rejected->code)) == "unstorable_value");
  }
  SECTION("too large") {
    std::string big(300 * 1024, 'x');
    message m(structured(std::string(R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},)"
                                     R"("primary_resource":{"type":"t","id":"i"},"description":")") + big + "\"}"));
    auto r = decode(m);
    REQUIRE(r.rejected);
    CHECK(std::string(trail::to_string(r.rejected->code)) == "too_large");
  }
  SECTION("deep nesting is refused without exhausting the stack") {
    std::string deep = std::string(100000, '[') + std::string(100000, ']');
    message m(structured(std::string(R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},)"
                                     R"("primary_resource":{"type":"t","id":"i"},"metadata":{"x":)") + deep + "}}"));
    auto r = decode(m, trail::decoder_limits{1 << 20, 4 << 20, 1000, 64, 10000, 1 << 20});
    REQUIRE(r.rejected);
    CHECK_THAT(r.rejected->message, Catch::Contains("nesting"));
  }
}

TEST_CASE("the committed event carries the normalized payload", "[decoder]") {
  message m(structured(kPayload));
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected);
  std::string full;
  trail::render_committed_event(out.events[0], trail::padded_sequence(1), "x", full);
  rapidjson::Document d;
  d.Parse(full.c_str());
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["tenantid"].GetString()) == "acme");
  CHECK(std::string(d["sequence"].GetString()) == "0000000000000000001");
  CHECK(std::string(d["recordedtime"].GetString()) == "x");
  CHECK(std::string(d["data"]["actor"]["type"].GetString()) == "ACTOR_TYPE_USER");
  CHECK(std::string(d["data"]["primary_resource"]["id"].GetString()) == "u2");
}

TEST_CASE("extra keeps dataschema, extensions and unknown fields, and reads back into the same event", "[decoder]") {
  message m(structured(R"({"tenant_id":"acme","action":"a.b","actor":{"type":"user","id":"u1"},)"
                       R"("primary_resource":{"type":"doc","id":"d"},"ticket":{"n":7,"tags":["x"]}})",
                       R"("dataschema":"https://schemas.example/a","tenantid":"acme","region":"eu","retries":3,)"
                       R"("sequence":"9","flag":true,)"));
  auto out = decode(m);
  REQUIRE_FALSE(out.rejected);
  const audit_event& e = out.events.at(0);
  std::string extra;
  trail::render_extra(e, extra);
  rapidjson::Document d;
  d.Parse(extra.c_str());
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["dataschema"].GetString()) == "https://schemas.example/a");
  CHECK(std::string(d["extensions"]["region"].GetString()) == "eu");
  CHECK(d["extensions"]["retries"].GetInt() == 3);
  CHECK(d["extensions"]["flag"].GetBool());
  CHECK(std::string(d["extensions"]["sequence"].GetString()) == "9");  // the publisher's, kept verbatim
  CHECK(d["unknown"]["ticket"]["n"].GetInt() == 7);

  // The committed event carries the extensions except those Trail sets itself.
  std::string committed;
  trail::render_committed_event(e, trail::padded_sequence(5), "2026-01-01T00:00:00.000000Z", committed);
  rapidjson::Document c;
  c.Parse(committed.c_str());
  REQUIRE_FALSE(c.HasParseError());
  CHECK(std::string(c["region"].GetString()) == "eu");
  CHECK(std::string(c["sequence"].GetString()) == "0000000000000000005");
  CHECK(c["data"]["ticket"]["tags"][0] == "x");

  // Read back from the column (as the outbox keeper and the query API do):
  // the same extra, the same committed event.
  audit_event back;
  for (auto f : {event_field::tenant_id, event_field::ce_source, event_field::ce_id, event_field::ce_type,
                 event_field::occurred_at, event_field::action, event_field::category, event_field::severity,
                 event_field::actor_type, event_field::actor_id, event_field::resource_type, event_field::resource_id,
                 event_field::source_service})
    back.set(f, e.get(f));
  REQUIRE(trail::parse_extra(extra, back));
  std::string extra_again, committed_again;
  trail::render_extra(back, extra_again);
  trail::render_committed_event(back, trail::padded_sequence(5), "2026-01-01T00:00:00.000000Z", committed_again);
  CHECK(extra_again == extra);
  CHECK(committed_again == committed);
  CHECK_FALSE(trail::parse_extra(R"({"surprise":1})", back));
  CHECK_FALSE(trail::parse_extra("[1]", back));
}
