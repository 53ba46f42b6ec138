// trail-follow: an example downstream subscriber of Trail's committed stream.
//
// It follows audit.committed.<tenant> (or every tenant) with a durable pull
// consumer on the AUDIT_COMMITTED stream and checks that each tenant's
// sequence numbers are contiguous: every committed event of a tenant carries
// the CloudEvents extension `sequence`, gap-free from 1. It reports gaps,
// repeats (the committed stream is at-least-once: a repeat carries the same
// tenant and sequence) and events that arrive out of order, and acks each
// message after checking it.
//
//   trail-follow                          all tenants, until Ctrl-C
//   trail-follow --tenant acme            one tenant
//   trail-follow --idle-exit 3 --from-one exit after 3 s without messages;
//                                         sequences must start at 1
//
// Exit status: 0 without gaps, 1 with gaps, 2 on bad usage or connection
// failure. The per-tenant state lives in memory only; a real subscriber would
// store each tenant's last sequence together with whatever it derives from
// the events, in one transaction, and resume from there.

#include <CLI/CLI.hpp>
#include <nats/nats.h>
#include <rapidjson/document.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>

namespace {

std::atomic<bool> g_stop{false};

struct tenant_state {
  uint64_t contiguous = 0;      // every sequence <= this one was seen
  std::set<uint64_t> ahead;     // seen, above a hole
  uint64_t events = 0;
  uint64_t repeats = 0;
  uint64_t out_of_order = 0;
};

struct follower {
  bool from_one = false;
  std::map<std::string, tenant_state> tenants;
  uint64_t events = 0, unparsable = 0;

  void observe(const std::string& tenant, uint64_t seq) {
    auto [it, fresh] = tenants.try_emplace(tenant);
    tenant_state& t = it->second;
    if (fresh && !from_one) t.contiguous = seq - 1;  // start where the stream starts
    ++events;
    if (seq <= t.contiguous || t.ahead.count(seq)) {
      ++t.repeats;
      return;
    }
    ++t.events;
    if (seq != t.contiguous + 1 || !t.ahead.empty()) ++t.out_of_order;
    t.ahead.insert(seq);
    while (!t.ahead.empty() && *t.ahead.begin() == t.contiguous + 1) {
      t.contiguous = *t.ahead.begin();
      t.ahead.erase(t.ahead.begin());
    }
  }

  // Prints each tenant's holes; returns how many sequences are missing.
  uint64_t report_gaps(bool print) const {
    uint64_t missing = 0;
    for (const auto& [name, t] : tenants) {
      uint64_t expect = t.contiguous + 1;
      for (uint64_t s : t.ahead) {
        if (s > expect) {
          missing += s - expect;
          if (print)
            std::printf("gap: tenant %s sequences %llu..%llu missing\n", name.c_str(),
                        static_cast<unsigned long long>(expect), static_cast<unsigned long long>(s - 1));
        }
        expect = s + 1;
      }
    }
    return missing;
  }
};

bool parse(const natsMsg* msg, std::string& tenant, uint64_t& seq) {
  rapidjson::Document d;
  d.Parse(natsMsg_GetData(const_cast<natsMsg*>(msg)), static_cast<size_t>(natsMsg_GetDataLength(const_cast<natsMsg*>(msg))));
  if (d.HasParseError() || !d.IsObject()) return false;
  auto t = d.FindMember("tenantid");
  auto s = d.FindMember("sequence");
  if (t == d.MemberEnd() || !t->value.IsString() || s == d.MemberEnd() || !s->value.IsString()) return false;
  tenant.assign(t->value.GetString(), t->value.GetStringLength());
  const char* b = s->value.GetString();
  return std::from_chars(b, b + s->value.GetStringLength(), seq).ec == std::errc() && seq > 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trail-follow: follow Trail's committed events and check per-tenant sequences"};
  std::string url = std::getenv("TRAIL_NATS_URL") ? std::getenv("TRAIL_NATS_URL") : "nats://127.0.0.1:4222";
  std::string tenant, stream = "AUDIT_COMMITTED", prefix = "audit.committed", durable = "trail-follow";
  double idle_exit = 0;
  bool from_one = false;
  app.add_option("--url", url, "NATS URL (default $TRAIL_NATS_URL or nats://127.0.0.1:4222)");
  app.add_option("--tenant", tenant, "follow one tenant (default: all)");
  app.add_option("--stream", stream, "stream holding the committed events");
  app.add_option("--prefix", prefix, "subject prefix of committed events");
  app.add_option("--durable", durable, "durable consumer name (kept by the broker between runs)");
  app.add_option("--idle-exit", idle_exit, "exit after this many seconds without a message (0: run until Ctrl-C)");
  app.add_flag("--from-one", from_one, "sequences must start at 1 (else each tenant starts where it is first seen)");
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK || natsConnection_JetStream(&js, nc, nullptr) != NATS_OK) {
    std::fprintf(stderr, "trail-follow: cannot connect to %s: %s\n", url.c_str(), nats_GetLastError(nullptr));
    return 2;
  }
  const std::string subject = prefix + "." + (tenant.empty() ? ">" : tenant);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (js_PullSubscribe(&sub, js, subject.c_str(), durable.c_str(), nullptr, &so, &jerr) != NATS_OK) {
    std::fprintf(stderr, "trail-follow: cannot follow %s on stream %s: %s\n", subject.c_str(), stream.c_str(),
                 nats_GetLastError(nullptr));
    return 2;
  }
  std::fprintf(stderr, "trail-follow: following %s (stream %s, durable %s)\n", subject.c_str(), stream.c_str(),
               durable.c_str());

  follower f;
  f.from_one = from_one;
  auto last_message = std::chrono::steady_clock::now();
  auto last_report = last_message;
  while (!g_stop) {
    // A batch of 1 while answers to earlier requests are still waiting:
    // nats.c 3.4.1's fetch can overrun its array otherwise.
    int waiting = 0;
    natsSubscription_GetPending(sub, &waiting, nullptr);
    natsMsgList list{nullptr, 0};
    const natsStatus s = natsSubscription_Fetch(&list, sub, waiting > 0 ? 1 : 256, 500, &jerr);
    const auto now = std::chrono::steady_clock::now();
    if (s == NATS_OK) {
      for (int i = 0; i < list.Count; ++i) {
        std::string t;
        uint64_t seq = 0;
        if (parse(list.Msgs[i], t, seq)) f.observe(t, seq);
        else ++f.unparsable;
        natsMsg_Ack(list.Msgs[i], nullptr);
      }
      if (list.Count > 0) last_message = now;
      natsMsgList_Destroy(&list);
    } else if (s != NATS_TIMEOUT) {
      std::fprintf(stderr, "trail-follow: fetch failed: %s; retrying\n", natsStatus_GetText(s));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (now - last_report >= std::chrono::seconds(5)) {
      std::fprintf(stderr, "trail-follow: %llu events, %zu tenants, %llu missing so far\n",
                   static_cast<unsigned long long>(f.events), f.tenants.size(),
                   static_cast<unsigned long long>(f.report_gaps(false)));
      last_report = now;
    }
    if (idle_exit > 0 && now - last_message >= std::chrono::duration<double>(idle_exit)) break;
  }

  uint64_t repeats = 0, out_of_order = 0;
  for (const auto& [name, t] : f.tenants) {
    repeats += t.repeats;
    out_of_order += t.out_of_order;
  }
  const uint64_t missing = f.report_gaps(true);
  std::printf("trail-follow: %llu events from %zu tenants; %llu sequences missing, %llu repeats, %llu out of order, "
              "%llu unparsable\n",
              static_cast<unsigned long long>(f.events), f.tenants.size(), static_cast<unsigned long long>(missing),
              static_cast<unsigned long long>(repeats), static_cast<unsigned long long>(out_of_order),
              static_cast<unsigned long long>(f.unparsable));
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return missing == 0 && f.unparsable == 0 ? 0 : 1;
}
