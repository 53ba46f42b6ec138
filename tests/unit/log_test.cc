#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <vector>

#include "common/log.h"

TEST_CASE("repeated log lines are rate-limited and the suppressed count is reported", "[log]") {
  std::vector<std::string> lines;
  trail::log::set_sink_for_tests([&](const std::string& l) { lines.push_back(l); });
  trail::log::configure(true, trail::log::level::info);
  for (int i = 0; i < 1000; ++i) trail::log::limited(trail::log::level::warn, "test", "poison again", {{"n", i}}, 5, 1);
  CHECK(lines.size() == 5);  // one burst, the rest held back
  // Another message is not held back by the first one's window.
  trail::log::limited(trail::log::level::warn, "test", "something else", {}, 5, 1);
  CHECK(lines.size() == 6);
  trail::log::set_sink_for_tests(nullptr);
  for (const auto& l : lines) {
    rapidjson::Document d;
    d.Parse(l.c_str());
    REQUIRE_FALSE(d.HasParseError());  // each line is one JSON object
    CHECK(d.HasMember("ts"));
    CHECK(std::string(d["level"].GetString()) == "warn");
    CHECK(std::string(d["component"].GetString()) == "test");
  }
}

TEST_CASE("the first line after a window reports what was suppressed", "[log]") {
  using namespace std::chrono_literals;
  std::vector<std::string> lines;
  trail::log::set_sink_for_tests([&](const std::string& l) { lines.push_back(l); });
  const auto t0 = std::chrono::steady_clock::now() + 1h;  // a window of its own
  for (int i = 0; i < 4; ++i) trail::log::limited_at(t0, trail::log::level::warn, "test", "burst", {}, 1, 10);
  REQUIRE(lines.size() == 1);
  trail::log::limited_at(t0 + 9s, trail::log::level::warn, "test", "burst", {}, 1, 10);
  CHECK(lines.size() == 1);  // still inside the window
  trail::log::limited_at(t0 + 10s, trail::log::level::warn, "test", "burst", {}, 1, 10);
  REQUIRE(lines.size() == 2);
  rapidjson::Document d;
  d.Parse(lines[1].c_str());
  REQUIRE(d.HasMember("suppressed"));
  CHECK(std::string(d["suppressed"].GetString()) == "4");  // 3 in the first burst + 1 at 9 s
  trail::log::set_sink_for_tests(nullptr);
}
