// trail-loadgen: publishes realistic audit events to audit.events at a fixed
// rate, a ramp, or as fast as possible, and follows audit.committed.> to
// measure publish -> committed latency and committed throughput.
//
// Threads: the main thread generates and publishes (JetStream async publish,
// a bounded window of unconfirmed messages); nats.c's delivery threads run
// the committed and dead-letter callbacks, which record into `tracker` under
// its mutex; a reporter thread prints a progress line and a CSV row each
// second. Latency is measured from the event's time (set when it is
// generated) to the moment its committed copy arrives here, so it includes
// the republish hop and is an upper bound of publish -> COMMIT.
//
// Exit status: 0 when every event this run published was seen committed
// exactly once and every invalid message dead-lettered (or --drain-timeout 0
// asked not to wait), 1 otherwise, 2 on bad usage or connection failure.

#include "common/time.h"
#include "ingest/jetstream.h"
#include "load-tests/loadgen/generator.h"
#include "load-tests/loadgen/latency_histogram.h"

#include <CLI/CLI.hpp>
#include <nats/nats.h>
#include <rapidjson/document.h>
#include <rapidjson/ostreamwrapper.h>
#include <rapidjson/prettywriter.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

namespace {

using namespace trail::loadgen;
using steady = std::chrono::steady_clock;

// Everything the subscribers learn, guarded by `mu`.
struct tracker {
  std::mutex mu;
  std::string request_prefix;  // "<run>-": in every request id and every dead letter of this run
  std::vector<uint32_t> sequence_of;  // per ordinal: committed sequence + 1, 0 = not seen
  uint64_t committed_unique = 0;
  uint64_t repeats_same_sequence = 0;  // the committed stream's documented at-least-once repeat
  uint64_t duplicates = 0;             // the same event committed under two sequences: a second row
  uint64_t foreign = 0;                // committed events of other publishers (ignored)
  uint64_t unparsable = 0;
  uint64_t dead_lettered = 0;
  latency_histogram interval;  // since the last progress line
  latency_histogram overall;

  void committed(std::string_view body, int64_t now_us) {
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    if (d.HasParseError() || !d.IsObject()) {
      std::lock_guard lock(mu);
      ++unparsable;
      return;
    }
    auto data = d.FindMember("data");
    auto time = d.FindMember("time");
    auto seq = d.FindMember("sequence");
    if (data == d.MemberEnd() || !data->value.IsObject() || time == d.MemberEnd() || !time->value.IsString() ||
        seq == d.MemberEnd() || !seq->value.IsString()) {
      std::lock_guard lock(mu);
      ++unparsable;
      return;
    }
    auto rid = data->value.FindMember("request_id");
    std::string_view request =
        rid != data->value.MemberEnd() && rid->value.IsString()
            ? std::string_view(rid->value.GetString(), rid->value.GetStringLength())
            : std::string_view();
    if (request.substr(0, request_prefix.size()) != request_prefix) {
      std::lock_guard lock(mu);
      ++foreign;
      return;
    }
    uint64_t ordinal = 0;
    uint64_t sequence = 0;
    const auto ord_text = request.substr(request_prefix.size());
    const auto seq_text = std::string_view(seq->value.GetString(), seq->value.GetStringLength());
    const auto occurred = trail::parse_rfc3339_us({time->value.GetString(), time->value.GetStringLength()});
    if (std::from_chars(ord_text.data(), ord_text.data() + ord_text.size(), ordinal).ec != std::errc() ||
        std::from_chars(seq_text.data(), seq_text.data() + seq_text.size(), sequence).ec != std::errc() ||
        !occurred) {
      std::lock_guard lock(mu);
      ++unparsable;
      return;
    }
    const uint64_t latency = now_us > *occurred ? static_cast<uint64_t>(now_us - *occurred) : 0;
    const auto tag = static_cast<uint32_t>(sequence + 1);
    std::lock_guard lock(mu);
    if (ordinal >= sequence_of.size()) sequence_of.resize(std::max<size_t>(ordinal + 1, sequence_of.size() * 2), 0);
    uint32_t& slot = sequence_of[ordinal];
    if (slot == 0) {
      slot = tag;
      ++committed_unique;
      interval.record(latency);
      overall.record(latency);
    } else if (slot == tag) {
      ++repeats_same_sequence;
    } else {
      ++duplicates;
    }
  }

  void dead_letter(std::string_view body) {
    std::lock_guard lock(mu);
    if (body.find(request_prefix) != std::string_view::npos) ++dead_lettered;
  }
};

void on_committed(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  const int64_t now = trail::now_unix_us();
  static_cast<tracker*>(closure)->committed({natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))},
                                            now);
  natsMsg_Destroy(msg);
}

void on_dead_letter(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  static_cast<tracker*>(closure)->dead_letter({natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))});
  natsMsg_Destroy(msg);
}

// PubAck failures come back here (a nats.c thread); the main thread publishes
// them again.
struct publish_retries {
  std::mutex mu;
  std::deque<natsMsg*> msgs;
  std::atomic<uint64_t> failed{0};
};

void on_pub_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* r = static_cast<publish_retries*>(closure);
  if (pa) {
    natsMsg_Destroy(msg);
    return;
  }
  r->failed.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(r->mu);
  r->msgs.push_back(msg);
}

double ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

std::string random_run_id() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937_64 rng(static_cast<uint64_t>(trail::now_unix_us()) ^ std::random_device{}());
  std::string id = "r";
  for (int i = 0; i < 7; ++i) id.push_back(kAlphabet[rng() % 36]);
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trail-loadgen: publish audit events to Trail and measure publish -> committed latency"};
  std::string url = std::getenv("TRAIL_NATS_URL") ? std::getenv("TRAIL_NATS_URL") : "nats://127.0.0.1:4222";
  std::string subject = "audit.events", committed_subject = "audit.committed.>", dlq_subject = "audit.dlq";
  double rate = 0, ramp_to = -1, duration_s = 0, zipf = 1.0, changes = 0.3, invalid = 0.0, drain_timeout = 120;
  uint64_t count = 0, seed = 0;
  int tenants = 100, batch_size = 10, window = 4096;
  uint64_t max_in_flight = 0;
  std::string mode_text = "structured", size_text = "medium", run_id, json_path, csv_path;
  bool no_msg_id = false, quiet = false;
  app.add_option("--url", url, "NATS URL (default $TRAIL_NATS_URL or nats://127.0.0.1:4222)");
  app.add_option("--rate", rate, "events per second; 0 = as fast as possible")->check(CLI::NonNegativeNumber);
  app.add_option("--ramp-to", ramp_to, "ramp linearly from --rate to this rate over --duration")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--duration", duration_s, "seconds to publish for")->check(CLI::NonNegativeNumber);
  app.add_option("--count", count, "events to publish (the first of --duration/--count to be reached stops)");
  app.add_option("--tenants", tenants, "number of tenants")->check(CLI::Range(1, 1000000));
  app.add_option("--zipf", zipf, "Zipf exponent of the tenant distribution; 0 = uniform")->check(CLI::Range(0.0, 5.0));
  app.add_option("--size", size_text, "size profile: small (~0.5 KB), medium (~1 KB), large (~3 KB)");
  app.add_option("--changes-share", changes, "share of events with before/after values")->check(CLI::Range(0.0, 1.0));
  app.add_option("--mode", mode_text, "structured, binary, batch, bare or mixed");
  app.add_option("--batch-size", batch_size, "events per batch message")->check(CLI::Range(1, 1000));
  app.add_option("--invalid-share", invalid, "share of messages that are invalid (dead-lettered)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--no-msg-id", no_msg_id, "do not set Nats-Msg-Id (no broker-side deduplication)");
  app.add_option("--max-in-flight", max_in_flight,
                 "closed loop: publish only while fewer events than this are published and not yet seen "
                 "committed (finds the sustainable rate; 0 = open loop)");
  app.add_option("--window", window, "unconfirmed publishes allowed at once")->check(CLI::Range(1, 1 << 20));
  app.add_option("--drain-timeout", drain_timeout, "after publishing, seconds to wait for commits; 0 = do not wait")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--subject", subject, "subject to publish to");
  app.add_option("--committed-subject", committed_subject, "subject of committed events");
  app.add_option("--dlq-subject", dlq_subject, "dead-letter subject");
  app.add_option("--run-id", run_id, "run tag ([a-z0-9]+) in every event id; random by default");
  app.add_option("--seed", seed, "random seed (default: from the run id)");
  app.add_option("--json", json_path, "write a JSON summary here");
  app.add_option("--csv", csv_path, "write a per-second CSV time series here");
  app.add_flag("-q,--quiet", quiet, "no progress line");
  CLI11_PARSE(app, argc, argv);

  generator_options gopts;
  if (!parse_mode(mode_text, gopts.send_mode) || !parse_size_profile(size_text, gopts.size)) {
    std::cerr << "trail-loadgen: --mode is structured|binary|batch|bare|mixed, --size is small|medium|large\n";
    return 2;
  }
  if (duration_s <= 0 && count == 0) {
    std::cerr << "trail-loadgen: give --duration or --count\n";
    return 2;
  }
  if (ramp_to >= 0 && (duration_s <= 0 || rate <= 0)) {
    std::cerr << "trail-loadgen: --ramp-to needs --rate > 0 and --duration\n";
    return 2;
  }
  if (run_id.empty()) run_id = random_run_id();
  if (run_id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos) {
    std::cerr << "trail-loadgen: --run-id must be [a-z0-9]+\n";
    return 2;
  }
  gopts.run_id = run_id;
  gopts.tenants = tenants;
  gopts.zipf_s = zipf;
  gopts.changes_share = changes;
  gopts.batch_size = batch_size;
  gopts.invalid_share = invalid;
  gopts.seed = seed ? seed : std::hash<std::string>{}(run_id);
  event_generator gen(gopts);

  tracker track;
  track.request_prefix = gen.request_prefix();
  track.sequence_of.resize(count ? count + static_cast<uint64_t>(batch_size) : 1 << 20, 0);

  // Two connections: subscribers are not queued behind the publisher's traffic.
  natsOptions* opts = nullptr;
  natsOptions_Create(&opts);
  trail::set_servers(opts, url);  // one URL or a comma-separated list
  natsOptions_SetMaxReconnect(opts, -1);
  natsOptions_SetReconnectWait(opts, 250);
  natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024);
  natsConnection* sub_nc = nullptr;
  natsConnection* pub_nc = nullptr;
  if (natsConnection_Connect(&sub_nc, opts) != NATS_OK || natsConnection_Connect(&pub_nc, opts) != NATS_OK) {
    std::cerr << "trail-loadgen: cannot connect to " << url << ": " << nats_GetLastError(nullptr) << "\n";
    return 2;
  }
  natsSubscription* committed_sub = nullptr;
  natsSubscription* dlq_sub = nullptr;
  if (natsConnection_Subscribe(&committed_sub, sub_nc, committed_subject.c_str(), on_committed, &track) != NATS_OK ||
      natsConnection_Subscribe(&dlq_sub, sub_nc, dlq_subject.c_str(), on_dead_letter, &track) != NATS_OK) {
    std::cerr << "trail-loadgen: cannot subscribe: " << nats_GetLastError(nullptr) << "\n";
    return 2;
  }
  natsSubscription_SetPendingLimits(committed_sub, -1, -1);
  natsSubscription_SetPendingLimits(dlq_sub, -1, -1);
  natsConnection_Flush(sub_nc);

  publish_retries retries;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = window;
  jo.PublishAsync.AckHandler = on_pub_ack;
  jo.PublishAsync.AckHandlerClosure = &retries;
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, pub_nc, &jo) != NATS_OK) {
    std::cerr << "trail-loadgen: no JetStream context: " << nats_GetLastError(nullptr) << "\n";
    return 2;
  }

  std::ofstream csv;
  if (!csv_path.empty()) {
    csv.open(csv_path);
    if (!csv) {
      std::cerr << "trail-loadgen: cannot write " << csv_path << "\n";
      return 2;
    }
    csv << "elapsed_s,target_eps,published_eps,committed_eps,in_flight,p50_ms,p90_ms,p99_ms,max_ms,dead_lettered\n";
  }

  std::atomic<uint64_t> published_events{0};
  std::atomic<bool> publishing{true}, stop_reporter{false};
  const auto started = steady::now();
  const auto target_rate = [&](double t) {
    if (rate <= 0) return 0.0;
    if (ramp_to < 0) return rate;
    return rate + (ramp_to - rate) * std::min(1.0, t / duration_s);
  };
  // Events due by time t: the integral of the target rate.
  const auto due_by = [&](double t) {
    if (ramp_to < 0) return rate * t;
    const double tt = std::min(t, duration_s);
    return rate * tt + (ramp_to - rate) * tt * tt / (2 * duration_s);
  };

  latency_histogram per_second;
  std::mutex reporter_mu;
  std::condition_variable reporter_cv;
  std::thread reporter([&] {
    uint64_t last_pub = 0, last_com = 0;
    for (int tick = 1;; ++tick) {
      bool last;
      {
        std::unique_lock lock(reporter_mu);
        last = reporter_cv.wait_until(lock, started + std::chrono::seconds(tick), [&] { return stop_reporter.load(); });
      }
      uint64_t com, dlq;
      {
        std::lock_guard lock(track.mu);
        per_second = track.interval;
        track.interval.reset();
        com = track.committed_unique;
        dlq = track.dead_lettered;
      }
      const uint64_t pub = published_events.load();
      // The run's last part-second gets a row of its own (its counts, at its
      // fractional time), so the rows add up to the whole run.
      if (last && pub == last_pub && com == last_com) return;
      const double at = last ? std::chrono::duration<double>(steady::now() - started).count() : tick;
      const uint64_t in_flight = pub > com ? pub - com : 0;
      const double target = publishing ? target_rate(tick - 0.5) : 0.0;
      if (csv)
        csv << at << ',' << target << ',' << pub - last_pub << ',' << com - last_com << ',' << in_flight << ','
            << ms(per_second.percentile(0.5)) << ',' << ms(per_second.percentile(0.9)) << ','
            << ms(per_second.percentile(0.99)) << ',' << ms(per_second.max()) << ',' << dlq << '\n'
            << std::flush;
      if (!quiet)
        std::fprintf(stderr,
                     "[%4ds] published %8llu ev/s  committed %8llu ev/s  in flight %8llu  latency p50 %7.1f ms  "
                     "p99 %7.1f ms  max %7.1f ms  dead-lettered %llu\n",
                     tick, static_cast<unsigned long long>(pub - last_pub),
                     static_cast<unsigned long long>(com - last_com), static_cast<unsigned long long>(in_flight),
                     ms(per_second.percentile(0.5)), ms(per_second.percentile(0.99)), ms(per_second.max()),
                     static_cast<unsigned long long>(dlq));
      last_pub = pub;
      last_com = com;
      if (last) return;
    }
  });

  // ---- publish ----
  jsPubOptions po;
  uint64_t sent = 0, sent_msgs = 0, sent_invalid = 0;
  const auto publish = [&](natsMsg* msg, const char* msg_id) {
    jsPubOptions_Init(&po);
    if (msg_id && !no_msg_id) po.MsgId = msg_id;
    natsStatus s;
    while ((s = js_PublishMsgAsync(js, &msg, &po)) == NATS_TIMEOUT) {
    }  // the window is full: StallWait passed; try again
    if (s != NATS_OK) {
      std::cerr << "trail-loadgen: publish failed: " << natsStatus_GetText(s) << "\n";
      natsMsg_Destroy(msg);
      return false;
    }
    return true;
  };
  bool failed = false;
  double elapsed = 0;
  while (!failed) {
    elapsed = std::chrono::duration<double>(steady::now() - started).count();
    if ((duration_s > 0 && elapsed >= duration_s) || (count > 0 && sent >= count)) break;
    {
      std::deque<natsMsg*> again;
      {
        std::lock_guard lock(retries.mu);
        again.swap(retries.msgs);
      }
      for (natsMsg* m : again) failed = !publish(m, nullptr) || failed;  // Nats-Msg-Id is already a header
    }
    if (rate > 0 && static_cast<double>(sent) >= due_by(elapsed)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    if (max_in_flight > 0) {
      uint64_t committed;
      {
        std::lock_guard lock(track.mu);
        committed = track.committed_unique;
      }
      if (sent >= committed + max_in_flight) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
    }
    outgoing o = gen.next(trail::now_unix_us());
    natsMsg* msg = nullptr;
    natsMsg_Create(&msg, subject.c_str(), nullptr, o.body.data(), static_cast<int>(o.body.size()));
    for (const auto& [k, v] : o.headers) natsMsgHeader_Set(msg, k.c_str(), v.c_str());
    if (!publish(msg, o.msg_id.c_str())) {
      failed = true;
      break;
    }
    sent += o.events;
    ++sent_msgs;
    if (o.invalid) ++sent_invalid;
    published_events.store(sent, std::memory_order_relaxed);
  }
  // Wait for every PubAck, publishing refused ones again.
  for (;;) {
    jsPubOptions_Init(&po);
    po.MaxWait = 1000;
    const natsStatus s = js_PublishAsyncComplete(js, &po);
    std::deque<natsMsg*> again;
    {
      std::lock_guard lock(retries.mu);
      again.swap(retries.msgs);
    }
    for (natsMsg* m : again) failed = !publish(m, nullptr) || failed;
    if (s == NATS_OK && again.empty()) break;
    if (failed) break;
  }
  publishing = false;
  const double publish_seconds = std::chrono::duration<double>(steady::now() - started).count();

  // ---- wait for the commits ----
  const auto drain_deadline = steady::now() + std::chrono::duration<double>(drain_timeout);
  bool complete = false;
  while (drain_timeout > 0 && steady::now() < drain_deadline) {
    {
      std::lock_guard lock(track.mu);
      complete = track.committed_unique >= sent && track.dead_lettered >= sent_invalid;
    }
    if (complete) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double total_seconds = std::chrono::duration<double>(steady::now() - started).count();
  stop_reporter = true;
  reporter_cv.notify_all();
  reporter.join();

  int64_t dropped = 0;
  natsSubscription_GetDropped(committed_sub, &dropped);
  natsSubscription_Unsubscribe(committed_sub);
  natsSubscription_Unsubscribe(dlq_sub);
  natsSubscription_Destroy(committed_sub);
  natsSubscription_Destroy(dlq_sub);

  std::lock_guard lock(track.mu);
  const uint64_t missing = sent > track.committed_unique ? sent - track.committed_unique : 0;
  const bool ok = !failed && track.duplicates == 0 && dropped == 0 &&
                  (drain_timeout == 0 || (missing == 0 && track.dead_lettered == sent_invalid));
  const auto& h = track.overall;
  const double commit_seconds = std::max(1e-9, total_seconds);

  std::fprintf(stderr,
               "trail-loadgen run %s: published %llu events in %llu messages (%llu invalid) in %.2f s (%.0f ev/s); "
               "committed %llu (%.0f ev/s over %.2f s), missing %llu, duplicates %llu, repeats %llu, "
               "dead-lettered %llu; latency p50 %.1f ms p90 %.1f ms p99 %.1f ms max %.1f ms%s\n",
               run_id.c_str(), static_cast<unsigned long long>(sent), static_cast<unsigned long long>(sent_msgs),
               static_cast<unsigned long long>(sent_invalid), publish_seconds,
               static_cast<double>(sent) / std::max(1e-9, publish_seconds),
               static_cast<unsigned long long>(track.committed_unique),
               static_cast<double>(track.committed_unique) / commit_seconds, total_seconds,
               static_cast<unsigned long long>(missing), static_cast<unsigned long long>(track.duplicates),
               static_cast<unsigned long long>(track.repeats_same_sequence),
               static_cast<unsigned long long>(track.dead_lettered), ms(h.percentile(0.5)), ms(h.percentile(0.9)),
               ms(h.percentile(0.99)), ms(h.max()), ok ? "" : "  [INCOMPLETE]");

  if (!json_path.empty()) {
    std::ofstream out(json_path);
    rapidjson::OStreamWrapper os(out);
    rapidjson::PrettyWriter<rapidjson::OStreamWrapper> w(os);
    w.StartObject();
    w.Key("run_id"); w.String(run_id.c_str());
    w.Key("config");
    w.StartObject();
    w.Key("rate"); w.Double(rate);
    w.Key("ramp_to"); w.Double(ramp_to);
    w.Key("duration_s"); w.Double(duration_s);
    w.Key("count"); w.Uint64(count);
    w.Key("tenants"); w.Int(tenants);
    w.Key("zipf"); w.Double(zipf);
    w.Key("size"); w.String(size_text.c_str());
    w.Key("changes_share"); w.Double(changes);
    w.Key("mode"); w.String(mode_text.c_str());
    w.Key("batch_size"); w.Int(batch_size);
    w.Key("invalid_share"); w.Double(invalid);
    w.Key("msg_id"); w.Bool(!no_msg_id);
    w.Key("max_in_flight"); w.Uint64(max_in_flight);
    w.EndObject();
    w.Key("published_events"); w.Uint64(sent);
    w.Key("published_messages"); w.Uint64(sent_msgs);
    w.Key("invalid_messages"); w.Uint64(sent_invalid);
    w.Key("publish_seconds"); w.Double(publish_seconds);
    w.Key("publish_events_per_s"); w.Double(static_cast<double>(sent) / std::max(1e-9, publish_seconds));
    w.Key("publish_retries"); w.Uint64(retries.failed.load());
    w.Key("committed_events"); w.Uint64(track.committed_unique);
    w.Key("committed_events_per_s"); w.Double(static_cast<double>(track.committed_unique) / commit_seconds);
    w.Key("elapsed_seconds"); w.Double(total_seconds);
    w.Key("missing"); w.Uint64(missing);
    w.Key("duplicates"); w.Uint64(track.duplicates);
    w.Key("repeats_same_sequence"); w.Uint64(track.repeats_same_sequence);
    w.Key("dead_lettered"); w.Uint64(track.dead_lettered);
    w.Key("dropped_by_subscriber"); w.Int64(dropped);
    w.Key("foreign_committed"); w.Uint64(track.foreign);
    w.Key("latency_ms");
    w.StartObject();
    w.Key("p50"); w.Double(ms(h.percentile(0.5)));
    w.Key("p90"); w.Double(ms(h.percentile(0.9)));
    w.Key("p99"); w.Double(ms(h.percentile(0.99)));
    w.Key("max"); w.Double(ms(h.max()));
    w.Key("mean"); w.Double(h.mean() / 1000.0);
    w.EndObject();
    w.Key("complete"); w.Bool(ok);
    w.EndObject();
    out << "\n";
  }

  jsCtx_Destroy(js);
  natsConnection_Destroy(pub_nc);
  natsConnection_Destroy(sub_nc);
  natsOptions_Destroy(opts);
  return ok ? 0 : 1;
}
