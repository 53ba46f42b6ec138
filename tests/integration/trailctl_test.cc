// trailctl against a live stack: events sent through it are read back with
// its query (every output form), get, diff and verify, with settings from
// flags, the environment and the config file, and its exit codes.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/auth.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-trailctl-secret-0123456789";

// trailctl with `args`, its environment cleared but for PATH, HOME and `env`.
command_result trailctl(const std::string& args, const std::map<std::string, std::string>& env, bool with_stderr = true) {
  std::string cmd = "env -i PATH=/usr/bin:/bin HOME='" + stack().stack_dir + "/home' ";
  for (const auto& [k, v] : env) cmd += k + "='" + v + "' ";
  cmd += std::string(TRAIL_BIN_DIR) + "/trailctl " + args;
  return run_command(with_stderr ? cmd : "( " + cmd + " 2>/dev/null )");
}

}  // namespace

TEST_CASE("trailctl: send, query in every form, get, diff and verify against a live stack", "[integration][trailctl]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_trailctl");
  traild_process t(dsn, read_side_env(dsn, kSecret, "it/trailctl"));
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
  REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.checkpoints") > 0; }, 30000));
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

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

void publish_events(broker& b, const std::string& action, int from, int to) {
  for (int i = from; i < to; ++i)
    b.publish("audit.events", R"({"tenant_id":"acme","action":")" + action + R"(","actor":{"type":"user","id":"u-)" +
                                  std::to_string(i) + R"("},"primary_resource":{"type":"doc","id":"d-1"}})");
  b.wait_published();
}

}  // namespace

TEST_CASE("trailctl: tail resumes without a gap after its connection is cut, export, offline verify, dead letters replayed "
          "after a fix, completion",
          "[integration][trailctl]") {
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_trailctl_tail");
  traild_process t(dsn, read_side_env(dsn, kSecret, "it/tail"));
  t.start();
  const std::string token =
      trail::issue_hs256_token(kSecret, "cli", {"acme"}, trail::scope_read | trail::scope_export, time(nullptr), 900);
  // trailctl reaches NATS through a relay this test can cut; traild does not.
  const int nats_port = std::stoi(stack().nats_url.substr(stack().nats_url.rfind(':') + 1));
  tcp_proxy relay(nats_port);
  const std::map<std::string, std::string> env = {{"TRAIL_API_URL", "http://127.0.0.1:" + std::to_string(t.http_port())},
                                                  {"TRAIL_TOKEN", token},
                                                  {"TRAIL_TENANT", "acme"},
                                                  {"TRAIL_NATS_URL", "nats://127.0.0.1:" + std::to_string(relay.port())}};
  db d(dsn);
  auto committed = [&](const std::string& action) {
    return d.count_or_error("SELECT count(*) FROM audit.events WHERE action = '" + action + "'");
  };
  // Something committed before tail starts: it begins after it.
  publish_events(b, "tail.before", 0, 5);
  REQUIRE(wait_until([&] { return committed("tail.before") == 5; }, 20000));

  // ---- tail, in the background ----
  const std::string out = stack().stack_dir + "/tail.out", err = stack().stack_dir + "/tail.err";
  std::remove(out.c_str());
  std::remove(err.c_str());
  spawn_options tail_opt;
  tail_opt.argv = {std::string(TRAIL_BIN_DIR) + "/trailctl", "tail", "--actions", "tail.test", "-o", "ndjson"};
  tail_opt.env = {"PATH=/usr/bin:/bin", "HOME=" + stack().stack_dir + "/home"};
  for (const auto& [k, v] : env) tail_opt.env.push_back(k + "=" + v);
  tail_opt.stdout_path = out;
  tail_opt.stderr_path = err;
  child_process tail(tail_opt);  // killed when the test leaves this scope, however it leaves
  REQUIRE(wait_until([&] { return file_text(err).find("following") != std::string::npos; }, 30000));
  auto tailed = [&] { return lines_of(file_text(out)).size(); };

  publish_events(b, "tail.test", 0, 30);
  REQUIRE(wait_until([&] { return tailed() == 30; }, 20000));
  // Cut tail off; 30 more are committed (and broadcast) while it cannot hear them.
  relay.cut();
  publish_events(b, "tail.test", 30, 60);
  REQUIRE(wait_until([&] { return committed("tail.test") == 60; }, 20000));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(tailed() == 30);
  relay.restore();
  REQUIRE(wait_until([&] { return tailed() == 60; }, 20000));
  publish_events(b, "tail.test", 60, 90);
  REQUIRE(wait_until([&] { return tailed() == 90; }, 20000));
  CHECK(tail.end() == 0);
  INFO(file_text(err));
  CHECK_THAT(file_text(err), Catch::Contains("disconnected from NATS"));
  // Every committed tail.test event once, in sequence order, and nothing else.
  std::vector<long long> seen;
  for (const auto& line : lines_of(file_text(out))) {
    CHECK_THAT(line, Catch::Contains("\"action\":\"tail.test\""));
    const auto at = line.find("\"sequence\":\"") + 12;
    seen.push_back(std::stoll(line.substr(at, line.find('"', at) - at)));
  }
  std::vector<long long> stored;
  for (const auto& row : d.query("SELECT sequence FROM audit.events WHERE action = 'tail.test' ORDER BY sequence"))
    stored.push_back(std::stoll(row[0]));
  CHECK(seen == stored);

  // ---- export: a file, and a ledger verified offline ----
  const std::string file = stack().stack_dir + "/export.ndjson";
  const auto exported = trailctl("export --actions tail.test -f " + file, env);
  INFO(exported.out);
  CHECK(exported.status == 0);
  CHECK_THAT(exported.out, Catch::Contains("exported 90 rows of tenant acme"));
  CHECK(lines_of(file_text(file)).size() == 90);
  REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.checkpoints") > 0; }, 30000));
  const std::string ledger = stack().stack_dir + "/ledger.ndjson";
  std::remove((ledger + ".checkpoints").c_str());
  const auto led = trailctl("export --format ledger -f " + ledger, env);
  INFO(led.out);
  REQUIRE(led.status == 0);
  CHECK(!file_text(ledger + ".checkpoints").empty());
  CHECK_THAT(file_text(ledger + ".pub"), Catch::Contains("\"algorithm\":\"Ed25519\""));
  const auto offline = trailctl("verify --export " + ledger, {});  // no API, no broker
  INFO(offline.out);
  CHECK(offline.status == 0);
  std::string text = file_text(ledger);
  text.replace(text.find("tail.test"), 9, "tail.TEST");
  std::ofstream(ledger) << text;
  const auto tampered = trailctl("verify --export " + ledger, {});
  INFO(tampered.out);
  CHECK(tampered.status == 1);

  // ---- dead letters: list, show, a dry run, a confirmation, a replay after a fix ----
  const std::string broken = R"({"tenant_id":"acme","actor":{"type":"user","id":"u-9"},"primary_resource":{"type":"doc","id":"d-9"}})";
  b.publish("audit.events", broken, {{"X-Origin", "billing"}});
  b.wait_published();
  REQUIRE(wait_until([&] { return b.stream_messages("AUDIT_DLQ") == 1; }, 20000));
  const auto list = trailctl("dlq list", env);
  INFO(list.out);
  CHECK(list.status == 0);
  CHECK_THAT(list.out, Catch::Contains("payload_invalid") && Catch::Contains("data.action is required") && Catch::Contains("(1 dead letters shown"));
  const auto show = trailctl("dlq show 1", env);
  INFO(show.out);
  CHECK_THAT(show.out, Catch::Contains("reason:   payload_invalid") && Catch::Contains("X-Origin: billing") &&
                           Catch::Contains(broken));
  CHECK(trailctl("dlq show 1 --raw", env, false).out == broken);
  const uint64_t before = b.stream_messages("AUDIT");
  const auto dry = trailctl("dlq replay 1 --dry-run", env);
  CHECK(dry.status == 0);
  CHECK_THAT(dry.out, Catch::Contains("Would replay 1 dead letter(s) to audit.events"));
  CHECK(trailctl("dlq replay 1", env).status == 2);  // not a terminal, no --yes: nothing is published
  CHECK(b.stream_messages("AUDIT") == before);
  const std::string fixed_file = stack().stack_dir + "/fixed.json";
  std::ofstream(fixed_file) << R"({"tenant_id":"acme","action":"doc.fixed","actor":{"type":"user","id":"u-9"},)"
                               R"("primary_resource":{"type":"doc","id":"d-9"}})";
  const auto replayed = trailctl("dlq replay 1 --body-file " + fixed_file + " --yes", env);
  INFO(replayed.out);
  CHECK(replayed.status == 0);
  CHECK_THAT(replayed.out, Catch::Contains("replayed 1"));
  REQUIRE(wait_until([&] { return committed("doc.fixed") == 1; }, 20000));
  // The replay carried the original headers, and says where it came from.
  const auto stored_msgs = b.read_stream("AUDIT", before + 1);
  CHECK(stored_msgs.back().headers.at("X-Origin") == "billing");
  CHECK(stored_msgs.back().headers.at("Trail-Replayed-From") == "AUDIT_DLQ/1");
  // A second replay of the same dead letter is the broker's duplicate.
  CHECK_THAT(trailctl("dlq replay 1 --body-file " + fixed_file + " --yes", env).out, Catch::Contains("already replayed"));
  CHECK(trailctl("dlq show 99", env).status == 1);

  // ---- completion ----
  const auto completion = trailctl("completion bash", env);
  CHECK(completion.status == 0);
  CHECK_THAT(completion.out, Catch::Contains("complete -F _trailctl trailctl") && Catch::Contains("\"dlq replay\""));
  std::ofstream(stack().stack_dir + "/completion.bash") << completion.out;
  CHECK(std::system(("bash -n " + stack().stack_dir + "/completion.bash").c_str()) == 0);
  CHECK(t.stop() == 0);
}
