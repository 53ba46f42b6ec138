// trail-loadgen's building blocks: its events are what Trail accepts (and its
// invalid messages what Trail refuses), tenants follow the requested skew, and
// the latency histogram's percentiles stay within their stated error.
#include <catch2/catch.hpp>

#include "tests/unit/defaults.h"
#include "common/record.h"
#include "decode/event_decoder.h"
#include "common/time.h"
#include "load-tests/loadgen/generator.h"
#include "load-tests/loadgen/latency_histogram.h"

#include <algorithm>
#include <map>
#include <set>

using namespace trail::loadgen;

namespace {

struct decoded {
  trail::decode_outcome outcome;
  std::string body;
  trail::inbound_message in;
};

void decode(const outgoing& o, decoded& d) {
  d.body = o.body;
  d.in.data = d.body;
  d.in.headers = o.headers;
  d.in.stream_seq = 7;
  d.in.stream_time_us = trail::now_unix_us();
  trail::event_decoder dec(trail::testing::default_decoder_limits());
  d.outcome = dec.decode(d.in.view());
}

}  // namespace

TEST_CASE("loadgen: every mode and size makes events Trail accepts, with the ordinals it claims") {
  const int64_t now = 1795000000123456;
  for (const char* m : {"structured", "binary", "batch", "bare", "mixed"}) {
    for (const char* size : {"small", "medium", "large"}) {
      generator_options g;
      g.run_id = "t1";
      g.tenants = 5;
      g.changes_share = 0.5;
      g.batch_size = 4;
      REQUIRE(parse_mode(m, g.send_mode));
      REQUIRE(parse_size_profile(size, g.size));
      event_generator gen(g);
      uint64_t expected_ordinal = 0;
      for (int i = 0; i < 40; ++i) {
        const outgoing o = gen.next(now);
        REQUIRE_FALSE(o.invalid);
        REQUIRE(o.first_ordinal == expected_ordinal);
        expected_ordinal += o.events;
        decoded d;
        decode(o, d);
        INFO("mode " << m << " size " << size << " body " << o.body);
        REQUIRE_FALSE(d.outcome.rejected.has_value());
        REQUIRE(d.outcome.events.size() == o.events);
        for (uint32_t k = 0; k < o.events; ++k) {
          const auto& e = d.outcome.events[k];
          CHECK(e.occurred_at_us == now);
          CHECK(e.get(trail::event_field::tenant_id).rfind("lg-tenant-", 0) == 0);
          CHECK(e.get(trail::event_field::request_id) == "t1-" + std::to_string(o.first_ordinal + k));
        }
      }
    }
  }
}

TEST_CASE("loadgen: the size profiles differ in size, and changes appear at the requested share") {
  auto average = [](size_profile p, double changes, int& with_changes) {
    generator_options g;
    g.run_id = "t2";
    g.size = p;
    g.changes_share = changes;
    event_generator gen(g);
    size_t bytes = 0;
    with_changes = 0;
    for (int i = 0; i < 1000; ++i) {
      const auto o = gen.next(0);
      bytes += o.body.size();
      with_changes += o.body.find("\"changes\"") != std::string::npos;
    }
    return bytes / 1000;
  };
  int none = 0, half = 0, all = 0, ignored = 0;
  const size_t small = average(size_profile::small, 0.0, none);
  const size_t medium = average(size_profile::medium, 0.5, half);
  const size_t large = average(size_profile::large, 1.0, all);
  CHECK(small < medium);
  CHECK(medium < large);
  CHECK(large > 2 * average(size_profile::medium, 0.0, ignored));
  CHECK(none == 0);
  CHECK(all == 1000);
  CHECK(half > 400);
  CHECK(half < 600);
}

TEST_CASE("loadgen: invalid messages are refused by Trail and carry the run tag") {
  generator_options g;
  g.run_id = "t3";
  g.invalid_share = 1.0;
  event_generator gen(g);
  std::set<std::string> codes;
  for (int i = 0; i < 200; ++i) {
    const outgoing o = gen.next(1795000000000000);
    REQUIRE(o.invalid);
    REQUIRE(o.events == 0);
    decoded d;
    decode(o, d);
    REQUIRE(d.outcome.rejected.has_value());
    codes.insert(trail::to_string(d.outcome.rejected->code));
    bool tagged = o.body.find("t3-") != std::string::npos;
    for (const auto& [k, v] : o.headers) tagged = tagged || v.find("t3-") != std::string::npos;
    CHECK(tagged);
  }
  CHECK(codes == std::set<std::string>{"malformed_json", "payload_invalid", "envelope_invalid"});
}

TEST_CASE("loadgen: Zipf skew puts the first tenant ahead, 0 is uniform") {
  std::mt19937_64 rng(3);
  zipf_sampler skewed(100, 1.2), uniform(100, 0.0);
  std::map<int, int> s, u;
  for (int i = 0; i < 100000; ++i) {
    const int a = skewed(rng), b = uniform(rng);
    REQUIRE(a >= 0);
    REQUIRE(a < 100);
    REQUIRE(b >= 0);
    REQUIRE(b < 100);
    ++s[a];
    ++u[b];
  }
  // P(0) for s = 1.2 over 100 tenants is 1 / H(100, 1.2) = 0.2775; P(1) = P(0) / 2^1.2.
  CHECK(s[0] > 26500);
  CHECK(s[0] < 29000);
  CHECK(s[0] > 2 * s[1]);
  CHECK(s[0] < 2.6 * s[1]);
  for (const auto& [k, n] : u) {
    CHECK(n > 800);
    CHECK(n < 1200);
  }
}

TEST_CASE("latency histogram: percentiles within 1/64 above the exact value") {
  latency_histogram h;
  std::vector<uint64_t> values;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 50000; ++i) {
    const uint64_t v = static_cast<uint64_t>(std::exp(std::uniform_real_distribution<double>(0, 16)(rng)));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const auto rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * values.size())));
    const uint64_t exact = values[rank - 1];
    const uint64_t got = h.percentile(q);
    INFO("q " << q << " exact " << exact << " got " << got);
    CHECK(got >= exact);
    CHECK(static_cast<double>(got) <= static_cast<double>(exact) * (1.0 + 1.0 / 64) + 1);
  }
  CHECK(h.max() == values.back());
  CHECK(h.min() == values.front());
  CHECK(h.count() == values.size());

  latency_histogram a, b;
  a.record(10);
  b.record(1000000);
  a.merge(b);
  CHECK(a.count() == 2);
  CHECK(a.percentile(0.5) == 10);
  CHECK(a.percentile(1.0) == 1000000);
  CHECK(latency_histogram().percentile(0.5) == 0);
}

TEST_CASE("latency histogram: bucket bounds are contiguous") {
  for (uint64_t v : {0ull, 1ull, 63ull, 64ull, 65ull, 127ull, 128ull, 129ull, 1000ull, 123456789ull, (1ull << 40) + 5}) {
    const size_t i = latency_histogram::index(v);
    CHECK(latency_histogram::upper_bound(i) >= v);
    if (i > 0) CHECK(latency_histogram::upper_bound(i - 1) < v);
  }
}
