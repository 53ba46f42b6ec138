// Audit-event generator of trail-loadgen: realistic payloads in the four ingest
// modes, tenants drawn with Zipf skew, an optional share of invalid messages.
//
// Every event carries data.request_id "<run>-<ordinal>" and a CloudEvents
// time (or data.occurred_at in bare mode) equal to the moment it was made, so
// that a subscriber of audit.committed.> can match each committed event to its
// ordinal and measure publish-to-commit latency. Invalid messages carry the run
// tag too, so that their dead letters can be counted. Not thread-safe: one
// generator per publishing thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace trail::loadgen {

enum class mode { structured, binary, batch, bare, mixed };
enum class size_profile { small, medium, large };

bool parse_mode(const std::string& text, mode& out);
bool parse_size_profile(const std::string& text, size_profile& out);

struct generator_options {
  std::string run_id;          // [A-Za-z0-9]+, unique per run
  int tenants = 100;
  double zipf_s = 1.0;         // 0: uniform
  size_profile size = size_profile::medium;
  double changes_share = 0.3;  // share of events with before/after values
  mode send_mode = mode::structured;
  int batch_size = 10;         // events per batch message
  double invalid_share = 0.0;  // share of messages that must be dead-lettered
  uint64_t seed = 1;
};

// One NATS message to publish.
struct outgoing {
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string msg_id;            // a stable id for Nats-Msg-Id
  uint64_t first_ordinal = 0;    // ordinals [first_ordinal, first_ordinal + events)
  uint32_t events = 0;           // valid events inside (0 for an invalid message)
  bool invalid = false;
  mode sent_as = mode::structured;
};

// Draws 0..n-1 with P(k) proportional to 1/(k+1)^s.
class zipf_sampler {
 public:
  zipf_sampler(int n, double s);
  int operator()(std::mt19937_64& rng) const;

 private:
  std::vector<double> cdf_;
};

class event_generator {
 public:
  explicit event_generator(generator_options opts);

  // The next message; `now_us` becomes the events' time.
  outgoing next(int64_t now_us);

  // "<run>-" : the prefix of every request_id this generator makes.
  const std::string& request_prefix() const { return request_prefix_; }
  std::string tenant_name(int index) const;

 private:
  void payload(std::string& out, uint64_t ordinal, const std::string& tenant, bool tenant_inside, int64_t now_us,
               bool occurred_inside);
  std::string structured_event(uint64_t ordinal, const std::string& tenant, int64_t now_us);
  outgoing invalid_message(int64_t now_us);

  generator_options opts_;
  std::string request_prefix_;
  std::string source_;
  zipf_sampler tenants_;
  std::mt19937_64 rng_;
  uint64_t next_ordinal_ = 0;
  uint64_t messages_ = 0;
};

}  // namespace trail::loadgen
