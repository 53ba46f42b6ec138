// A message is settled once, by the worst outcome of its events, when the last
// reference to it goes (common/record.h, message_ref).
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "common/record.h"

using trail::event_outcome;
using trail::inbound_message;
using trail::message_ref;

namespace {

struct recording_settlement final : trail::message_settlement {
  std::vector<std::pair<inbound_message*, event_outcome>> settled;
  void settle_message(inbound_message* m, event_outcome merged) override { settled.emplace_back(m, merged); }
};

std::vector<message_ref> refs_for(inbound_message& m, recording_settlement& s, uint32_t n) {
  m.refs.store(n);
  std::vector<message_ref> out;
  for (uint32_t i = 0; i < n; ++i) out.push_back(message_ref::adopt(&m, &s));
  return out;
}

}  // namespace

TEST_CASE("message_ref: the message is settled once, when its last event is, with the worst outcome", "[settle]") {
  recording_settlement s;
  inbound_message m;
  auto refs = refs_for(m, s, 3);
  refs[0].settle(event_outcome::committed);
  refs[2].settle(event_outcome::dead_lettered);
  CHECK(s.settled.empty());
  refs[1].settle(event_outcome::committed);
  REQUIRE(s.settled.size() == 1);
  CHECK(s.settled[0].first == &m);
  CHECK(s.settled[0].second == event_outcome::dead_lettered);
  refs.clear();  // settled references do nothing more when they go
  CHECK(s.settled.size() == 1);
}

TEST_CASE("message_ref: an event dropped unsettled hands its message back (retry beats every other outcome)", "[settle]") {
  recording_settlement s;
  inbound_message m;
  {
    auto refs = refs_for(m, s, 3);
    refs[0].settle(event_outcome::dead_lettered);
    refs[2].settle(event_outcome::committed);
    // refs[1] is dropped here: an abandoned write, an actor that exited
  }
  REQUIRE(s.settled.size() == 1);
  CHECK(s.settled[0].second == event_outcome::retry);
}

TEST_CASE("message_ref: a copy is a reference of its own - the message waits for both", "[settle]") {
  recording_settlement s;
  inbound_message m;
  auto refs = refs_for(m, s, 1);
  message_ref copy = refs[0];
  message_ref moved = std::move(refs[0]);
  CHECK(m.refs.load() == 2);
  moved.settle(event_outcome::committed);
  CHECK(s.settled.empty());
  copy.settle(event_outcome::committed);
  REQUIRE(s.settled.size() == 1);
  CHECK(s.settled[0].second == event_outcome::committed);
}

TEST_CASE("message_ref: settled from many threads, exactly once with the merged outcome", "[settle]") {
  for (int round = 0; round < 50; ++round) {
    recording_settlement s;
    inbound_message m;
    auto refs = refs_for(m, s, 64);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (size_t i = static_cast<size_t>(t); i < refs.size(); i += 4)
          refs[i].settle(i == 37 ? event_outcome::dead_lettered : event_outcome::committed);
      });
    for (auto& t : threads) t.join();
    REQUIRE(s.settled.size() == 1);
    CHECK(s.settled[0].second == event_outcome::dead_lettered);
  }
}

TEST_CASE("message_ref: an unmanaged reference settles nothing", "[settle]") {
  inbound_message m;
  {
    message_ref r = message_ref::unmanaged(&m);
    CHECK(r.get() == &m);
    r.settle(event_outcome::committed);
  }
  CHECK(m.refs.load() == 0);
}
