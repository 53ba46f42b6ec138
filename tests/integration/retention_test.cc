// Retention on a live stack (store/retention.h, docs/COMPLIANCE.md): a day
// past retention is archived, verified and dropped; what remains of each
// chain still verifies, crossing the archived runs on their signed notes; the
// archive verifies on its own, offline, and a tampered one does not; a legal
// hold keeps its tenant's partition until it is released.
#include <catch2/catch.hpp>
#include <httplib.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <fstream>
#include <sys/stat.h>

#include "api/auth.h"
#include "common/time.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-retention-secret-0123456789";

std::string event_at(const std::string& tenant, int n, const std::string& when) {
  return R"({"specversion":"1.0","id":"r-)" + tenant + "-" + std::to_string(n) +
         R"(","source":"//it/retention","type":"t","time":")" + when + R"(","data":{"tenant_id":")" + tenant +
         R"(","action":"doc.read","actor":{"type":"user","id":"u"},"primary_resource":{"type":"doc","id":"d"},)"
         R"("metadata":{"n":)" + std::to_string(n) + "}}}";
}

command_result traild_cmd(const std::string& args, const std::map<std::string, std::string>& env) {
  std::string cmd;
  for (const auto& [k, v] : env) cmd += k + "='" + v + "' ";
  cmd += std::string(TRAIL_BIN_DIR) + "/traild --log-level error " + args;
  return run_command(cmd);
}

rapidjson::Document verify(int port, const std::string& tenant) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  auto res = cli.Get(("/v1/tenants/" + tenant + "/verify?against=broker").c_str(),
                     httplib::Headers{{"Authorization", "Bearer " + trail::issue_hs256_token(kSecret, "auditor", {tenant},
                                                                                               trail::scope_read,
                                                                                               time(nullptr), 600)}});
  REQUIRE(res);
  INFO(res->body);
  REQUIRE(res->status == 200);
  rapidjson::Document d;
  d.Parse(res->body.c_str());
  return d;
}

}  // namespace

TEST_CASE("retention archives a day past retention, verifies it, drops it, and every chain still verifies",
          "[integration][integrity][retention]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_retention");
  const std::string dir = stack().stack_dir + "/retention-archives";
  const std::string key = stack().stack_dir + "/retention-key";
  REQUIRE(std::system(("rm -rf " + dir + " " + key + " " + key + ".pub && mkdir -p " + dir).c_str()) == 0);
  REQUIRE(traild_cmd("keygen --name it.trail.test/retention --out " + key, {}).status == 0);
  const std::map<std::string, std::string> maintenance = {
      {"TRAIL_RETENTION_PG_DSN", as_role(dsn, "trail_maintenance")}, {"TRAIL_RETENTION_DAYS", "7"},
      {"TRAIL_RETENTION_ARCHIVE_DIR", dir}, {"TRAIL_INTEGRITY_SIGNING_KEY_FILE", key}};

  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")},
                         {"TRAIL_API_JWT_HS256_SECRET", kSecret},
                         {"TRAIL_API_META_AUDIT", "best_effort"},
                         {"TRAIL_INTEGRITY_SIGNING_KEY_FILE", key},
                         {"TRAIL_INTEGRITY_CHECKPOINT_INTERVAL_S", "1"},
                         {"TRAIL_PG_PARTITIONS_BEHIND_DAYS", "40"}});
  t.start();
  // acme: 15 events of an old day, 10 of today, then one late event of the
  // old day (sequence 26, in the old partition); beta: 5 of the old day;
  // gamma: 3 of another old day, to be held.
  const std::string old_day = trail::format_rfc3339_us(trail::now_unix_us() - 20LL * 86400 * 1000000).substr(0, 10);
  const std::string held_day = trail::format_rfc3339_us(trail::now_unix_us() - 18LL * 86400 * 1000000).substr(0, 10);
  const std::string now = trail::format_rfc3339_us(trail::now_unix_us());
  auto publish = [&](const std::string& body) {
    b.publish("audit.events", body, {{"Content-Type", "application/cloudevents+json"}});
  };
  for (int n = 1; n <= 15; ++n) publish(event_at("acme", n, old_day + "T10:00:00.000001Z"));
  for (int n = 1; n <= 5; ++n) publish(event_at("beta", n, old_day + "T11:00:00Z"));
  for (int n = 1; n <= 3; ++n) publish(event_at("gamma", n, held_day + "T09:00:00Z"));
  b.wait_published();
  REQUIRE(wait_until([&] { return stored_events(dsn) == 23; }, 30000));
  for (int n = 16; n <= 25; ++n) publish(event_at("acme", n, now));
  b.wait_published();
  REQUIRE(wait_until([&] { return stored_events(dsn) == 33; }, 30000));
  publish(event_at("acme", 26, old_day + "T23:00:00Z"));  // late
  b.wait_published();
  REQUIRE(wait_until([&] { return stored_events(dsn) == 34; }, 30000));
  db d(dsn);
  REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.tenant_heads h WHERE h.last_sequence = "
                                          "(SELECT max(sequence) FROM audit.checkpoints c WHERE c.tenant_id = h.tenant_id)") == 3; },
                     15000));
  const std::string old_part = "events_" + old_day.substr(0, 4) + old_day.substr(5, 2) + old_day.substr(8, 2);
  const std::string held_part = "events_" + held_day.substr(0, 4) + held_day.substr(5, 2) + held_day.substr(8, 2);
  REQUIRE(d.count("SELECT count(*) FROM pg_class WHERE relname IN ('" + old_part + "', '" + held_part + "')") == 2);

  REQUIRE(traild_cmd("legal-hold place --tenant gamma --reason case-4711", maintenance).status == 0);
  CHECK_THAT(traild_cmd("legal-hold list", maintenance).out, Catch::Contains("gamma\tcase-4711"));
  const auto pass = traild_cmd("retention run", maintenance);
  INFO(pass.out);
  REQUIRE(pass.status == 0);
  CHECK_THAT(pass.out, Catch::Contains("archived and dropped: 1 partitions, 21 events"));
  CHECK_THAT(pass.out, Catch::Contains("kept under legal hold: " + held_part + " (gamma)"));
  CHECK(d.count("SELECT count(*) FROM pg_class WHERE relname = '" + old_part + "'") == 0);
  CHECK(d.count("SELECT count(*) FROM pg_class WHERE relname = '" + held_part + "'") == 1);
  CHECK(d.count("SELECT count(*) FROM audit.events WHERE tenant_id IN ('acme', 'beta')") >= 10);
  CHECK(d.count("SELECT count(*) FROM audit.archived_runs WHERE tenant_id = 'acme'") == 2);  // 1..15 and 26

  // What remains verifies, crossing the archived runs; the broker agrees.
  for (const char* tenant : {"acme", "beta"}) {
    const auto v = verify(t.http_port(), tenant);
    INFO(tenant);
    CHECK(v["verified"].GetBool());
    CHECK(v["archived_events"].GetInt64() == (std::string(tenant) == "acme" ? 16 : 5));
  }
  CHECK(verify(t.http_port(), "gamma")["verified"].GetBool());

  // The archive verifies on its own, offline; a tampered copy does not.
  const std::string archive = dir + "/" + old_part + ".ledger.ndjson.zst";
  const auto offline = traild_cmd("verify --archive " + archive + " --public-key " + key + ".pub", {});
  INFO(offline.out);
  CHECK(offline.status == 0);
  CHECK_THAT(offline.out, Catch::Contains("verified: 21 events"));
  SECTION("a byte of the archive changed") {
    std::fstream f(archive, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x5a');
  }
  SECTION("the manifest's text changed") {
    std::string m = file_text(archive + ".manifest");
    const size_t at = m.find("\"rows\":21");
    REQUIRE(at != std::string::npos);
    m.replace(at, 9, "\"rows\":20");
    std::ofstream(archive + ".manifest", std::ios::trunc) << m;
  }
  const auto broken = traild_cmd("verify --archive " + archive + " --public-key " + key + ".pub", {});
  INFO(broken.out);
  CHECK(broken.status == 1);
  CHECK_THAT(broken.out, Catch::Contains("BROKEN"));

  // Released, the held day goes at the next pass.
  REQUIRE(traild_cmd("legal-hold release --tenant gamma", maintenance).status == 0);
  const auto again = traild_cmd("retention run", maintenance);
  INFO(again.out);
  CHECK_THAT(again.out, Catch::Contains("archived and dropped: 1 partitions, 3 events"));
  CHECK(d.count("SELECT count(*) FROM pg_class WHERE relname = '" + held_part + "'") == 0);
  CHECK(verify(t.http_port(), "gamma")["verified"].GetBool());
  CHECK(t.stop() == 0);
}
