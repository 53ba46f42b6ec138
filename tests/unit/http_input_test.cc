// What the HTTP side reads from a client, before any handler: bounded JSON
// (decode/json_limits.h), percent-decoding and the router (api/http_types.h),
// tokens' tenant claims (api/auth.h), and the broker ids of synchronous writes.
#include <catch2/catch.hpp>
#include <jwt.h>

#include <string>

#include "api/auth.h"
#include "api/http_types.h"
#include "api/query_routes.h"
#include "decode/json_limits.h"

using namespace trail;

TEST_CASE("bounded JSON: depth and value counts stop the parse at the bound, whatever the shape", "[http]") {
  rapidjson::Document d;
  std::string why;
  CHECK(parse_json_bounded(d, R"({"a":[1,2,{"b":null}],"c":"x"})", json_bounds{8, 100}, &why));
  CHECK(d["a"][2].IsObject());
  const std::string deep(1000000, '[');
  CHECK_FALSE(parse_json_bounded(d, deep, json_bounds{64, 1000000}, &why));
  CHECK(why == "JSON nesting is deeper than 64");
  CHECK(d.IsNull());
  std::string wide = "[";
  for (int i = 0; i < 5000; ++i) wide += "1,";
  wide += "1]";
  CHECK_FALSE(parse_json_bounded(d, wide, json_bounds{64, 1000}, &why));
  CHECK(why == "more than 1000 JSON values");
  CHECK(parse_json_bounded(d, wide, json_bounds{64, 10000}, &why));
  CHECK_FALSE(parse_json_bounded(d, "{\"a\":\"\xff\"}", json_bounds{}, &why));
  CHECK_THAT(why, Catch::Contains("invalid JSON"));
  CHECK_FALSE(parse_json_bounded(d, "[1] x", json_bounds{}, &why));
  CHECK_FALSE(parse_json_bounded(d, "", json_bounds{}, &why));
}

TEST_CASE("bounded JSON: an array is split into its elements as sent, without being built", "[http]") {
  std::vector<std::pair<size_t, size_t>> items;
  std::string why;
  const std::string text = R"( [ {"a":"\u0041"} , 12.50 ,"s", [1,[2]] , null ] )";
  REQUIRE(split_json_array(text, json_bounds{8, 100}, 10, items, &why));
  REQUIRE(items.size() == 5);
  auto item = [&](size_t i) { return text.substr(items[i].first, items[i].second); };
  CHECK(item(0) == R"({"a":"\u0041"})");  // the bytes sent, not a rewrite
  CHECK(item(1) == "12.50");
  CHECK(item(2) == "\"s\"");
  CHECK(item(3) == "[1,[2]]");
  CHECK(item(4) == "null");
  CHECK(split_json_array("[]", json_bounds{}, 10, items, &why));
  CHECK(items.empty());
  CHECK_FALSE(split_json_array(R"({"a":1})", json_bounds{}, 10, items, &why));
  CHECK(why == "the body is not a JSON array");
  CHECK_FALSE(split_json_array("7", json_bounds{}, 10, items, &why));
  CHECK_FALSE(split_json_array("[1,2,3]", json_bounds{}, 2, items, &why));
  CHECK(why == "more than 2 elements");
  CHECK_FALSE(split_json_array("[" + std::string(100, '[') + std::string(100, ']') + "]", json_bounds{16, 1000}, 10, items, &why));
  CHECK(why == "JSON nesting is deeper than 16");
  CHECK_FALSE(split_json_array("[1,", json_bounds{}, 10, items, &why));
}

TEST_CASE("percent-decoding and queries: malformed escapes and invalid UTF-8 are refused, header values never decoded",
          "[http]") {
  std::string out;
  CHECK(decode_percent("/v1/tenants/a%20b", false, out));
  CHECK(out == "/v1/tenants/a b");
  CHECK(decode_percent("a+b", false, out));
  CHECK(out == "a+b");
  CHECK(decode_percent("a+b", true, out));
  CHECK(out == "a b");
  CHECK_FALSE(decode_percent("%ff", true, out));      // not UTF-8
  CHECK_FALSE(decode_percent("%c3%28", true, out));   // a broken sequence
  CHECK_FALSE(decode_percent("%ed%a0%80", true, out));  // a surrogate
  CHECK_FALSE(decode_percent("%c0%af", true, out));   // overlong
  CHECK_FALSE(decode_percent("%00", true, out));
  CHECK_FALSE(decode_percent("%4", true, out));
  CHECK_FALSE(decode_percent("%zz", true, out));
  CHECK(decode_percent("%e2%82%ac", true, out));
  CHECK(out == "\xe2\x82\xac");
  std::multimap<std::string, std::string> params;
  CHECK(parse_query("a=1&b=x%2By&a=2&&c", params));
  CHECK(params.count("a") == 2);
  CHECK(params.find("b")->second == "x+y");
  CHECK(params.find("c")->second.empty());
  CHECK_FALSE(parse_query("x=%ff", params));
  CHECK_FALSE(parse_query("%ff=1", params));

  http_request req;
  req.headers = {{"ce-id", "x-%2541"}, {"authorization", "a"}, {"Authorization", "b"}};
  CHECK(req.get_header_value("CE-ID") == "x-%2541");
  CHECK(req.header_count("AUTHORIZATION") == 2);
}

TEST_CASE("router: whole-path patterns, 404 and 405 told apart", "[http]") {
  http_router r;
  int hit = 0;
  r.Get(R"(/v1/tenants/([^/]+)/events)", [&](const http_request&, http_response&) { hit = 1; });
  r.Post(R"(/v1/tenants/([^/]+)/events)", [&](const http_request&, http_response&) { hit = 2; });
  r.Get(R"(/v1/tenants/([^/]+)/events/([^/]+))", [&](const http_request&, http_response&) { hit = 3; });
  const http_router::route* route = nullptr;
  std::vector<std::string> m;
  REQUIRE(r.find("POST", "/v1/tenants/acme/events", route, m) == http_router::found::route);
  http_request req;
  http_response res;
  route->handler(req, res);
  CHECK(hit == 2);
  CHECK(m[1] == "acme");
  REQUIRE(r.find("GET", "/v1/tenants/acme/events/7", route, m) == http_router::found::route);
  CHECK(m[2] == "7");
  CHECK(r.find("DELETE", "/v1/tenants/acme/events", route, m) == http_router::found::no_method);
  CHECK(r.find("GET", "/v1/tenants/acme/events/7/x", route, m) == http_router::found::no_path);
  CHECK(r.find("GET", "/v1/tenants/acme/events:batch", route, m) == http_router::found::no_path);
}

TEST_CASE("tokens: tenant_id is one tenant or a list, never a space-separated string", "[http][auth]") {
  auth_options o;
  o.hs256_secret = "unit-secret-0123456789abcdef";
  const authenticator a(o);
  const int64_t now = 1800000000;
  auto who = [&](const std::vector<std::string>& tenants) {
    auth_failure why;
    return a.authenticate("Bearer " + issue_hs256_token(o.hs256_secret, "u", tenants, scope_read, now, 600), now, &why);
  };
  const auto one = who({"acme"});
  REQUIRE(one);
  CHECK(one->tenants == std::vector<std::string>{"acme"});
  CHECK_FALSE(one->all_tenants);
  CHECK(one->valid_until_s == now + 600 + o.leeway_s);
  CHECK_FALSE(who({"acme *"}));
  CHECK_FALSE(who({"acme beta"}));
  CHECK_FALSE(who({"acme", "be ta"}));
  CHECK_FALSE(who({"acme.prod"}));
  const auto list = who({"acme", "*"});
  REQUIRE(list);
  CHECK(list->all_tenants);  // "*" as its own entry is the explicit grant
}

TEST_CASE("synchronous writes: the broker id names the tenant", "[http]") {
  CHECK(write_msg_id("acme", "//s", "id-1") != write_msg_id("beta", "//s", "id-1"));
  CHECK(write_msg_id("acme", "//s", "id-1") == write_msg_id("acme", "//s", "id-1"));
  // Fields are length-prefixed: moving a boundary changes the id.
  CHECK(write_msg_id("ab", "c", "d") != write_msg_id("a", "bc", "d"));
  CHECK(write_msg_id("acme", "//s", "id-1").rfind("api-", 0) == 0);
}
