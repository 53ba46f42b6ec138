// trailctl against a live stack: events sent through it are read back with
// its query (every output form), get, diff and verify, with settings from
// flags, the environment and the config file, and its exit codes.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "api/auth.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-trailctl-secret-0123456789";

struct run_result {
  int status;
  std::string out;
};

// trailctl with `args`, its environment cleared but for PATH, HOME and `env`.
run_result trailctl(const std::string& args, const std::map<std::string, std::string>& env, bool with_stderr = true) {
  std::string cmd = "env -i PATH=/usr/bin:/bin HOME='" + stack().stack_dir + "/home' ";
  for (const auto& [k, v] : env) cmd += k + "='" + v + "' ";
  cmd += std::string(TRAIL_BIN_DIR) + "/trailctl " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace

TEST_CASE("trailctl: send, query in every form, get, diff and verify against a live stack", "[integration][trailctl]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_trailctl");
  const std::string key = stack().stack_dir + "/trailctl-key";
  REQUIRE(std::system(("rm -f " + key + " " + key + ".pub && " + TRAIL_BIN_DIR + "/traild keygen --name it/trailctl --out " +
                       key + " >/dev/null").c_str()) == 0);
  traild_process t(dsn, {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")},
                         {"TRAIL_API_JWT_HS256_SECRET", kSecret},
                         {"TRAIL_INTEGRITY_SIGNING_KEY_FILE", key},
                         {"TRAIL_INTEGRITY_CHECKPOINT_INTERVAL_S", "1"}});
  t.start();
  const std::string token = trail::issue_hs256_token(kSecret, "cli", {"acme"}, trail::scope_read, time(nullptr), 600);
  const std::map<std::string, std::string> env = {{"TRAIL_API_URL", "http://127.0.0.1:" + std::to_string(t.http_port())},
                                                  {"TRAIL_TOKEN", token},
                                                  {"TRAIL_TENANT", "acme"},
                                                  {"TRAIL_NATS_URL", stack().nats_url}};
  // send: arguments, a file, stdin.
  const auto sent = trailctl(R"(send '{"tenant_id":"acme","action":"plan.change","actor":{"type":"user","id":"u-1"},)"
                             R"("primary_resource":{"type":"plan","id":"p-1"},"changes":{"old_value":{"seats":5,)"
                             R"("tier":"basic"},"new_value":{"seats":10,"tier":"basic"}}}')",
                             env);
  INFO(sent.out);
  REQUIRE(sent.status == 0);
  CHECK_THAT(sent.out, Catch::Contains("stored in the stream"));
  const std::string file = stack().stack_dir + "/trailctl-event.json";
  std::ofstream(file) << R"({"tenant_id":"acme","action":"doc.read","actor":{"type":"user","id":"u, \"two\""},)"
                         R"("primary_resource":{"type":"doc","id":"d-1"}})";
  REQUIRE(trailctl("send --file " + file, env).status == 0);
  REQUIRE(wait_until([&] { return stored_events(dsn) == 2; }, 20000));

  // query: a table by default, and json, ndjson, csv.
  const auto table = trailctl("query", env);
  INFO(table.out);
  REQUIRE(table.status == 0);
  CHECK_THAT(table.out, Catch::Contains("sequence") && Catch::Contains("plan.change") && Catch::Contains("doc.read") &&
                            Catch::Contains("(2 events)"));
  // (Every query is itself recorded in acme's trail: later listings see those too.)
  const auto filtered = trailctl("query --actions plan.change -o ndjson", env);
  CHECK(filtered.status == 0);
  CHECK(std::count(filtered.out.begin(), filtered.out.end(), '\n') == 1);
  CHECK_THAT(filtered.out, Catch::Contains("\"action\":\"plan.change\""));
  const auto json = trailctl("query -o json", env);
  CHECK(json.out.front() == '[');
  const auto csv = trailctl("query -o csv --limit 1 --actions doc.read", env);
  CHECK(csv.out.rfind("sequence,occurred_at,action,actor,resource,outcome\r\n", 0) == 0);
  CHECK(std::count(csv.out.begin(), csv.out.end(), '\n') == 2);
  CHECK_THAT(csv.out, Catch::Contains("\"ACTOR_TYPE_USER:u, \"\"two\"\"\""));  // quoted as RFC 4180 says

  // get and diff of the plan change; no color when not on a terminal.
  const std::string seq = db(dsn).scalar("SELECT sequence FROM audit.events WHERE action = 'plan.change'");
  const auto get = trailctl("get " + seq, env);
  CHECK(get.status == 0);
  CHECK_THAT(get.out, Catch::Contains("\"specversion\":\"1.0\""));
  const auto diff = trailctl("diff " + seq, env);
  INFO(diff.out);
  CHECK(diff.status == 0);
  CHECK_THAT(diff.out, Catch::Contains("/seats\n  - 5\n  + 10\n"));
  CHECK(diff.out.find("/tier") == std::string::npos);  // unchanged
  CHECK(diff.out.find('\033') == std::string::npos);

  // verify, online, once the checkpointer has signed the head.
  db d(dsn);
  REQUIRE(wait_until([&] { return d.count("SELECT count(*) FROM audit.checkpoints") > 0; }, 15000));
  const auto verified = trailctl("verify --against-broker", env);
  INFO(verified.out);
  CHECK(verified.status == 0);
  CHECK_THAT(verified.out, Catch::Contains("verified") && Catch::Contains("against the broker's copies"));

  // Settings from the config file when neither flags nor environment give them.
  REQUIRE(std::system(("mkdir -p " + stack().stack_dir + "/home/.config/trail").c_str()) == 0);
  std::ofstream(stack().stack_dir + "/home/.config/trail/trailctl.toml")
      << "api_url = \"http://127.0.0.1:" << t.http_port() << "\"\ntoken = \"" << token << "\"\ntenant = \"acme\"\n";
  const auto from_file = trailctl("query -o ndjson", {});
  CHECK(from_file.status == 0);
  CHECK(std::count(from_file.out.begin(), from_file.out.end(), '\n') >= 2);

  // Failures: exit 1 with the API's reason on one line; usage errors exit 2.
  auto bad = env;
  bad["TRAIL_TOKEN"] = "not-a-token";
  const auto refused = trailctl("query", bad);
  CHECK(refused.status == 1);
  CHECK_THAT(refused.out, Catch::StartsWith("trailctl: HTTP 401"));
  const auto missing = trailctl("get 999999", env);
  CHECK(missing.status == 1);
  CHECK_THAT(missing.out, Catch::Contains("HTTP 404"));
  CHECK(trailctl("query -o xml", env).status == 2);
  CHECK(trailctl("frobnicate", env).status == 2);
  CHECK(t.stop() == 0);
}
