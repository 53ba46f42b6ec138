#include "tests/integration/workload.h"

#include <catch2/catch.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <random>
#include <thread>
#include <unordered_map>

namespace trail::test {

namespace {

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

}  // namespace

workload publish_workload(broker& b, size_t target_events, int first_n, int invalid_every, int per_second) {
  std::mt19937 rng(20261122 + static_cast<unsigned>(first_n));
  workload w;
  int n = first_n;
  const auto started = std::chrono::steady_clock::now();
  auto tenant = [&] { return "tenant-" + std::to_string(rng() % 200); };
  auto invalid = [&](int j) {
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    const std::string tag = std::to_string(first_n) + "-" + std::to_string(j);  // unique across workloads
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
    if (per_second > 0 && w.valid_events % 100 == 0) {
      const auto due = started + std::chrono::microseconds(static_cast<int64_t>(w.valid_events) * 1000000 / per_second);
      std::this_thread::sleep_until(due);
    }
    if (invalid_every > 0 && w.messages % static_cast<size_t>(invalid_every) == static_cast<size_t>(invalid_every - 1)) {
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


bool wait_drained(broker& b, size_t dead_letters, int timeout_ms) {
  return wait_until(
      [&] {
        // The consumer may not exist yet (traild creates it): not yet drained.
        const auto backlog = b.backlog_now("AUDIT", "trail-ingest");
        return backlog && backlog->first == 0 && backlog->second == 0 && b.stream_messages("AUDIT_DLQ") >= dead_letters;
      },
      timeout_ms);
}

void verify_exactly_once(const std::string& dsn, broker& b, const workload& w, committed_check committed_mode) {
  db d(dsn);
  const auto n = static_cast<int64_t>(w.valid_events);
  // The consumer has nothing pending and nothing un-acked.
  auto [pending, ack_pending] = b.consumer_backlog("AUDIT", "trail-ingest");
  CHECK(pending == 0);
  CHECK(ack_pending == 0);
  // Every valid event exactly once.
  CHECK(d.count("SELECT count(*) FROM audit.events") == n);
  CHECK(d.count("SELECT count(DISTINCT (tenant_id, ce_source, ce_id)) FROM audit.events") == n);
  std::unordered_set<std::string> stored;
  for (auto& row : d.query("SELECT request_id FROM audit.events")) stored.insert(row[0]);
  CHECK(stored.size() == w.valid_request_ids.size());
  CHECK(set_mismatch(stored, w.valid_request_ids) == "");
  // Per-tenant sequences are 1..n without gaps or repeats, and match the heads.
  CHECK(d.count("SELECT count(*) FROM (SELECT tenant_id FROM audit.events GROUP BY tenant_id "
                "HAVING min(sequence) <> 1 OR max(sequence) <> count(*) OR count(DISTINCT sequence) <> count(*)) bad") == 0);
  CHECK(d.count("SELECT count(*) FROM audit.tenant_heads h WHERE last_sequence <> "
                "(SELECT max(sequence) FROM audit.events e WHERE e.tenant_id = h.tenant_id)") == 0);
  // Every tenant's hash chain runs unbroken through whatever happened (no
  // fork, no gap, no link computed twice), and its head holds its last link.
  CHECK(chain_problem(dsn) == "");
  // Exactly the invalid messages are dead-lettered, bytes intact, with their reasons.
  auto dlq = b.read_stream("AUDIT_DLQ", w.invalid_bodies.size());
  CHECK(dlq.size() == w.invalid_bodies.size());
  std::set<std::string> bodies, reasons;
  for (auto& m : dlq) {
    bodies.insert(m.data);
    reasons.insert(m.headers["Trail-Dlq-Reason"]);
    CHECK_FALSE(m.headers["Trail-Dlq-Message"].empty());
  }
  CHECK(set_mismatch(bodies, w.invalid_bodies) == "");
  CHECK(set_mismatch(reasons, w.invalid_kinds) == "");
  // Every committed event was republished (exactly once, when asked).
  auto committed = b.read_stream("AUDIT_COMMITTED", w.valid_events, 60000);
  if (committed_mode == committed_check::exactly_once) CHECK(committed.size() == w.valid_events);
  else CHECK(committed.size() >= w.valid_events);
  std::unordered_set<std::string> republished;
  std::unordered_map<std::string, std::set<int64_t>> seqs;
  size_t repeats = 0;
  std::unordered_map<std::string, const broker::stored*> first_of;
  for (auto& m : committed) {
    rapidjson::Document doc;
    doc.Parse(m.data.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    const std::string tenant = doc["tenantid"].GetString();
    CHECK(m.subject == "audit.committed." + tenant);
    republished.insert(doc["data"]["request_id"].GetString());
    if (!seqs[tenant].insert(std::stoll(doc["sequence"].GetString())).second) {
      ++repeats;
      // A repeat must be the same event: same id under the same (tenant, sequence).
      const auto* first = first_of[tenant + ":" + doc["sequence"].GetString()];
      REQUIRE(first != nullptr);
      rapidjson::Document fd;
      fd.Parse(first->data.c_str());
      CHECK(std::string(fd["id"].GetString()) == doc["id"].GetString());
      CHECK(std::string(fd["source"].GetString()) == doc["source"].GetString());
    }
    first_of.emplace(tenant + ":" + doc["sequence"].GetString(), &m);
    CHECK(doc.HasMember("recordedtime"));
  }
  if (committed_mode == committed_check::exactly_once) CHECK(repeats == 0);
  CHECK(set_mismatch(republished, w.valid_request_ids) == "");
  for (auto& [tenant, s] : seqs) {
    INFO(tenant);
    CHECK(*s.begin() == 1);
    CHECK(*s.rbegin() == static_cast<int64_t>(s.size()));
  }
}

}  // namespace trail::test
