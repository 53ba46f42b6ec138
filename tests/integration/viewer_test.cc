// The web viewer in a real browser (tests/viewer/viewer_test.mjs: Debian's
// chromium, headless, driven by puppeteer-core) against a live stack this
// test seeds: 520 doc.view events of 13 actors over the last three hours and
// 5 plan changes with nested before/after values in tenant acme, and events
// of tenant beta that acme's token must never show.
#include <catch2/catch.hpp>

#include "api/auth.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-viewer-secret-0123456789abcdef";

}  // namespace

TEST_CASE("viewer: sign-in, filters, diff, 500 events scrolled, export, live with a cut stream, tenant isolation, CSP, in "
          "chromium",
          "[integration][viewer]") {
  const std::string node = node_binary();
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_viewer");
  auto env_of_traild = read_side_env(dsn, kSecret, "it/viewer");
  env_of_traild.emplace("TRAIL_API_JWT_LEEWAY_S", "0");  // the short token expires when it says
  traild_process t(dsn, env_of_traild);
  t.start();
  const int64_t now_s = time(nullptr);
  auto at = [&](int64_t seconds_ago) {
    char buf[32];
    const time_t when = static_cast<time_t>(now_s - seconds_ago);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&when));
    return std::string(buf);
  };
  for (int i = 0; i < 520; ++i)
    b.publish("audit.events", R"({"tenant_id":"acme","action":"doc.view","occurred_at":")" + at(20 * i + 60) +
                                  R"(","actor":{"type":"user","id":"u-)" + std::to_string(i % 13) +
                                  R"("},"primary_resource":{"type":"doc","id":"d-)" + std::to_string(i) + R"("}})");
  for (int i = 0; i < 5; ++i)
    b.publish("audit.events",
              R"({"specversion":"1.0","id":"plan-)" + std::to_string(i) + R"(","source":"//billing","type":"plan.changed",)"
              R"("time":")" + at(30 * i + 45) + R"(","region":"eu","data":{"tenant_id":"acme","action":"plan.change",)"
              R"("actor":{"type":"user","id":"u-admin","display_name":"Ada Admin"},"primary_resource":{"type":"plan","id":"p-1"},)"
              R"("changes":{"old_value":{"tier":"basic","limits":{"seats":5,"projects":3}},)"
              R"("new_value":{"tier":"pro","limits":{"seats":10,"projects":3,"sso":true}}}}})",
              {{"Content-Type", "application/cloudevents+json"}});
  for (int i = 0; i < 3; ++i)
    b.publish("audit.events", R"({"tenant_id":"beta","action":"beta.secret","actor":{"type":"user","id":"b-1"},)"
                              R"("primary_resource":{"type":"vault","id":"v-)" + std::to_string(i) + R"("}})");
  b.wait_published();
  REQUIRE(wait_until([&] { return stored_events(dsn) >= 528; }, 60000));
  db d(dsn);
  REQUIRE(wait_until([&] { return d.count_or_error("SELECT count(*) FROM audit.checkpoints WHERE tenant_id = 'acme'") > 0; }, 30000));

  const int64_t issued = time(nullptr);
  using trail::issue_hs256_token;
  const std::string env =
      "NODE_TOOLS='" + node_tools_dir() + "' HTTP_PORT=" + std::to_string(t.http_port()) +
      " CHROMIUM=/usr/bin/chromium OUT='" + stack().stack_dir + "/viewer'" +
      " TOKEN_A='" + issue_hs256_token(kSecret, "viewer-a", {"acme"}, trail::scope_read | trail::scope_export, issued, 900) +
      "' TOKEN_W='" + issue_hs256_token(kSecret, "viewer-w", {"acme"}, trail::scope_write, issued, 900) +
      "' TOKEN_AB='" + issue_hs256_token(kSecret, "viewer-ab", {"acme", "beta"}, trail::scope_read, issued, 900) +
      "' TOKEN_SHORT='" + issue_hs256_token(kSecret, "viewer-short", {"acme"}, trail::scope_read, issued, 20) +
      "' SHORT_EXPIRES_S=" + std::to_string(issued + 20);
  REQUIRE(std::system(("rm -rf '" + stack().stack_dir + "/viewer'").c_str()) == 0);
  const auto r = run_command("env " + env + " '" + node + "' " + TRAIL_SOURCE_DIR + "/tests/viewer/viewer_test.mjs");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("viewer: passed"));
  CHECK(t.stop() == 0);
}
