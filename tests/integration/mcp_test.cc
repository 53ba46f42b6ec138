// The MCP server under the official tools, against a live stack: the
// TypeScript SDK's client over Streamable HTTP and over stdio
// (tests/mcp/sdk_client.mjs), and the conformance runner's server scenarios
// (tests/mcp/conformance.mjs). Both are Node programs run with the pinned
// Node 22 that scripts/node-tools.sh fetches; this test starts what they talk
// to and requires their summary lines.
#include <catch2/catch.hpp>

#include <cstdio>

#include "api/auth.h"
#include "tests/integration/harness.h"

using namespace trail::test;

namespace {

const std::string kSecret = "it-mcp-secret-0123456789abcdef";

}  // namespace

TEST_CASE("mcp: the official SDK client over HTTP and stdio calls every tool and reads every resource, within its tenant",
          "[integration][mcp]") {
  const std::string node = node_binary();
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_mcp");
  traild_process t(dsn, read_side_env(dsn, kSecret, "it/mcp"));
  t.start();
  const auto now = time(nullptr);
  const unsigned rw = trail::scope_read | trail::scope_write | trail::scope_export;
  const std::string api = "http://127.0.0.1:" + std::to_string(t.http_port());
  const std::string env = "NODE_TOOLS='" + node_tools_dir() + "' MCP_URL='" + api + "/mcp' API_URL='" + api + "' TRAILCTL='" +
                          TRAIL_BIN_DIR + "/trailctl' TOKEN_A='" + trail::issue_hs256_token(kSecret, "mcp-a", {"acme"}, rw, now, 900) +
                          "' TOKEN_B='" + trail::issue_hs256_token(kSecret, "mcp-b", {"beta"}, rw, now, 900) + "' TOKEN_AB='" +
                          trail::issue_hs256_token(kSecret, "mcp-ab", {"acme", "beta"}, trail::scope_read, now, 900) + "'";
  const auto r = run_command("env " + env + " '" + node + "' " + TRAIL_SOURCE_DIR + "/tests/mcp/sdk_client.mjs");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("mcp sdk: passed"));
}

TEST_CASE("mcp: the official conformance runner's server scenarios pass with no warnings", "[integration][mcp]") {
  const std::string node = node_binary();
  broker b;
  b.reset_streams();
  const std::string dsn = fresh_database("trail_it_mcp_conformance");
  traild_process t(dsn, read_side_env(dsn, kSecret));
  t.start();
  const std::string token =
      trail::issue_hs256_token(kSecret, "conformance", {"acme"}, trail::scope_read, time(nullptr), 900);
  const std::string env = "NODE_TOOLS='" + node_tools_dir() + "' MCP_URL='http://127.0.0.1:" + std::to_string(t.http_port()) +
                          "/mcp' TOKEN_A='" + token + "' OUT='" + stack().stack_dir + "/mcp-conformance'";
  const auto r = run_command("env " + env + " '" + node + "' " + TRAIL_SOURCE_DIR + "/tests/mcp/conformance.mjs");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("mcp conformance: passed 6 scenarios"));
}
