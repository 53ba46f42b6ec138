// Poison input and unusual deployments against a real traild, nats-server and
// PostgreSQL (docs/RELIABILITY.md, "Hostile input"). Each case states what a
// hostile publisher or operator does and proves that nothing stalls, grows
// without bound, is lost, stored twice or forged.
#include <catch2/catch.hpp>
#include <openssl/evp.h>
#include <rapidjson/document.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "sinks/event_rows.h"
#include "tests/integration/harness.h"
#include "tests/integration/workload.h"

using namespace trail::test;
using namespace std::chrono_literals;

namespace {

std::string event(const std::string& id, const std::string& tenant, const std::string& extra_attrs = "",
                  const std::string& extra_data = "") {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"//it/hostile","type":"t",)" + extra_attrs +
         R"("data":{"tenant_id":")" + tenant + R"(","action":"a","actor":{"type":"user","id":"u"},)"
         R"("primary_resource":{"type":"r","id":"1"})" + extra_data + "}}";
}

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

size_t count_header(const broker::stored& m, const std::string& name, const std::string& value = "") {
  size_t n = 0;
  for (const auto& [k, v] : m.all_headers) n += k == name && (value.empty() || v == value);
  return n;
}

jsStreamConfig* stream_config(broker& b, const std::string& name, jsStreamInfo*& holder) {
  holder = nullptr;
  REQUIRE(js_GetStreamInfo(&holder, b.js(), name.c_str(), nullptr, nullptr) == NATS_OK);
  return holder->Config;
}

}  // namespace

TEST_CASE("hostile: a dead letter too large for the broker is kept in PostgreSQL, later ones are not held up",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_oversized_dlq");
  // Within a few hundred bytes of max_payload (1 MiB): fits as published,
  // not with Trail's Trail-Dlq-* headers added.
  std::string huge = "{\"padding\":\"" + std::string(1024 * 1024 - 300, 'p') + "\"}";
  b.publish("audit.events", huge);
  // A valid binary-mode event whose committed copy would not fit: control
  // characters percent-encoded in five ce- headers (3 bytes each) come out
  // JSON-escaped in the committed event (6 bytes each), ~15 KB more than
  // what was published.
  std::string controls;
  for (int i = 0; i < 1000; ++i) controls += "%01";
  const std::string big_valid = R"({"tenant_id":"t1","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"r","id":"1"},)"
                                R"("description":")" + std::string(1024 * 1024 - 16500, 'd') + "\"}";
  b.publish("audit.events", big_valid,
            {{"ce-specversion", "1.0"}, {"ce-id", "too-big"}, {"ce-source", "//it"}, {"ce-type", "t"},
             {"ce-subject", controls}, {"ce-note1", controls}, {"ce-note2", controls}, {"ce-note3", controls},
             {"ce-note4", controls}, {"Content-Type", "application/json"}});
  b.wait_published();
  REQUIRE(b.stream_messages("AUDIT") == 2);  // both fit as published
  std::set<std::string> small_invalid;
  for (int i = 0; i < 5; ++i) {
    small_invalid.insert("not json " + std::to_string(i));
    b.publish("audit.events", "not json " + std::to_string(i));
  }
  for (int i = 0; i < 100; ++i) b.publish("audit.events", event("ok-" + std::to_string(i), "t1"));
  b.wait_published();

  traild_process t(dsn, {{"TRAIL_VALIDATE_MAX_EVENT_BYTES", "2097152"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, 7, 60000));
  CHECK(t.stop() == 0);

  db d(dsn);
  CHECK(d.count("SELECT count(*) FROM audit.events") == 100);
  // The dead letter that cannot travel is in the table, byte for byte, and
  // the broker holds a reference to it.
  auto rows = d.query("SELECT id, reason, encode(sha256(body), 'hex'), length(headers) FROM audit.dead_letters");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0][1] == "payload_invalid");  // a bare object without a tenant, under the raised size limit
  CHECK(rows[0][2] == sha256_hex(huge));
  CHECK(rows[0][3] == "0");  // it was published without headers
  auto dlq = b.read_stream("AUDIT_DLQ", 7);
  REQUIRE(dlq.size() == 7);
  std::set<std::string> references, bodies;
  bool big_refused = false;
  for (auto& m : dlq) {
    if (m.headers.count("Trail-Dlq-Stored")) {
      references.insert(m.headers["Trail-Dlq-Stored"]);
      CHECK(m.data.empty());
    } else if (m.data == big_valid) {
      // Its own dead letter fits the broker: it is there with its headers.
      big_refused = m.headers["Trail-Dlq-Reason"] == "too_large" &&
                    m.headers["Trail-Dlq-Message"].find("committed copy") != std::string::npos &&
                    m.headers["ce-note4"] == controls;
    } else {
      bodies.insert(m.data);
    }
  }
  CHECK(big_refused);
  CHECK(references == std::set<std::string>{"audit.dead_letters/" + rows[0][0]});
  CHECK(bodies == small_invalid);
}

TEST_CASE("hostile: an event re-sent with another time, or none, is stored and republished once",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_resend");
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  db d(dsn);
  // No `time`: the broker's receive time is the occurred_at, different for each copy.
  b.publish("audit.events", event("resent-1", "t1"));
  b.wait_published();
  REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.events") == 1; }, 30000));
  std::this_thread::sleep_for(50ms);
  b.publish("audit.events", event("resent-1", "t1"));
  b.publish("audit.events", event("resent-1", "t1", R"("time":"2026-01-02T03:04:05Z",)"));
  b.publish("audit.events", event("resent-1", "t1", R"("time":"2026-01-03T03:04:05Z",)", R"(,"description":"altered")"));
  b.publish("audit.events", event("other", "t1"));
  b.wait_published();
  REQUIRE(wait_drained(b, 0, 30000));
  CHECK(t.stop() == 0);
  CHECK(d.count("SELECT count(*) FROM audit.events") == 2);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'resent-1' AND description IS NULL") == 1);
  CHECK(d.count("SELECT count(*) FROM audit.event_ids") == 2);
  // Downstream sees each event once, and the stored version of it.
  auto committed = b.read_stream("AUDIT_COMMITTED", 2, 10000);
  CHECK(committed.size() == 2);
  for (auto& m : committed) CHECK(m.data.find("altered") == std::string::npos);
}

TEST_CASE("hostile: a missing head row stops the writer loudly instead of repeating sequences",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_lost_head");
  db d(dsn);
  {
    traild_process t(dsn);
    t.start();
    for (int i = 0; i < 10; ++i) b.publish("audit.events", event("first-" + std::to_string(i), "t1"));
    b.wait_published();
    REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.events") == 10; }, 30000));
    CHECK(t.stop() == 0);
  }
  // A restore, a failover to a lagging standby or a stray DELETE loses the head.
  d.query("DELETE FROM audit.tenant_heads WHERE tenant_id = 't1'");
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  for (int i = 0; i < 5; ++i) b.publish("audit.events", event("second-" + std::to_string(i), "t1"));
  b.publish("audit.events", event("other-tenant", "t2"));
  b.wait_published();
  // Not written (sequences 1..5 would repeat), not ready, and said so.
  CHECK(wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 503; }, 20000));
  CHECK(wait_until([&] { return file_text(t.log_path()).find("no row in audit.tenant_heads") != std::string::npos; }, 20000));
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE tenant_id = 't1'") == 10);
  CHECK(t.metric("trail_db_errors_total{class=\"ledger_invariant\"}") != 0);
  // The documented repair (docs/RELIABILITY.md): rebuild the head from the table.
  d.query("INSERT INTO audit.tenant_heads (tenant_id, last_sequence) SELECT tenant_id, max(sequence) FROM audit.events "
          "WHERE tenant_id = 't1' GROUP BY tenant_id");
  REQUIRE(wait_drained(b, 0, 30000));
  CHECK(wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 200; }, 10000));
  CHECK(t.stop() == 0);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE tenant_id = 't1'") == 15);
  CHECK(d.count("SELECT count(DISTINCT sequence) FROM audit.events WHERE tenant_id = 't1'") == 15);
  CHECK(d.scalar("SELECT max(sequence) FROM audit.events WHERE tenant_id = 't1'") == "15");
}

TEST_CASE("hostile: starting Trail never weakens an operator's streams, and an unusable one stops it",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_streams");
  {
    // The operator's settings on AUDIT, and an AUDIT_COMMITTED made by hand.
    jsStreamInfo* si = nullptr;
    jsStreamConfig cfg = *stream_config(b, "AUDIT", si);
    cfg.MaxMsgs = 1000000;
    cfg.MaxAge = 3LL * 86400 * 1000000000LL;
    cfg.Description = "kept by ops";
    REQUIRE(js_UpdateStream(nullptr, b.js(), &cfg, nullptr, nullptr) == NATS_OK);
    jsStreamInfo_Destroy(si);
    const char* subjects[] = {"audit.committed.>"};
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    c.Name = "AUDIT_COMMITTED";
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    c.MaxAge = 86400LL * 1000000000LL;
    c.MaxMsgsPerSubject = 500000;
    c.Duplicates = 600LL * 1000000000LL;
    REQUIRE(js_AddStream(nullptr, b.js(), &c, nullptr, nullptr) == NATS_OK);
  }
  {
    traild_process t(dsn);
    t.start();
    REQUIRE(wait_until([&] { int s = 0; http_get(t.http_port(), "/readyz", &s); return s == 200; }, 10000));
    CHECK(t.stop() == 0);
  }
  jsStreamInfo* si = nullptr;
  const jsStreamConfig* audit = stream_config(b, "AUDIT", si);
  CHECK(audit->MaxMsgs == 1000000);
  CHECK(audit->MaxAge == 3LL * 86400 * 1000000000LL);
  CHECK(std::string(audit->Description ? audit->Description : "") == "kept by ops");
  jsStreamInfo_Destroy(si);
  const jsStreamConfig* committed = stream_config(b, "AUDIT_COMMITTED", si);
  CHECK(committed->MaxMsgsPerSubject == 500000);
  CHECK(committed->MaxAge == 86400LL * 1000000000LL);
  CHECK(committed->Duplicates == 600LL * 1000000000LL);
  jsStreamInfo_Destroy(si);

  // A dead-letter stream that does not take audit.dlq: refused, nothing changed.
  js_DeleteStream(b.js(), "AUDIT_DLQ", nullptr, nullptr);
  const char* wrong[] = {"elsewhere.dlq"};
  jsStreamConfig c;
  jsStreamConfig_Init(&c);
  c.Name = "AUDIT_DLQ";
  c.Subjects = wrong;
  c.SubjectsLen = 1;
  REQUIRE(js_AddStream(nullptr, b.js(), &c, nullptr, nullptr) == NATS_OK);
  traild_process t(dsn);
  t.start(start_wait::nothing);
  REQUIRE(wait_until([&] { return !t.running(); }, 15000));
  const std::string log = file_text(t.log_path());
  CHECK_THAT(log, Catch::Contains("not usable by Trail") && Catch::Contains("audit.dlq"));
  const jsStreamConfig* dlq = stream_config(b, "AUDIT_DLQ", si);
  REQUIRE(dlq->SubjectsLen == 1);
  CHECK(std::string(dlq->Subjects[0]) == "elsewhere.dlq");
  jsStreamInfo_Destroy(si);
  js_DeleteStream(b.js(), "AUDIT_DLQ", nullptr, nullptr);

  // An AUDIT stream narrower than Trail's own (audit.events only) is used as
  // it is, with a warning about audit.events.>.
  js_DeleteStream(b.js(), "AUDIT", nullptr, nullptr);
  const char* narrow[] = {"audit.events"};
  jsStreamConfig_Init(&c);
  c.Name = "AUDIT";
  c.Subjects = narrow;
  c.SubjectsLen = 1;
  REQUIRE(js_AddStream(nullptr, b.js(), &c, nullptr, nullptr) == NATS_OK);
  traild_process t2(dsn);
  t2.start();
  CHECK(wait_until([&] { int s = 0; http_get(t2.http_port(), "/readyz", &s); return s == 200; }, 10000));
  CHECK(t2.stop() == 0);
  CHECK_THAT(file_text(t2.log_path()), Catch::Contains("does not capture every subject") && Catch::Contains("audit.events.>"));
  const jsStreamConfig* audit_after = stream_config(b, "AUDIT", si);
  CHECK(audit_after->SubjectsLen == 1);
  jsStreamInfo_Destroy(si);
}

TEST_CASE("hostile: dead letters cannot be deduplicated away or forged, and keep every header value",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_forged_dlq");
  // AUDIT_DLQ as Trail creates it, then pre-empted by someone who may publish
  // to audit.dlq: Trail's former, predictable ids and a chosen one.
  {
    traild_process t(dsn);
    t.start();
    CHECK(t.stop() == 0);
  }
  for (int seq = 1; seq <= 10; ++seq)
    b.publish("audit.dlq", "forged", {{"Nats-Msg-Id", "trail-dlq-AUDIT-" + std::to_string(seq)}});
  b.publish("audit.dlq", "forged", {{"Nats-Msg-Id", "chosen-id"}});
  b.wait_published();
  const uint64_t forged = b.stream_messages("AUDIT_DLQ");
  REQUIRE(forged == 11);
  std::set<std::string> bodies;
  for (int i = 0; i < 4; ++i) bodies.insert("invalid " + std::to_string(i));
  b.publish("audit.events", "invalid 0", {{"Nats-Msg-Id", "chosen-id"}});
  b.publish("audit.events", "invalid 1", {{"X-Multi", "a"}, {"X-Multi", "b"}, {"X-Multi", "c"}});
  b.publish("audit.events", "invalid 2", {{"Trail-Dlq-Reason", "database_rejected"}});
  b.publish("audit.events", "invalid 3");
  b.wait_published();
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, forged + 4, 30000));
  CHECK(t.stop() == 0);
  auto all = b.read_stream("AUDIT_DLQ", forged + 4);
  REQUIRE(all.size() == forged + 4);
  std::set<std::string> got;
  for (auto& m : all) {
    if (m.data == "forged") continue;
    got.insert(m.data);
    // Trail's verdict is the only Trail-Dlq-Reason; a publisher's travels renamed.
    CHECK(count_header(m, "Trail-Dlq-Reason") == 1);
    CHECK(m.headers["Trail-Dlq-Reason"] == "malformed_json");
    const std::string id = m.headers["Nats-Msg-Id"];
    CHECK(id.rfind("trail-dlq-AUDIT-", 0) == 0);
    CHECK(id.size() > std::string("trail-dlq-AUDIT-1-").size() + 16);
    if (m.data == "invalid 0") CHECK(count_header(m, "Trail-Original-Nats-Msg-Id", "chosen-id") == 1);
    if (m.data == "invalid 1") {
      CHECK(count_header(m, "X-Multi") == 3);
      CHECK(count_header(m, "X-Multi", "b") == 1);
    }
    if (m.data == "invalid 2") CHECK(count_header(m, "Trail-Original-Trail-Dlq-Reason", "database_rejected") == 1);
  }
  CHECK(got == bodies);
}

namespace {

// Fetches every waiting message of the durable consumer once and naks it,
// as a crashed or stopped consumer would leave them: delivered once more.
void deliver_and_nak(broker& b, int expected) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "AUDIT";
  so.Consumer = "trail-ingest";
  natsSubscription* sub = nullptr;
  REQUIRE(js_PullSubscribe(&sub, b.js(), "audit.events", "trail-ingest", nullptr, &so, nullptr) == NATS_OK);
  natsMsgList list{nullptr, 0};
  REQUIRE(natsSubscription_Fetch(&list, sub, expected, 5000, nullptr) == NATS_OK);
  REQUIRE(list.Count == expected);
  for (int i = 0; i < list.Count; ++i) natsMsg_Nak(list.Msgs[i], nullptr);
  natsMsgList_Destroy(&list);
  natsSubscription_Destroy(sub);
}

}  // namespace

TEST_CASE("hostile: the last delivery is tried, and one nak'ed at shutdown is dead-lettered, not lost",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_max_deliver");
  db d(dsn);
  // The durable consumer as an earlier deployment left it (the broker gives
  // up after 2 deliveries), and an event delivered once already and nak'ed.
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = "trail-ingest";
  cc.AckPolicy = js_AckExplicit;
  cc.MaxDeliver = 2;
  cc.AckWait = 30LL * 1000000000LL;
  REQUIRE(js_AddConsumer(nullptr, b.js(), "AUDIT", &cc, nullptr, nullptr) == NATS_OK);
  b.publish("audit.events", event("last-try", "t1"));
  b.wait_published();
  deliver_and_nak(b, 1);
  {
    // Its second delivery is the last under nats.max_deliver = 2: it is tried, and stored.
    traild_process t(dsn, {{"TRAIL_NATS_MAX_DELIVER", "2"}});
    t.start();
    INFO("traild log: " << t.log_path());
    REQUIRE(wait_drained(b, 0, 30000));
    CHECK(t.stop() == 0);
  }
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'last-try'") == 1);
  CHECK(b.stream_messages("AUDIT_DLQ") == 0);

  // Another event on its last delivery, whose commit is held past a short
  // shutdown deadline: traild hands it back (nak) at SIGTERM.
  b.publish("audit.events", event("nak-at-shutdown", "t1"));
  b.wait_published();
  deliver_and_nak(b, 1);
  {
    traild_process t(dsn, {{"TRAIL_NATS_MAX_DELIVER", "2"}, {"TRAIL_SHUTDOWN_DEADLINE_S", "3"},
                           {"TRAIL_FAILPOINTS", "commit_delay_ms=8000"}});
    t.start();
    INFO("traild log: " << t.log_path());
    REQUIRE(wait_until([&] { const auto backlog = b.backlog_now("AUDIT", "trail-ingest"); return backlog && backlog->first == 0 && backlog->second == 1; }, 30000));
    std::this_thread::sleep_for(1s);  // in its (delayed) transaction now
    t.stop();
  }
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'nak-at-shutdown'") == 0);
  // Its third delivery: past nats.max_deliver, so dead-lettered; never dropped.
  traild_process t(dsn, {{"TRAIL_NATS_MAX_DELIVER", "2"}});
  t.start();
  INFO("traild log: " << t.log_path());
  REQUIRE(wait_drained(b, 1, 30000));
  CHECK(t.stop() == 0);
  auto dlq = b.read_stream("AUDIT_DLQ", 1);
  REQUIRE(dlq.size() == 1);
  CHECK(dlq[0].headers["Trail-Dlq-Reason"] == "max_deliver_exceeded");
  CHECK(dlq[0].data.find("nak-at-shutdown") != std::string::npos);
  CHECK(d.count("SELECT count(*) FROM audit.events") == 1);
}

TEST_CASE("hostile: an identity digest held by another event refuses the newcomer, never takes it for a duplicate",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_digest");
  db d(dsn);
  // traild and PostgreSQL compute the same digest (non-ASCII included).
  CHECK(d.scalar("SELECT replace(audit.identity_digest('//Z\xc3\xbcrich/\xc3\x9f', 'id-\xc3\xa9')::text, '-', '')") ==
        trail::digest_hex(trail::identity_digest("//Z\xc3\xbcrich/\xc3\x9f", "id-\xc3\xa9")));
  // A SHA-256 collision cannot be made on purpose; plant one: a stored
  // identity row of another event that holds the digest "victim" will have.
  const std::string digest = trail::digest_hex(trail::identity_digest("//it/hostile", "victim"));
  d.query("INSERT INTO audit.tenant_heads (tenant_id, last_sequence) VALUES ('t1', 1)");
  d.query("INSERT INTO audit.event_ids (tenant_id, id_digest, ce_source, ce_id, sequence, occurred_at) "
          "VALUES ('t1', '" + digest + "', '//elsewhere', 'other-id', 1, now())");
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  b.publish("audit.events", event("victim", "t1"));
  b.publish("audit.events", event("bystander", "t1"));
  b.wait_published();
  REQUIRE(wait_drained(b, 0, 30000));
  CHECK(t.stop() == 0);
  // The bystander is stored; the victim is dead-lettered with the reason, not dropped as a duplicate.
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'bystander'") == 1);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ce_id = 'victim'") == 0);
  auto dlq = b.read_stream("AUDIT_DLQ", 1, 10000);
  REQUIRE(dlq.size() == 1);
  CHECK(dlq[0].headers["Trail-Dlq-Reason"] == "database_rejected");
  CHECK(dlq[0].headers["Trail-Dlq-Message"].find("identity digest " + digest) != std::string::npos);
  CHECK(dlq[0].data.find("\"victim\"") != std::string::npos);
  CHECK(file_text(t.log_path()).find("already held by a different event") != std::string::npos);
}

TEST_CASE("hostile: a flood of tenant ids is bounded in writer memory, and all of it is stored",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_tenant_flood");
  // A setting of former releases is accepted and reported, not fatal.
  traild_process t(dsn, {{"TRAIL_BATCH_MAX_TENANT_BATCHERS", "50"}, {"TRAIL_PG_KNOWN_TENANTS_MAX", "300"}});
  t.start();
  INFO("traild log: " << t.log_path());
  const int kTenants = 3000;
  double peak_known = 0, peak_pending = 0;
  // Asked to stop and joined on every exit, a failed assertion too.
  std::jthread sampler([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      peak_known = std::max(peak_known, t.metric("trail_writer_known_tenants{writer=\"0\"}"));
      peak_pending = std::max(peak_pending, t.metric("trail_batcher_pending_events"));
      std::this_thread::sleep_for(20ms);
    }
  });
  for (int i = 0; i < kTenants; ++i) b.publish("audit.events", event("flood-" + std::to_string(i), "random-" + std::to_string(i)));
  b.wait_published();
  REQUIRE(wait_drained(b, 0, 60000));
  sampler.request_stop();
  sampler.join();
  // Batchers are one per writer whatever the number of tenants: no per-tenant
  // actor or map outlives a transaction; the writers' tenant caches are capped.
  CHECK(peak_known > 0);
  CHECK(peak_known <= 300);
  CHECK(peak_pending <= 20000);  // never more than the in-flight bound
  CHECK(t.metric("trail_batcher_pending_events") == 0);
  CHECK(t.stop() == 0);
  CHECK(file_text(t.log_path()).find("TRAIL_BATCH_MAX_TENANT_BATCHERS is no longer used") != std::string::npos);
  db d(dsn);
  CHECK(d.count("SELECT count(*) FROM audit.events") == kTenants);
  CHECK(d.count("SELECT count(*) FROM audit.tenant_heads WHERE last_sequence = 1") == kTenants);
}

TEST_CASE("hostile: headers count against the in-flight bound, so huge headers cannot grow memory",
          "[integration][hostile]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_header_bloat");
  // 4,000 messages of 60 KiB of headers (JetStream takes at most 64 KiB)
  // around a `{}` body: 240 MB that the byte bound (64 MiB) must see, not
  // 4,000 x 2 bytes.
  const int kMessages = 4000;
  const std::string padding(60 * 1024, 'h');
  for (int i = 0; i < kMessages; ++i) b.publish("audit.events", "{}", {{"X-Padding", padding}, {"X-N", std::to_string(i)}});
  b.wait_published();
  REQUIRE(b.stream_messages("AUDIT") == static_cast<uint64_t>(kMessages));
  traild_process t(dsn);
  t.start();
  INFO("traild log: " << t.log_path());
  double peak_inflight = 0;
  REQUIRE(wait_until([&] {
    peak_inflight = std::max(peak_inflight, t.metric("trail_inflight_bytes"));
    const auto backlog = b.backlog_now("AUDIT", "trail-ingest");
    return backlog && backlog->first == 0 && backlog->second == 0 &&
           b.stream_messages("AUDIT_DLQ") >= static_cast<uint64_t>(kMessages);
  }, 180000));
  const int64_t peak = t.peak_rss_bytes();
  INFO("peak RSS " << peak / (1024 * 1024) << " MiB, peak in-flight bytes " << peak_inflight);
  CHECK(peak > 0);
  CHECK(peak < 300LL * 1024 * 1024);
  CHECK(peak_inflight > 10.0 * 1024 * 1024);  // the headers were counted
  CHECK(t.stop() == 0);
  auto dlq = b.read_stream("AUDIT_DLQ", kMessages, 60000);
  CHECK(dlq.size() == static_cast<size_t>(kMessages));
  for (auto& m : dlq) CHECK(m.headers["Trail-Dlq-Reason"] == "payload_invalid");
}
