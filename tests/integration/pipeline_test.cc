// The core pipeline against real nats-server and PostgreSQL: 100,000 events
// across 200 tenants, structured, binary, batch and bare modes mixed, plus
// about 1% invalid messages of several kinds.
#include <catch2/catch.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

struct workload {
  std::unordered_set<std::string> valid_request_ids;  // one per valid event
  std::set<std::string> invalid_bodies;               // exact bytes of each invalid message
  std::set<std::string> invalid_kinds;
  size_t valid_events = 0;
  size_t messages = 0;
};

std::string payload(int n, const std::string& tenant, bool tenant_inside, std::mt19937& rng) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  if (tenant_inside) {
    w.Key("tenant_id");
    w.String(tenant.c_str());
  }
  w.Key("action");
  w.String(n % 3 == 0 ? "user.role.updated" : "document.viewed");
  w.Key("severity");
  w.String(n % 5 == 0 ? "SEVERITY_NOTICE" : "info");
  w.Key("actor");
  w.StartObject();
  w.Key("type");
  w.String(n % 4 == 0 ? "service" : "ACTOR_TYPE_USER");
  w.Key("id");
  w.String(("u-" + std::to_string(rng() % 500)).c_str());
  w.Key("ip");
  w.String(n % 2 ? "192.0.2.7" : "2001:db8::7");
  w.EndObject();
  w.Key("primary_resource");
  w.StartObject();
  w.Key("type");
  w.String("document");
  w.Key("id");
  w.String(("doc-" + std::to_string(rng() % 1000)).c_str());
  w.EndObject();
  if (n % 3 == 0) {
    w.Key("changes");
    w.StartObject();
    w.Key("old_value");
    w.StartObject();
    w.Key("role");
    w.String("viewer");
    w.EndObject();
    w.Key("new_value");
    w.StartObject();
    w.Key("role");
    w.String("admin");
    w.EndObject();
    w.EndObject();
  }
  w.Key("description");
  w.String("Zoë changed a \"role\"\twith tabs\nand lines \\ backslashes");
  w.Key("request_id");
  w.String(("req-" + std::to_string(n)).c_str());
  w.Key("metadata");
  w.StartObject();
  w.Key("n");
  w.Int(n);
  w.EndObject();
  w.EndObject();
  return sb.GetString();
}

std::string structured(int n, const std::string& tenant, std::mt19937& rng) {
  return R"({"specversion":"1.0","id":"ev-)" + std::to_string(n) + R"(","source":"//it/service","type":"com.example.audit",)"
         R"("time":"2026-11-2)" + std::to_string(n % 3) + R"(T10:00:00.)" + std::to_string(100000 + n % 900000) +
         R"(Z","data":)" + payload(n, tenant, true, rng) + "}";
}

workload publish_workload(broker& b, size_t target_events) {
  std::mt19937 rng(20261122);
  workload w;
  int n = 0;
  auto tenant = [&] { return "tenant-" + std::to_string(rng() % 200); };
  auto invalid = [&](int j) {
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    const std::string tag = std::to_string(j);
    switch (j % 7) {
      case 0: body = "{\"specversion\":\"1.0\", broken " + tag; w.invalid_kinds.insert("malformed_json"); break;
      case 1:
        body = R"({"specversion":"1.0","id":"bad-)" + tag + R"(","source":"s","type":"t","data":{"action":"a"}})";
        w.invalid_kinds.insert("payload_invalid");
        break;
      case 2:
        body = R"({"specversion":"0.9","id":"bad-)" + tag + R"(","source":"s","type":"t","data":{}})";
        w.invalid_kinds.insert("envelope_invalid");
        break;
      case 3:
        body = structured(1000000 + j, "tenant-1", rng);
        body.replace(body.find("\"metadata\":{"), 12, "\"metadata\":{\"bad\":\"x\\u0000y\",");
        w.invalid_kinds.insert("unstorable_value");
        break;
      case 4:
        body = R"({"tenant_id":"t","action":"a","actor":{"type":"user","id":"u"},"primary_resource":{"type":"t","id":"i"},"description":")" +
               std::string(300 * 1024, 'x') + tag + "\"}";
        w.invalid_kinds.insert("too_large");
        break;
      case 5:
        body = "[" + structured(2000000 + j, "tenant-2", rng) + R"(,{"specversion":"1.0","id":"x","source":"s"}])";
        headers = {{"Content-Type", "application/cloudevents-batch+json"}};
        w.invalid_kinds.insert("batch_invalid");
        break;
      case 6:
        body = payload(3000000 + j, "tenant-3", true, rng);
        headers = {{"ce-specversion", "1.0"}, {"ce-id", "bin-bad-" + tag}, {"ce-source", "s"}, {"ce-type", "t"}, {"ce-time", "lunchtime"}};
        w.invalid_kinds.insert("envelope_invalid");
        break;
    }
    w.invalid_bodies.insert(body);
    b.publish("audit.events", body, headers);
    ++w.messages;
  };
  int invalid_count = 0;
  while (w.valid_events < target_events) {
    const int kind = static_cast<int>(w.messages % 8);
    if (w.messages % 67 == 66) {  // about 1% of the event count
      invalid(invalid_count++);
      continue;
    }
    if (kind == 6) {  // batch of up to 5
      const size_t k = std::min<size_t>(5, target_events - w.valid_events);
      std::string body = "[";
      for (size_t i = 0; i < k; ++i) {
        if (i) body += ",";
        body += structured(n, tenant(), rng);
        w.valid_request_ids.insert("req-" + std::to_string(n++));
      }
      body += "]";
      b.publish("audit.events", body, {{"Content-Type", "application/cloudevents-batch+json"}});
      w.valid_events += k;
    } else if (kind == 3 || kind == 4) {  // binary, tenant in the extension header
      const std::string t = tenant();
      b.publish("audit.events.binary", payload(n, t, false, rng),
                {{"ce-specversion", "1.0"}, {"ce-id", "ev-" + std::to_string(n)}, {"ce-source", "%2F%2Fit%2Fbinary"},
                 {"ce-type", "com.example.audit"}, {"ce-tenantid", t}, {"Content-Type", "application/json"}});
      w.valid_request_ids.insert("req-" + std::to_string(n++));
      ++w.valid_events;
    } else if (kind == 5) {  // bare
      b.publish("audit.events", payload(n, tenant(), true, rng));
      w.valid_request_ids.insert("req-" + std::to_string(n++));
      ++w.valid_events;
    } else {
      b.publish("audit.events", structured(n, tenant(), rng), {{"Content-Type", "application/cloudevents+json"}});
      w.valid_request_ids.insert("req-" + std::to_string(n++));
      ++w.valid_events;
    }
    ++w.messages;
  }
  b.wait_published();
  return w;
}

}  // namespace

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
  db d(dsn);
  const bool drained = wait_until(
      [&] {
        auto [pending, ack_pending] = b.consumer_backlog("AUDIT", "trail-ingest");
        return pending == 0 && ack_pending == 0 && b.stream_messages("AUDIT_DLQ") >= w.invalid_bodies.size();
      },
      180000);
  INFO("traild log: " << traild.log_path());
  REQUIRE(drained);
  CHECK(traild.stop() == 0);

  // The table holds every valid event exactly once.
  CHECK(d.count("SELECT count(*) FROM audit.events") == static_cast<int64_t>(kEvents));
  CHECK(d.count("SELECT count(DISTINCT (tenant_id, ce_source, ce_id)) FROM audit.events") == static_cast<int64_t>(kEvents));
  std::unordered_set<std::string> stored;
  for (auto& row : d.query("SELECT request_id FROM audit.events")) stored.insert(row[0]);
  CHECK(stored == w.valid_request_ids);
  CHECK(d.count("SELECT count(DISTINCT tenant_id) FROM audit.events") == 200);
  // Per-tenant sequences are 1..n without gaps or repeats, and match the heads.
  CHECK(d.count("SELECT count(*) FROM (SELECT tenant_id FROM audit.events GROUP BY tenant_id "
                "HAVING min(sequence) <> 1 OR max(sequence) <> count(*) OR count(DISTINCT sequence) <> count(*)) bad") == 0);
  CHECK(d.count("SELECT count(*) FROM audit.tenant_heads h WHERE last_sequence <> "
                "(SELECT max(sequence) FROM audit.events e WHERE e.tenant_id = h.tenant_id)") == 0);
  // Every mode made it; computed changed_fields; the binary source was percent-decoded.
  for (const char* mode : {"structured", "binary", "batch", "bare"})
    CHECK(d.count(std::string("SELECT count(*) FROM audit.events WHERE ingest_mode = '") + mode + "'") > 1000);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE action = 'user.role.updated' AND changes->'changed_fields' <> '[\"role\"]'::jsonb") == 0);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE ingest_mode = 'binary' AND ce_source <> '//it/binary'") == 0);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE description <> E'Zo\\u00eb changed a \"role\"\\twith tabs\\nand lines \\\\ backslashes'") == 0);

  // The dead-letter stream holds exactly the invalid messages, bytes intact, each with its reason.
  auto dlq = b.read_stream("AUDIT_DLQ", w.invalid_bodies.size());
  CHECK(dlq.size() == w.invalid_bodies.size());
  std::set<std::string> dlq_bodies, reasons;
  for (auto& m : dlq) {
    dlq_bodies.insert(m.data);
    reasons.insert(m.headers["Trail-Dlq-Reason"]);
    CHECK_FALSE(m.headers["Trail-Dlq-Message"].empty());
  }
  CHECK(dlq_bodies == w.invalid_bodies);
  CHECK(reasons == w.invalid_kinds);

  // audit.committed.> delivered every committed event exactly once, in sequence per tenant.
  auto committed = b.read_stream("AUDIT_COMMITTED", kEvents, 60000);
  CHECK(committed.size() == kEvents);
  std::unordered_set<std::string> republished;
  std::unordered_map<std::string, std::set<int64_t>> seqs;
  for (auto& m : committed) {
    rapidjson::Document doc;
    doc.Parse(m.data.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    const std::string tenant = doc["tenantid"].GetString();
    CHECK(m.subject == "audit.committed." + tenant);
    republished.insert(doc["data"]["request_id"].GetString());
    seqs[tenant].insert(std::stoll(doc["sequence"].GetString()));
    CHECK(doc.HasMember("recordedtime"));
  }
  CHECK(republished == w.valid_request_ids);
  for (auto& [tenant, s] : seqs) {
    INFO(tenant);
    CHECK(*s.begin() == 1);
    CHECK(*s.rbegin() == static_cast<int64_t>(s.size()));
  }
}

TEST_CASE("traild serves /healthz and /readyz, and migrations are idempotent", "[integration]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_health");
  const std::string again = std::string("TRAIL_PG_DSN='") + dsn + "' " + TRAIL_BIN_DIR + "/traild --log-level warn migrate";
  REQUIRE(std::system(again.c_str()) == 0);
  db d(dsn);
  CHECK(d.count("SELECT count(*) FROM audit.schema_migrations") == 1);
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
          "category, severity, actor_type, actor_id, resource_type, resource_id, source_service) VALUES "
          "('t', 1, now(), 's', 'i', 'x', 'bare', 'a', 'CATEGORY_UNSPECIFIED', 'SEVERITY_INFO', 'ACTOR_TYPE_USER', 'u', 'r', 'r1', 's')");
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
