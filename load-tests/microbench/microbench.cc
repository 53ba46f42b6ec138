// trail-microbench: the per-event CPU of Trail's hot path, without servers.
//
// Makes --distinct messages with trail-loadgen's generator (not timed), then
// takes --count events on one thread through the real code of each step:
//   decode   event_decoder: content mode, CloudEvents envelope, payload
//            validation, into the typed audit_event, as a validator actor does;
//   route    the split by writer lane and the batcher's grouping by tenant
//            into transactions of pg.txn_max_events (tenant_groups);
//   encode   the writer's COPY rows for audit.event_ids and audit.events
//            (render_rows), with per-tenant sequences and chain links
//            (chain_event; --no-chain writes zero links), and the
//            finalizer's committed CloudEvent (render_committed_event).
// and reports ns per event (--stage decode stops after the first step). Use
// it to see a regression in seconds, without the 20-minute bench:
//
//   build/bin/trail-microbench                       # 1,000,000 events, mixed modes, medium size
//   build/bin/trail-microbench --count 5000000 --mode structured --size large
//
// `make test` runs it with a tiny count as a smoke test (it fails if any
// generated event is refused).
#include <CLI/CLI.hpp>
#include <openssl/sha.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <unordered_map>

#include "app/options.h"
#include "actors/batching.h"
#include "decode/event_decoder.h"
#include "decode/canonical.h"
#include "decode/event_json.h"
#include "sinks/event_rows.h"
#include "sinks/sink.h"
#include "load-tests/loadgen/generator.h"

int main(int argc, char** argv) {
  CLI::App app{"trail-microbench: ns per event of Trail's decode path, no servers"};
  uint64_t count = 1000000;
  int distinct = 10000;
  std::string mode_text = "mixed", size_text = "medium", stage = "full";
  double changes = 0.3;
  app.add_option("--count", count, "events to decode (timed)");
  app.add_option("--distinct", distinct, "distinct messages generated beforehand and cycled through");
  app.add_option("--mode", mode_text, "structured|binary|batch|bare|mixed");
  app.add_option("--size", size_text, "small|medium|large");
  app.add_option("--changes-share", changes, "share of events with before/after values");
  app.add_option("--stage", stage, "full (decode + route + COPY-encode) or decode")->check(CLI::IsMember({"full", "decode"}));
  bool chain = true;
  app.add_flag("--chain,!--no-chain", chain,
               "hash each event's canonical bytes into its tenant's chain, as the writers do (--no-chain: the "
               "links are written as zeros, to measure what the chain costs)");
  CLI11_PARSE(app, argc, argv);

  trail::loadgen::generator_options opts;
  opts.run_id = "micro";
  opts.tenants = 1000;
  opts.zipf_s = 1.1;
  opts.changes_share = changes;
  if (!trail::loadgen::parse_mode(mode_text, opts.send_mode) || !trail::loadgen::parse_size_profile(size_text, opts.size)) {
    std::fprintf(stderr, "trail-microbench: unknown --mode or --size\n");
    return 2;
  }
  trail::loadgen::event_generator gen(opts);

  // The messages as the fetch thread would hand them over.
  struct prepared {
    std::string body;
    trail::inbound_message in;
  };
  std::vector<prepared> msgs(static_cast<size_t>(distinct));
  uint64_t bytes = 0;
  const int64_t t0_us = 1795000000000000;
  for (int i = 0; i < distinct; ++i) {
    auto o = gen.next(t0_us + i);
    auto& p = msgs[static_cast<size_t>(i)];
    p.body = std::move(o.body);
    p.in.data = p.body;
    p.in.headers = std::move(o.headers);
    p.in.header_wire_bytes = trail::header_wire_size(p.in.headers);
    p.in.stream_seq = static_cast<uint64_t>(i) + 1;
    p.in.stream_time_us = t0_us + i;
    bytes += p.body.size() + p.in.header_wire_bytes;
  }

  // The limits traild runs with at the configuration's defaults.
  const trail::pipeline_options opt = trail::pipeline_options_of(trail::load_config("", {}), 1 << 20);
  trail::event_decoder decoder(opt.decoding);
  const bool full = stage == "full";
  constexpr size_t kLanes = 2, kChunk = 64;  // pg.writers and the fetch thread's chunk, at their defaults
  const trail::batcher_limits limits{opt.txn_max_events, opt.txn_max_bytes};
  trail::tenant_groups lanes[kLanes];
  trail::record_batch by_lane[kLanes];
  std::unordered_map<std::string, int64_t> heads;
  std::string events_copy, ids_copy, committed, scratch;
  std::unordered_map<std::string, trail::chain_hash> chain_heads;
  uint64_t events = 0, refused = 0, rendered = 0, transactions = 0;
  auto write = [&](trail::record_batch&& txn) {  // what a writer renders for one transaction
    events_copy.clear();
    ids_copy.clear();
    for (auto& r : txn) {
      r.sequence = ++heads[std::string(r.tenant_id())];
      if (!chain) {
        trail::render_rows(r.event, r.sequence, trail::kChainGenesis, trail::kChainGenesis, events_copy, ids_copy);
        continue;
      }
      // As write_plan::assign does: hash = SHA-256(previous link || canonical bytes).
      auto& head = chain_heads[std::string(r.tenant_id())];
      trail::chain_hash link;
      std::pair<size_t, size_t> extra_at;
      trail::chain_event(head, r.event, r.sequence, 1795478400000000, scratch, link, &extra_at);
      trail::render_rows(r.event, r.sequence, head, link, events_copy, ids_copy,
                         std::string_view(scratch).substr(extra_at.first, extra_at.second));
      head = link;
      rendered += scratch.size();
    }
    rendered += events_copy.size() + ids_copy.size();
    for (const auto& r : txn) {  // after COMMIT, on the finalizer's thread
      committed.clear();
      trail::render_committed_event(r.event, trail::padded_sequence(r.sequence), "2026-11-24T00:00:00.000000Z", committed);
      rendered += committed.size();
    }
    ++transactions;
  };
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t n = 0; events < count; ++n) {
    auto& p = msgs[n % msgs.size()];
    trail::decode_outcome out = decoder.decode(p.in.view());
    if (out.rejected) {
      ++refused;
      if (refused == 1) std::fprintf(stderr, "refused: %s: %s\n", trail::to_string(out.rejected->code), out.rejected->message.c_str());
      ++events;
      continue;
    }
    events += out.events.size();
    if (!full) {
      for (const auto& e : out.events) rendered += e.text_bytes();
      continue;
    }
    for (auto& e : out.events) {
      auto& lane = by_lane[trail::lane_for(e.get(trail::event_field::tenant_id), kLanes)];
      lane.emplace_back().origin = trail::message_ref::unmanaged(&p.in);
      lane.back().event = std::move(e);
    }
    if ((n + 1) % kChunk != 0 && events < count) continue;
    for (size_t l = 0; l < kLanes; ++l) {  // the end of a chunk: one hand-off per lane
      if (by_lane[l].empty()) continue;
      lanes[l].add(std::exchange(by_lane[l], {}));
      while (lanes[l].pending() >= limits.max_events) write(lanes[l].take(limits));
    }
  }
  for (auto& lane : lanes)
    while (lane.pending() > 0) write(lane.take(limits));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"stage\":\"%s\",\"mode\":\"%s\",\"size\":\"%s\",\"transactions\":%llu,\"events\":%llu,\"refused\":%llu,\"seconds\":%.3f,"
              "\"ns_per_event\":%.0f,\"events_per_s\":%.0f,\"input_bytes_per_message\":%.0f,\"rendered_bytes\":%llu}\n",
              stage.c_str(), mode_text.c_str(), size_text.c_str(), static_cast<unsigned long long>(transactions),
              static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(refused), secs, secs * 1e9 / static_cast<double>(events),
              static_cast<double>(events) / secs, static_cast<double>(bytes) / distinct,
              static_cast<unsigned long long>(rendered));
  return refused == 0 ? 0 : 1;
}
