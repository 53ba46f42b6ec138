// (rapidjson values are compared through GetInt64/GetString/GetBool: under
// C++20's rewritten comparisons, rapidjson's own operator== with a number
// recurses forever.)
// mcp/'s protocol side without a server: JSON-RPC framing and errors, the
// tool results' shape, argument checks, resource URIs, bounded exports. The
// query API is a recording function here; the real one is driven by
// tests/integration/mcp_test.cc through the official SDK.
#include <catch2/catch.hpp>
#include <rapidjson/document.h>

#include "mcp/mcp_server.h"

using namespace trail::mcp;

namespace {

struct fake_api {
  std::vector<api_request> calls;
  api_response next{200, "{}", "", false};
  std::string stream;  // handed to an export's sink in 7-byte pieces
  api_fn fn() {
    return [this](const api_request& r) {
      calls.push_back(r);
      api_response out = next;
      if (r.sink && out.status == 200) {
        for (size_t i = 0; i < stream.size(); i += 7)
          if (!r.sink(std::string_view(stream).substr(i, 7))) {
            out.cut = true;
            break;
          }
      }
      return out;
    };
  }
};

rapidjson::Document parse(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s.c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

std::string call(const server& s, const std::string& tool, const std::string& args, const caller& who = {}) {
  return s.handle(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":")" + tool + R"(","arguments":)" + args + "}}",
                  who);
}

}  // namespace

TEST_CASE("mcp: JSON-RPC framing, versions and protocol errors", "[unit][mcp]") {
  fake_api api;
  const server s(api.fn(), {"1.2.3"});
  CHECK(classify(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})") == message_kind::initialize);
  CHECK(classify(R"({"jsonrpc":"2.0","id":1,"method":"ping"})") == message_kind::request);
  CHECK(classify(R"({"jsonrpc":"2.0","method":"notifications/initialized"})") == message_kind::notification);
  CHECK(classify(R"({"jsonrpc":"2.0","id":1,"result":{}})") == message_kind::response);
  CHECK(classify("[1]") == message_kind::batch);
  CHECK(classify("{nope") == message_kind::invalid);

  std::string agreed;
  auto init = parse(s.handle(R"({"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-06-18"}})", {}, &agreed));
  CHECK(agreed == "2025-06-18");
  CHECK((init["id"].GetString() == std::string("a")));
  CHECK((init["result"]["protocolVersion"].GetString() == std::string("2025-06-18")));
  CHECK((init["result"]["serverInfo"]["version"].GetString() == std::string("1.2.3")));
  CHECK(init["result"]["capabilities"].HasMember("tools"));
  CHECK(init["result"]["capabilities"].HasMember("resources"));
  CHECK_FALSE(init["result"]["capabilities"].HasMember("logging"));  // not advertised, not served
  parse(s.handle(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01"}})", {}, &agreed));
  CHECK(agreed == "2025-11-25");  // the newest, for the client to decide

  CHECK(parse(s.handle(R"({"jsonrpc":"2.0","id":2,"method":"ping"})", {}))["result"].ObjectEmpty());
  CHECK(s.handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", {}).empty());
  CHECK(s.handle(R"({"jsonrpc":"2.0","id":3,"result":{}})", {}).empty());
  CHECK((parse(s.handle("{nope", {}))["error"]["code"].GetInt64() == -32700));
  CHECK((parse(s.handle("[]", {}))["error"]["code"].GetInt64() == -32600));
  CHECK((parse(s.handle(R"({"id":1,"method":"ping"})", {}))["error"]["code"].GetInt64() == -32600));  // no jsonrpc
  CHECK((parse(s.handle(R"({"jsonrpc":"2.0","id":{},"method":"ping"})", {}))["error"]["code"].GetInt64() == -32600));
  CHECK((parse(s.handle(R"({"jsonrpc":"2.0","id":4,"method":"sampling/createMessage"})", {}))["error"]["code"].GetInt64() == -32601));
  CHECK((parse(s.handle(R"({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope"}})", {}))["error"]["code"].GetInt64() == -32602));
  CHECK((parse(s.handle(R"({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"query_events","arguments":[]}})", {}))["error"]["code"].GetInt64() == -32602));
  CHECK(api.calls.empty());  // none of that reached the API
}

TEST_CASE("mcp: tools call the API with the caller's token and answer structured results or isError", "[unit][mcp]") {
  fake_api api;
  const server s(api.fn(), {"t"});
  caller who;
  who.default_tenant = "acme";
  who.authorization = "Bearer abc";

  api.next = {200, R"({"events":[{"sequence":"0000000000000000004"}],"next_page_token":"tok"})", "", false};
  auto r = parse(call(s, "query_events", R"({"actions":["a.b","c.d"],"last":"last_24h","actor_id":"u 1","page_size":10})", who));
  REQUIRE(api.calls.size() == 1);
  CHECK(api.calls[0].target == "/v1/tenants/acme/events?actor_id=u%201&actions=a.b%2Cc.d&last=24h&page_size=10");
  CHECK(api.calls[0].headers == std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer abc"}});
  CHECK((r["result"]["isError"].GetBool() == false));
  CHECK((r["result"]["structuredContent"]["count"].GetInt64() == 1));
  CHECK((r["result"]["structuredContent"]["next_cursor"].GetString() == std::string("tok")));
  CHECK((r["result"]["content"][0]["type"].GetString() == std::string("text")));

  // Argument problems never reach the API and say what to fix.
  api.calls.clear();
  auto bad = [&](const std::string& tool, const std::string& args, const caller& c) {
    auto d = parse(call(s, tool, args, c));
    CHECK((d["result"]["isError"].GetBool() == true));
    return std::string(d["result"]["content"][0]["text"].GetString());
  };
  CHECK(bad("query_events", "{}", caller{}) == "tenant_id is required (these credentials do not name a single tenant)");
  CHECK(bad("query_events", R"({"actorid":"x"})", who).find("unknown argument actorid") == 0);
  CHECK(bad("query_events", R"({"last":"forever"})", who).find("last must be a duration") == 0);
  CHECK(bad("query_events", R"({"last":"1h","from":"2026-01-01T00:00:00Z"})", who) == "give either last or from, not both");
  CHECK(bad("query_events", R"({"page_size":0})", who) == "page_size must be an integer from 1 to 1000");
  CHECK(bad("get_event_diff", "{}", who).find("sequence is required") == 0);
  CHECK(bad("record_event", R"({"actor":{"type":"user","id":"u"}})", who) == "action is required");
  CHECK(bad("export_events", R"({"format":"xml"})", who) == "format must be ndjson or csv");
  CHECK(api.calls.empty());

  // API refusals become results an agent can act on.
  api.next = {404, R"({"code":"not_found","message":"no such event"})", "", false};
  CHECK(bad("get_event_diff", R"({"sequence":42})", who) == "no event 42 in tenant acme");
  api.next = {403, R"({"code":"forbidden","message":"this token may not audit:read this tenant"})", "", false};
  CHECK(bad("verify_chain", R"({"tenant_id":"beta"})", who) == "this token may not audit:read this tenant (HTTP 403, forbidden)");
  api.next = {0, "", "Connection refused", false};
  CHECK(bad("verify_chain", "{}", who) == "the query API cannot be reached: Connection refused");

  // record_event: the payload as given, with the tenant; a key made when none is given.
  api.calls.clear();
  api.next = {504, R"({"code":"commit_pending","message":"…"})", "", false};
  const std::string pending = bad("record_event", R"({"action":"x","actor":{"type":"user","id":"u"},"primary_resource":{"type":"a","id":"b"}})", who);
  REQUIRE(api.calls.size() == 1);
  CHECK(api.calls[0].method == "POST");
  CHECK(api.calls[0].target == "/v1/tenants/acme/events");
  CHECK(api.calls[0].body == R"({"tenant_id":"acme","action":"x","actor":{"type":"user","id":"u"},"primary_resource":{"type":"a","id":"b"}})");
  std::string key;
  for (const auto& [k, v] : api.calls[0].headers)
    if (k == "Idempotency-Key") key = v;
  CHECK(key.size() == 36);
  CHECK(pending.find("idempotency_key \"" + key + "\"") != std::string::npos);
}

TEST_CASE("mcp: exports are cut at max_rows on a record boundary, CSV quotes included", "[unit][mcp]") {
  fake_api api;
  const server s(api.fn(), {"t", 3});
  caller who;
  who.default_tenant = "acme";
  api.stream = "h1,h2\r\n\"a\nb\",1\r\nc,2\r\nd,3\r\ne,4\r\n";
  auto r = parse(call(s, "export_events", R"({"format":"csv","max_rows":2,"to":"2030-01-01T00:00:00Z"})", who));
  REQUIRE(r["result"]["isError"].GetBool() == false);
  const auto& sc = r["result"]["structuredContent"];
  CHECK((sc["rows"].GetInt64() == 2));
  CHECK((sc["truncated"].GetBool() == true));
  CHECK(std::string(sc["uri"].GetString()) == "audit://tenants/acme/exports/csv?to=2030-01-01T00%3A00%3A00Z&max_rows=2");
  CHECK((r["result"]["content"][1]["type"].GetString() == std::string("resource_link")));
  CHECK(api.calls[0].target == "/v1/tenants/acme/export?format=csv&to=2030-01-01T00%3A00%3A00Z");
  // Reading the link: the same bound, the same bytes.
  auto read = parse(s.handle(R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":")" +
                                 std::string(sc["uri"].GetString()) + R"("}})",
                             who));
  CHECK(std::string(read["result"]["contents"][0]["text"].GetString()) == "h1,h2\r\n\"a\nb\",1\r\nc,2\r\n");
  CHECK((read["result"]["contents"][0]["mimeType"].GetString() == std::string("text/csv")));
  CHECK((parse(call(s, "export_events", R"({"max_rows":4})", who))["result"]["isError"].GetBool() == true));  // over export_max_rows
  // NDJSON without a bound that cuts: not truncated.
  api.stream = "{\"a\":1}\n{\"a\":2}\n";
  auto whole = parse(call(s, "export_events", R"({"max_rows":3})", who));
  CHECK((whole["result"]["structuredContent"]["rows"].GetInt64() == 2));
  CHECK((whole["result"]["structuredContent"]["truncated"].GetBool() == false));
}

TEST_CASE("mcp: resource URIs", "[unit][mcp]") {
  fake_api api;
  const server s(api.fn(), {"t"});
  auto read = [&](const std::string& uri) {
    return parse(s.handle(R"({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":")" + uri + R"("}})", {}));
  };
  api.next = {200, R"({"events":[],"next_page_token":"n x"})", "", false};
  auto tl = read("audit://tenants/acme/actors/u%2F1/activity?cursor=abc");
  REQUIRE(api.calls.size() == 1);
  CHECK(api.calls[0].target == "/v1/tenants/acme/events?page_size=50&actor_id=u%2F1&page_token=abc");
  auto page = parse(tl["result"]["contents"][0]["text"].GetString());
  CHECK((page["next_uri"].GetString() == std::string("audit://tenants/acme/actors/u%2F1/activity?cursor=n%20x")));
  for (const char* bad : {"audit://tenants/acme", "audit://tenants/acme/events/0", "audit://tenants/acme/events/x",
                          "audit://tenants//timeline", "audit://tenants/acme/timeline?page_size=5", "https://x/y",
                          "audit://tenants/acme/exports/xml"})
    CHECK((read(bad)["error"]["code"].GetInt64() == -32002));
  api.next = {404, "{}", "", false};
  CHECK(std::string(read("audit://tenants/acme/events/9")["error"]["message"].GetString()) == "no event 9 in tenant acme");
  api.next = {403, R"({"code":"forbidden","message":"no"})", "", false};
  CHECK((read("audit://tenants/beta/timeline")["error"]["code"].GetInt64() == -32001));
  caller two;
  two.tenants = {"acme", "beta"};
  auto listed = parse(s.handle(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})", two));
  CHECK(listed["result"]["resources"].Size() == 2);
  CHECK(parse(s.handle(R"({"jsonrpc":"2.0","id":1,"method":"resources/templates/list"})", {}))["result"]["resourceTemplates"].Size() == 3);
}
