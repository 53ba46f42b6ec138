// Runs every case of the official CloudEvents JSON-format conformance suite
// (tests/conformance/, see ORIGIN.md) through Trail's envelope parser.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "decode/cloudevent.h"
#include "decode/event_decoder.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct suite_result {
  int cases = 0;
};

void run_file(const std::string& name, suite_result& result) {
  rapidjson::MemoryPoolAllocator<> pool, stack;
  trail::json_document doc(&pool, 1024, &stack);
  const std::string text = read_file(std::string(TRAIL_CONFORMANCE_DIR) + "/" + name);
  REQUIRE_FALSE(trail::parse_json(text, doc).has_value());
  const std::string default_type = doc["testType"].GetString();
  for (const auto& test : doc["tests"].GetArray()) {
    const std::string id = test["id"].GetString();
    const std::string type = test.HasMember("testType") ? test["testType"].GetString() : default_type;
    INFO("conformance case " << name << " / " << id);
    ++result.cases;
    if (type == "ValidSingleEvent" || type == "InvalidSingleEvent") {
      trail::ce_envelope env;
      auto r = trail::parse_structured_envelope(test["event"], env);
      if (type == "ValidSingleEvent") {
        CHECK_FALSE(r.has_value());
        CHECK(env.id == test["sampleId"].GetString());
      } else {
        CHECK(r.has_value());
      }
    } else {
      std::vector<trail::ce_envelope> envs;
      auto r = trail::parse_batch_envelopes(test["batch"], envs);
      if (type == "ValidBatch") {
        CHECK_FALSE(r.has_value());
        CHECK(envs.size() == test["batch"].Size());
      } else {
        CHECK(r.has_value());
      }
    }
  }
}

}  // namespace

TEST_CASE("every CloudEvents JSON conformance case", "[conformance]") {
  suite_result result;
  for (const char* f : {"valid-events.json", "invalid-events.json", "valid-batches.json", "invalid-batches.json"})
    run_file(f, result);
  CHECK(result.cases == 43);  // 10 + 25 + 5 + 3 in the copied suite
}

TEST_CASE("conformance time cases keep their instant", "[conformance]") {
  rapidjson::Document d;
  for (const char* t : {"2018-04-05T17:31:00Z", "2018-04-05T18:31:00+01:00", "2018-04-05T16:31:00-01:00",
                        "2018-04-05T17:31:00.000000000Z"}) {
    std::string ev = std::string(R"({"specversion":"1.0","id":"x","type":"t","source":"s","time":")") + t + "\"}";
    d.Parse(ev.c_str());
    trail::ce_envelope env;
    REQUIRE_FALSE(trail::parse_structured_envelope(d, env).has_value());
    CHECK(*env.time_us == 1522949460000000LL);
  }
}
