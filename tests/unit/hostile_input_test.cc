// Hostile input at the validator: messages crafted to stall, bloat or fork
// Trail (docs/RELIABILITY.md, "Hostile input"). Each case names the input and
// what Trail must do with it.
#include <catch2/catch.hpp>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "tests/unit/defaults.h"
#include "decode/cloudevent.h"
#include "decode/event_decoder.h"
#include "decode/event_json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "ingest/ingest_metrics.h"
#include "sinks/writer_metrics.h"
#include "common/top_tenants.h"
#include "config/config.h"

using namespace trail;

namespace {

const char* kActorResource = R"("actor":{"type":"user","id":"u1"},"primary_resource":{"type":"user","id":"u2"})";

std::string payload(const std::string& tenant = "acme", const std::string& more = "") {
  return R"({"tenant_id":")" + tenant + R"(","action":"a",)" + kActorResource + more + "}";
}

std::string structured(const std::string& data, const std::string& attrs = R"("id":"ev-1","source":"//iam")") {
  return R"({"specversion":"1.0",)" + attrs + R"(,"type":"t","data":)" + data + "}";
}

struct message {
  std::string body;
  inbound_message in;
  explicit message(std::string b, std::vector<std::pair<std::string, std::string>> headers = {}) : body(std::move(b)) {
    in.data = body;
    in.headers = std::move(headers);
    in.header_wire_bytes = header_wire_size(in.headers);
    in.stream_seq = 7;
    in.stream_time_us = 1763800000000000LL;
  }
};

decode_outcome decode(message& m, decoder_limits limits = testing::default_decoder_limits()) {
  event_decoder d(limits);
  return d.decode(m.in.view());
}

std::string refused_code(message& m, decoder_limits limits = testing::default_decoder_limits()) {
  auto out = decode(m, limits);
  return out.rejected ? std::string(trail::to_string(out.rejected->code)) : std::string("accepted");
}

// {"k0":0,"k1":1,…} with n members; `changed_every` > 0 gives every such member another value.
std::string wide_object(size_t n, size_t changed_every = 0) {
  std::string s = "{";
  for (size_t i = 0; i < n; ++i) {
    if (i) s += ',';
    const bool changed = changed_every && i % changed_every == 0;
    s += "\"k" + std::to_string(i) + "\":" + std::to_string(changed ? i + 1 : i);
  }
  return s + "}";
}

}  // namespace

TEST_CASE("hostile: a JSON member name given twice is refused wherever it is", "[hostile][decoder]") {
  // Validation would read the first "action", jsonb would keep the second.
  message top(structured(R"({"tenant_id":"acme","action":"a","action":"b",)" + std::string(kActorResource) + "}"));
  auto out = decode(top);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "payload_invalid");
  CHECK_THAT(out.rejected->message, Catch::Contains("'action' more than once"));

  message nested(structured(payload("acme", R"(,"metadata":{"x":1,"y":2,"x":3})")));
  CHECK(refused_code(nested) == "payload_invalid");
  message envelope(R"({"specversion":"1.0","id":"a","id":"b","source":"//s","type":"t","data":)" + payload() + "}");
  CHECK(refused_code(envelope) == "payload_invalid");
  // A large object takes the sorted path; the repeat is the last member.
  std::string wide = wide_object(5000);
  wide.back() = ',';
  wide += "\"k17\":0}";
  message big(structured(payload("acme", R"(,"metadata":)" + wide)));
  CHECK(refused_code(big) == "payload_invalid");
  // Distinct names that share a prefix are fine.
  message fine(structured(payload("acme", R"(,"metadata":{"a":1,"ab":2,"abc":3})")));
  CHECK(refused_code(fine) == "accepted");
}

TEST_CASE("hostile: objects beyond validate.max_object_keys are refused with the limit named", "[hostile][decoder]") {
  decoder_limits limits = testing::default_decoder_limits();
  limits.max_object_keys = 1000;
  message m(structured(payload("acme", R"(,"metadata":)" + wide_object(1001))));
  auto out = decode(m, limits);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "payload_invalid");
  CHECK_THAT(out.rejected->message, Catch::Contains("1001 members") && Catch::Contains("validate.max_object_keys"));
  message ok(structured(payload("acme", R"(,"metadata":)" + wide_object(1000))));
  CHECK(refused_code(ok, limits) == "accepted");
}

TEST_CASE("hostile: changed_fields over 200,000 keys is computed by sorting, not by lookups", "[hostile][changes]") {
  // With a linear member lookup per key this is 4e10 comparisons (minutes);
  // sorted, it is a few million.
  const size_t n = 200000;
  rapidjson::Document old_doc, new_doc;
  old_doc.Parse(wide_object(n).c_str());
  new_doc.Parse(wide_object(n, 1000).c_str());
  REQUIRE(old_doc.IsObject());
  const auto changed = compute_changed_fields(old_doc, new_doc);
  CHECK(changed.size() == n / 1000);
  CHECK(std::is_sorted(changed.begin(), changed.end()));
  CHECK(std::find(changed.begin(), changed.end(), "k0") != changed.end());
  CHECK(std::find(changed.begin(), changed.end(), "k1") == changed.end());
  // The same keys nested one level down: deep equality is sorted as well.
  rapidjson::Document a, b;
  a.Parse(("{\"x\":" + wide_object(n) + ",\"y\":1}").c_str());
  b.Parse(("{\"x\":" + wide_object(n) + ",\"y\":2}").c_str());
  CHECK(compute_changed_fields(a, b) == std::vector<std::string>{"y"});
  CHECK(json_equal(a["x"], b["x"]));
  CHECK_FALSE(json_equal(a, b));
}

TEST_CASE("hostile: binary-mode headers get the payload's text checks", "[hostile][binary]") {
  auto binary = [](std::vector<std::pair<std::string, std::string>> extra) {
    std::vector<std::pair<std::string, std::string>> h{
        {"ce-specversion", "1.0"}, {"ce-id", "b-1"}, {"ce-source", "//svc"}, {"ce-type", "t"}, {"Content-Type", "application/json"}};
    for (auto& e : extra) h.push_back(std::move(e));
    return h;
  };
  message broken_utf8(payload(), binary({{"ce-subject", "caf%C3%28"}}));
  auto out = decode(broken_utf8);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "unstorable_value");
  CHECK_THAT(out.rejected->message, Catch::Contains("ce-subject") && Catch::Contains("UTF-8"));
  message nul(payload(), binary({{"ce-traceparent", "a%00b"}}));
  CHECK(refused_code(nul) == "unstorable_value");
  message surrogate(payload(), binary({{"ce-subject", "%ED%A0%80"}}));
  CHECK(refused_code(surrogate) == "unstorable_value");
  // One attribute in two headers: which one counts would be ambiguous.
  message twice(payload(), binary({{"CE-ID", "b-2"}}));
  out = decode(twice);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "envelope_invalid");
  CHECK_THAT(out.rejected->message, Catch::Contains("'id'"));
  message fine(payload(), binary({{"ce-subject", "caf%C3%A9"}}));
  CHECK(refused_code(fine) == "accepted");
}

TEST_CASE("hostile: id and source are bounded so that the identity fits its unique index", "[hostile][decoder]") {
  message long_id(structured(payload(), "\"id\":\"" + std::string(kMaxCeIdBytes + 1, 'i') + "\",\"source\":\"//s\""));
  auto out = decode(long_id);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "envelope_invalid");
  CHECK_THAT(out.rejected->message, Catch::Contains("'id'") && Catch::Contains("longer than 256"));
  message long_source(structured(payload(), "\"id\":\"x\",\"source\":\"//" + std::string(kMaxCeSourceBytes, 's') + "\""));
  CHECK(refused_code(long_source) == "envelope_invalid");
  message at_limit(structured(payload(), "\"id\":\"" + std::string(kMaxCeIdBytes, 'i') + "\",\"source\":\"//s\""));
  CHECK(refused_code(at_limit) == "accepted");
}

TEST_CASE("hostile: a tenant id is one subject token (no '.')", "[hostile][decoder]") {
  for (const char* t : {"acme.eu", "a..b", ".a", "a.", "a.>", "a b", "a*"}) {
    INFO(t);
    message m(structured(payload(t)));
    auto out = decode(m);
    REQUIRE(out.rejected);
    CHECK(std::string(trail::to_string(out.rejected->code)) == "payload_invalid");
    CHECK_THAT(out.rejected->message, Catch::Contains("tenant_id"));
  }
  message ok(structured(payload("acme_eu:prod-1")));
  CHECK(refused_code(ok) == "accepted");
}

TEST_CASE("hostile: sizes count headers as well as the body", "[hostile][size]") {
  // A tiny body under 300 KiB of headers is over the 256 KiB event limit.
  message heavy(payload(), {{"X-Padding", std::string(300 * 1024, 'p')}});
  auto out = decode(heavy);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "too_large");
  CHECK_THAT(out.rejected->message, Catch::Contains("headers + body"));
  // The size is the wire size of the block the dead-letter store keeps.
  const std::vector<std::pair<std::string, std::string>> h{{"A", "1"}, {"A", "2"}, {"Content-Type", "x"}};
  CHECK(header_wire_size(h) == header_wire_text(h).size());
  CHECK(header_wire_text(h) == "NATS/1.0\r\nA: 1\r\nA: 2\r\nContent-Type: x\r\n\r\n");
  // And the in-flight bound counts them: three copies (raw, parsed, copied).
  CHECK(held_bytes_of(heavy.in) >= 3 * 300 * 1024);
  message light(payload());
  CHECK(held_bytes_of(light.in) < 4096);
}

TEST_CASE("hostile: an event whose committed copy cannot fit the broker is refused before it is stored", "[hostile][size]") {
  decoder_limits limits = testing::default_decoder_limits();
  limits.max_message_bytes = 64 * 1024;  // the broker's max_payload
  // 63.5 KiB of text is under the 256 KiB event limit, but its committed copy
  // (envelope, normalized payload, headers) is over 64 KiB.
  message m(structured(payload("acme", ",\"description\":\"" + std::string(65024, 'd') + "\"")));
  auto out = decode(m, limits);
  REQUIRE(out.rejected);
  CHECK(std::string(trail::to_string(out.rejected->code)) == "too_large");
  CHECK_THAT(out.rejected->message, Catch::Contains("committed copy"));
  // Control characters are written escaped (6 bytes each) in the copy too.
  std::string escaped;
  for (int i = 0; i < 11000; ++i) escaped += "\\u0001";
  message e(structured(payload("acme", ",\"description\":\"" + escaped + "\"")));
  CHECK(refused_code(e, limits) == "too_large");
  message fits(structured(payload("acme", ",\"description\":\"" + std::string(30 * 1024, 'd') + "\"")));
  auto ok = decode(fits, limits);
  REQUIRE_FALSE(ok.rejected);
  // (30 KiB, escaped at worst, could exceed the limit: the exact size decides.)
  std::string copy;
  trail::render_committed_event(ok.events.at(0), trail::padded_sequence(1), "2026-01-01T00:00:00.000000Z", copy);
  CHECK(copy.size() > 30 * 1024);
  CHECK(copy.size() + 200 <= limits.max_message_bytes);
}

TEST_CASE("hostile: text logs escape control characters, so a field cannot forge a line", "[hostile][log]") {
  std::string out;
  log::append_escaped(out, "ok\nlevel=error msg=\"forged\"\r\t\x1b[31m\\");
  CHECK(out == "ok\\nlevel=error msg=\"forged\"\\r\\t\\x1b[31m\\\\");
  std::vector<std::string> lines;
  log::set_sink_for_tests([&](const std::string& l) { lines.push_back(l); });
  log::configure(false, log::level::info);
  log::info("test", "refused", {{"ce_id", "x\ny 2026-01-01 error [writer] forged"}});
  log::configure(true, log::level::info);
  log::set_sink_for_tests(nullptr);
  REQUIRE(lines.size() == 1);
  CHECK(std::count(lines[0].begin(), lines[0].end(), '\n') == 1);  // only the terminator
  CHECK_THAT(lines[0], Catch::Contains("ce_id=x\\ny 2026"));
}

TEST_CASE("hostile: secrets are masked in every URL of a list and in token form", "[hostile][config]") {
  CHECK(mask_secret("nats://a:pw1@n1:4222,nats://b:pw2@n2:4222") == "nats://a:****@n1:4222,nats://b:****@n2:4222");
  CHECK(mask_secret("nats://s3cr3tT0ken@n1:4222") == "nats://****@n1:4222");
  CHECK(mask_secret("nats://n1:4222,tls://t0ken@n2:4222") == "nats://n1:4222,tls://****@n2:4222");
  CHECK(mask_secret("postgresql://trail@db/trail") == "postgresql://trail@db/trail");  // a user name alone is no secret
  CHECK(mask_secret("postgresql://trail:pw@db/trail?sslmode=require") == "postgresql://trail:****@db/trail?sslmode=require");
  auto c = load_config("", {{"TRAIL_NATS_URL", "nats://u:p@h1:1,nats://tok@h2:2"}});
  for (const auto& [k, v] : describe(c))
    if (k == "nats.url") CHECK(v == "nats://u:****@h1:1,nats://****@h2:2");
}

TEST_CASE("hostile: the top-N tenant counters stay bounded under a flood of tenant ids", "[hostile][metrics]") {
  prometheus::Registry r;
  auto& family = prometheus::BuildGauge().Name("t").Help("t").Register(r);
  top_tenants top(family, 3, 1000);
  top.add("busy", 1000000);
  top.publish();
  for (int i = 0; i < 100000; ++i) top.add("random-" + std::to_string(i), 1);
  CHECK(top.tracked() <= 1000);
  top.publish();
  auto families = r.Collect();
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, families);
  CHECK_THAT(os.str(), Catch::Contains("tenant=\"busy\"} 1000000"));  // the busy one is never forgotten
}

TEST_CASE("hostile: counters with a known label set exist at 0 before the first occurrence", "[hostile][metrics]") {
  dead_letter_metrics::get();
  writer_metrics::get();
  auto families = metrics::registry()->Collect();
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, families);
  const std::string text = os.str();
  for (const auto& reason : dead_letter_metrics::reasons())
    CHECK_THAT(text, Catch::Contains("trail_events_dead_lettered_total{reason=\"" + reason + "\"}"));
  for (const auto& cls : writer_metrics::db_error_classes())
    CHECK_THAT(text, Catch::Contains("trail_db_errors_total{class=\"" + cls + "\"}"));
}
