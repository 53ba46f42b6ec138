// Smoke test of the bundled tools against a live traild: trail-loadgen
// publishes a mixed, skewed workload with invalid messages and sees every
// event committed once; trail-follow reads the committed stream with a
// durable consumer and finds every tenant's sequences contiguous from 1.
#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include "tests/integration/harness.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

using namespace trail::test;

namespace {

// Runs a command as the harness does (children.h); its exit status and output.
int run(const std::string& cmd, std::string& out) {
  auto r = run_command(cmd);
  out = std::move(r.out);
  return r.status;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("loadgen: a mixed workload is committed exactly once and followed without gaps") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_loadgen");
  traild_process traild(dsn);
  traild.start();

  const std::string dir = stack().stack_dir;
  const std::string json = dir + "/loadgen.json", csv = dir + "/loadgen.csv";
  std::string out;
  const std::string loadgen = std::string(TRAIL_BIN_DIR) + "/trail-loadgen --url " + stack().nats_url +
                              " --rate 2000 --count 6000 --mode mixed --tenants 40 --zipf 1.1 --invalid-share 0.02"
                              " --changes-share 0.4 --drain-timeout 60 -q --json " + json + " --csv " + csv;
  const int rc = run(loadgen, out);
  INFO(out);
  REQUIRE(rc == 0);

  rapidjson::Document d;
  d.Parse(slurp(json).c_str());
  REQUIRE(d.IsObject());
  const uint64_t published = d["published_events"].GetUint64();
  CHECK(published >= 6000);
  CHECK(d["committed_events"].GetUint64() == published);
  CHECK(d["missing"].GetUint64() == 0);
  CHECK(d["duplicates"].GetUint64() == 0);
  CHECK(d["invalid_messages"].GetUint64() > 0);
  CHECK(d["dead_lettered"].GetUint64() == d["invalid_messages"].GetUint64());
  CHECK(d["latency_ms"]["p50"].GetDouble() > 0);
  CHECK(d["latency_ms"]["p99"].GetDouble() >= d["latency_ms"]["p50"].GetDouble());
  CHECK(d["complete"].GetBool());

  // The database agrees with what the generator saw.
  db pg(dsn);
  CHECK(pg.count("SELECT count(*) FROM audit.events WHERE tenant_id LIKE 'lg-tenant-%'") ==
        static_cast<int64_t>(published));

  // One CSV row per second of the run, and one for its last part-second, after the header.
  std::istringstream rows(slurp(csv));
  std::string line;
  std::getline(rows, line);
  CHECK(line.rfind("elapsed_s,target_eps,published_eps,committed_eps", 0) == 0);
  int n = 0;
  uint64_t committed_in_rows = 0;
  while (std::getline(rows, line)) {
    ++n;
    std::vector<std::string> cells;
    std::stringstream cs(line);
    for (std::string c; std::getline(cs, c, ',');) cells.push_back(c);
    REQUIRE(cells.size() == 10);
    committed_in_rows += std::stoull(cells[3]);
  }
  CHECK(n >= 3);
  // The rows add up to the whole run: every commit is in one of them.
  CHECK(committed_in_rows == published);

  // A downstream subscriber sees every tenant's sequence contiguous from 1.
  const std::string follow = std::string(TRAIL_BIN_DIR) + "/trail-follow --url " + stack().nats_url +
                             " --durable smoke --from-one --idle-exit 2";
  const int frc = run(follow, out);
  INFO(out);
  CHECK(frc == 0);
  CHECK(out.find("trail-follow: " + std::to_string(published) + " events") != std::string::npos);
  CHECK(out.find(" 0 sequences missing") != std::string::npos);

  // And it notices a gap: a fabricated event with a sequence ahead of the rest.
  b.publish("audit.committed.lg-tenant-00000",
            R"({"specversion":"1.0","id":"x","source":"s","type":"t","tenantid":"lg-tenant-00000","sequence":"0000000000000999999"})");
  b.wait_published();
  const int grc = run(follow, out);
  INFO(out);
  CHECK(grc == 1);
  CHECK(out.find("gap: tenant lg-tenant-00000") != std::string::npos);
  CHECK(traild.stop() == 0);
}
