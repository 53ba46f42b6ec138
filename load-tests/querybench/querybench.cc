// trail-querybench: the read side under load (load-tests/query-bench.sh runs it).
//
//   trail-querybench load --dsn DSN --events 10000000 --tenants 1000 --days 32
//       fills audit.events and audit.event_ids (and the tenant heads) with
//       synthetic events through COPY, two streams at once: Zipf-skewed
//       tenants, 200 actors, 5,000 resources of 5 types, 20 actions, a third
//       of them with a ChangeSet, occurred_at spread over --days daily
//       partitions, gap-free sequences per tenant in time order.
//   trail-querybench run --port P --token T --scenario NAME --clients 8 --seconds 15
//       N keep-alive clients send one scenario's requests as fast as they are
//       answered; prints requests/s and p50/p90/p99 in ms (one JSON line).
//
//   trail-querybench siege --port P --token T --tenant acme --slow 1000 --idle 1000 --pid PID
//       holds `slow` connections that send a request header one byte every
//       2 s and `idle` keep-alive connections that sent one request and wait,
//       spread over client addresses 127.0.0.2… (at most --per-address
//       each), then times --requests authenticated GETs of the tenant's first
//       page on a fresh connection each, and samples traild's RSS before and
//       during; prints one JSON line.
//
// Scenarios: first (first page, 50 events), actor, resource, action_severity
// (filtered pages), deep (page 100 by its token, found by walking 99 pages
// first, not timed), catchup (after a random sequence, in sequence order),
// get, diff. Tenants are drawn from the 50 largest, whose pages are full.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "load-tests/loadgen/generator.h"
#include "sinks/event_rows.h"

namespace {

std::string tenant_name(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "qb-tenant-%04d", i);
  return buf;
}

constexpr const char* kActions[] = {"user.login",   "user.logout",  "user.create",  "user.delete",   "role.grant",
                                    "role.revoke",  "doc.read",     "doc.update",   "doc.delete",    "doc.share",
                                    "plan.change",  "invoice.pay",  "invoice.void", "key.rotate",    "key.create",
                                    "org.update",   "sso.configure", "export.run",  "project.archive", "project.create"};
constexpr const char* kResourceTypes[] = {"doc", "user", "org", "invoice", "project"};
constexpr const char* kSeverities[] = {"SEVERITY_INFO", "SEVERITY_INFO", "SEVERITY_INFO", "SEVERITY_NOTICE", "SEVERITY_WARNING",
                                       "SEVERITY_ERROR"};

bool copy_rows(PGconn* c, const char* statement, const std::string& rows) {
  PGresult* r = PQexec(c, statement);
  const bool in = PQresultStatus(r) == PGRES_COPY_IN;
  PQclear(r);
  if (!in) return false;
  if (PQputCopyData(c, rows.data(), static_cast<int>(rows.size())) != 1 || PQputCopyEnd(c, nullptr) != 1) return false;
  bool ok = true;
  while ((r = PQgetResult(c)) != nullptr) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "COPY: %s", PQresultErrorMessage(r));
      ok = false;
    }
    PQclear(r);
  }
  return ok;
}

int load(const std::string& dsn, int64_t events, int tenants, int days, double zipf) {
  const int64_t t0 = trail::now_unix_us() / 86400000000LL * 86400000000LL - static_cast<int64_t>(days - 1) * 86400000000LL;
  const int64_t span = static_cast<int64_t>(days) * 86400000000LL - 1;
  std::vector<int64_t> heads(tenants, 0);
  trail::loadgen::zipf_sampler pick(tenants, zipf);
  std::mt19937_64 rng(20261124);
  // Two writers (even and odd tenants), each COPYing in chunks on its own connection.
  struct stream {
    PGconn* c = nullptr;
    std::string ev, ids;
    std::thread worker;
  } streams[2];
  for (auto& s : streams) {
    s.c = PQconnectdb(dsn.c_str());
    if (PQstatus(s.c) != CONNECTION_OK) {
      std::fprintf(stderr, "cannot connect: %s", PQerrorMessage(s.c));
      return 1;
    }
  }
  std::atomic<bool> failed{false};
  auto flush = [&failed](stream& s) {
    if (s.worker.joinable()) s.worker.join();
    s.worker = std::thread([&s, &failed, ev = std::move(s.ev), ids = std::move(s.ids)] {
      if (!copy_rows(s.c,
                     "COPY audit.events (sequence, tenant_id, occurred_at, ce_source, ce_id, ce_type, ingest_mode, action, "
                     "category, severity, actor_type, actor_id, resource_type, resource_id, changes, description, "
                     "source_service, request_id, prev_hash, hash) FROM STDIN",
                     ev) ||
          !copy_rows(s.c, "COPY audit.event_ids (tenant_id, id_digest, ce_source, ce_id, sequence, occurred_at) FROM STDIN", ids))
        failed = true;
    });
    s.ev.clear();
    s.ids.clear();
  };
  // The chain links are zeros: this ledger is for measuring reads and does
  // not verify (loading it through traild would cost hours of this bench).
  static const std::string kZeroLinks = "\t\\\\x" + std::string(64, '0') + "\t\\\\x" + std::string(64, '0') + "\n";
  const auto started = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < events && !failed; ++i) {
    const int t = pick(rng);
    const std::string tenant = tenant_name(t);
    const int64_t seq = ++heads[t];
    const std::string when = trail::format_rfc3339_us(t0 + span * i / events);
    const std::string id = "qb-" + std::to_string(i);
    const char* action = kActions[rng() % 20];
    const int rt = static_cast<int>(rng() % 5);
    const std::string resource = std::string(kResourceTypes[rt]) + "-" + std::to_string(rng() % 1000);
    const std::string actor = "u-" + std::to_string(rng() % 200);
    const bool changes = rng() % 3 == 0;
    stream& s = streams[t % 2];
    s.ev += std::to_string(seq) + '\t' + tenant + '\t' + when + "\t//qb/service\t" + id + "\tcom.example.audit\tstructured\t" +
            action + "\tCATEGORY_DATA\t" + kSeverities[rng() % 6] + "\tACTOR_TYPE_USER\t" + actor + '\t' +
            kResourceTypes[rt] + '\t' + resource + '\t' +
            (changes ? "{\"old_value\": {\"plan\": \"basic\", \"limits\": {\"seats\": 5}}, \"new_value\": {\"plan\": \"pro\", "
                       "\"limits\": {\"seats\": 10}}, \"changed_fields\": [\"limits\", \"plan\"]}"
                     : "\\N") +
            "\tsynthetic event for the query benchmark, about as long as a real description\t//qb/service\treq-" +
            std::to_string(i) + kZeroLinks;
    s.ids += tenant + '\t' + trail::digest_hex(trail::identity_digest("//qb/service", id)) + "\t//qb/service\t" + id + '\t' +
             std::to_string(seq) + '\t' + when + '\n';
    if (s.ev.size() > (32u << 20)) flush(s);
    if (i % 1000000 == 999999)
      std::fprintf(stderr, "querybench: %lld events loaded (%.0f s)\n", static_cast<long long>(i + 1),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  for (auto& s : streams) flush(s);
  for (auto& s : streams)
    if (s.worker.joinable()) s.worker.join();
  std::string heads_rows;
  for (int t = 0; t < tenants; ++t)
    if (heads[t]) heads_rows += tenant_name(t) + '\t' + std::to_string(heads[t]) + "\t\\N\n";
  if (failed || !copy_rows(streams[0].c, "COPY audit.tenant_heads (tenant_id, last_sequence, updated_at) FROM STDIN", heads_rows))
    return 1;
  PQclear(PQexec(streams[0].c, "ANALYZE audit.events"));
  PQclear(PQexec(streams[0].c, "ANALYZE audit.event_ids"));
  for (auto& s : streams) PQfinish(s.c);
  std::printf("{\"loaded\": %lld, \"seconds\": %.1f}\n", static_cast<long long>(events),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return 0;
}

struct target {
  std::string tenant;
  int64_t head = 0;
  std::string deep_token;  // page 100's token
};

// Closed loop (rate 0): each client sends its next request when the last
// one is answered, so the figures are those of a saturated server. Open loop
// (rate > 0 requests/s over all clients): request k of client c is due at
// (k * clients + c) / rate, and its latency counts from that moment, so a
// late answer also charges the requests queued behind it (no coordinated
// omission).
// The first `warmup` seconds are run but not counted: each reader connection
// prepares and plans each statement shape on its first use.
// With `timeline`, each counted second's request count and slowest request
// go to stderr (to line stalls up with what the servers did).
int run(int port, const std::string& token, const std::string& scenario, int clients, double seconds, double rate,
        double warmup, bool timeline, const std::vector<target>& targets) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(clients);
  std::vector<std::vector<std::pair<double, double>>> when(clients);  // (second since counting began, ms)
  std::vector<int> errors(clients, 0);
  std::vector<std::thread> threads;
  const auto begin = std::chrono::steady_clock::now();
  const auto counted_from =
      begin + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(warmup));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_read_timeout(30, 0);
      const httplib::Headers h{{"Authorization", "Bearer " + token}};
      std::mt19937_64 rng(c * 7919 + 1);
      const auto start = begin;
      for (int64_t k = 0; !stop; ++k) {
        auto due = std::chrono::steady_clock::now();
        if (rate > 0) {
          due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>((static_cast<double>(k) * clients + c) / rate));
          std::this_thread::sleep_until(due);
          if (stop) break;
        }
        const target& t = targets[rng() % targets.size()];
        const std::string base = "/v1/tenants/" + t.tenant + "/events";
        std::string path;
        if (scenario == "first") path = base + "?page_size=50";
        else if (scenario == "actor") path = base + "?page_size=50&actor_id=u-" + std::to_string(rng() % 200);
        else if (scenario == "resource") {
          const int rt = static_cast<int>(rng() % 5);
          path = base + "?page_size=50&resource_type=" + kResourceTypes[rt] + "&resource_id=" + kResourceTypes[rt] + "-" +
                 std::to_string(rng() % 1000);
        } else if (scenario == "action_severity")
          path = base + "?page_size=50&actions=" + kActions[rng() % 20] + "&severities=info,notice";
        else if (scenario == "deep") path = base + "?page_size=50&page_token=" + t.deep_token;
        else if (scenario == "catchup")
          path = base + "?order=asc&page_size=50&after_sequence=" + std::to_string(rng() % std::max<int64_t>(1, t.head - 50));
        else if (scenario == "get") path = base + "/" + std::to_string(1 + rng() % t.head);
        else if (scenario == "diff") path = base + "/" + std::to_string(1 + rng() % t.head) + "/diff";
        auto res = cli.Get(path.c_str(), h);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - due).count();
        if (!res || res->status != 200) {
          ++errors[c];
          if (errors[c] < 3) std::fprintf(stderr, "querybench: %s -> %d\n", path.c_str(), res ? res->status : -1);
          continue;
        }
        if (due >= counted_from) {
          lat[c].push_back(ms);
          if (timeline) when[c].emplace_back(std::chrono::duration<double>(due - counted_from).count(), ms);
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup + seconds));
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  int errs = 0;
  for (int c = 0; c < clients; ++c) {
    all.insert(all.end(), lat[c].begin(), lat[c].end());
    errs += errors[c];
  }
  if (timeline) {
    std::vector<std::pair<int, double>> per_second(static_cast<size_t>(seconds) + 1, {0, 0.0});
    for (const auto& v : when)
      for (const auto& [t, ms] : v) {
        auto& slot = per_second[std::min(per_second.size() - 1, static_cast<size_t>(t))];
        ++slot.first;
        slot.second = std::max(slot.second, ms);
      }
    for (size_t i = 0; i < per_second.size(); ++i)
      std::fprintf(stderr, "second %zu: %d requests, slowest %.1f ms\n", i, per_second[i].first, per_second[i].second);
  }
  std::sort(all.begin(), all.end());
  auto pct = [&all](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))]; };
  std::printf("{\"scenario\": \"%s\", \"rate\": %.0f, \"clients\": %d, \"requests\": %zu, \"errors\": %d, \"rps\": %.0f, \"p50_ms\": %.2f, "
              "\"p90_ms\": %.2f, \"p99_ms\": %.2f}\n",
              scenario.c_str(), rate, clients, all.size(), errs, all.size() / seconds, pct(0.5), pct(0.9), pct(0.99));
  return errs > static_cast<int>(all.size() / 100) ? 1 : 0;
}

// The 50 largest tenants with their heads, and for the deep scenario the
// token of their page 100 (walked once, not timed).
std::vector<target> targets_of(const std::string& dsn, int port, const std::string& token, bool deep) {
  std::vector<target> out;
  PGconn* c = PQconnectdb(dsn.c_str());
  PGresult* r = PQexec(c, "SELECT tenant_id, last_sequence FROM audit.tenant_heads WHERE tenant_id LIKE 'qb-%' "
                          "ORDER BY last_sequence DESC LIMIT 50");
  for (int i = 0; i < PQntuples(r); ++i) out.push_back({PQgetvalue(r, i, 0), std::stoll(PQgetvalue(r, i, 1)), {}});
  PQclear(r);
  PQfinish(c);
  if (!deep) return out;
  httplib::Client cli("127.0.0.1", port);
  const httplib::Headers h{{"Authorization", "Bearer " + token}};
  for (auto& t : out) {
    std::string next;
    for (int page = 1; page < 100; ++page) {
      auto res = cli.Get(("/v1/tenants/" + t.tenant + "/events?page_size=50" +
                          (next.empty() ? "" : "&page_token=" + next)).c_str(), h);
      rapidjson::Document d;
      if (!res || res->status != 200 || d.Parse(res->body.c_str()).HasParseError() || !d["next_page_token"].IsString()) break;
      next = d["next_page_token"].GetString();
    }
    t.deep_token = next;
  }
  out.erase(std::remove_if(out.begin(), out.end(), [](const target& t) { return t.deep_token.empty(); }), out.end());
  return out;
}

// ---- siege: slow and idle connections held open while a reader is timed ----

int64_t rss_kib(int pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (!f) return -1;
  char line[256];
  int64_t kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::atoll(line + 6);
  std::fclose(f);
  return kib;
}

int connect_from(const std::string& from, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, from.c_str(), &local.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int siege(int port, const std::string& token, const std::string& tenant, int slow, int idle, int per_address, int pid,
          int requests) {
  const int64_t rss_before = rss_kib(pid);
  int next_address = 2, on_address = 0;
  auto address = [&] {
    if (on_address == per_address) next_address++, on_address = 0;
    ++on_address;
    return "127.0.0." + std::to_string(next_address);
  };
  std::vector<int> slow_fds, idle_fds;
  const std::string header = "GET /v1/tenants/" + tenant + "/events HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  for (int i = 0; i < slow; ++i) {
    const int fd = connect_from(address(), port);
    if (fd < 0 || ::send(fd, "G", 1, MSG_NOSIGNAL) != 1) {
      std::fprintf(stderr, "siege: slow connection %d failed\n", i);
      return 1;
    }
    slow_fds.push_back(fd);
  }
  const std::string probe = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < idle; ++i) {
    const int fd = connect_from(address(), port);
    if (fd < 0 || ::send(fd, probe.data(), probe.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(probe.size())) {
      std::fprintf(stderr, "siege: idle connection %d failed\n", i);
      return 1;
    }
    idle_fds.push_back(fd);
  }
  // The slow ones trickle a byte every 2 s (each one's header deadline
  // cuts it off in time; the siege reopens what was closed).
  std::atomic<bool> stop{false};
  std::atomic<int64_t> reopened{0};
  std::thread trickle([&] {
    while (!stop) {
      for (int& fd : slow_fds) {
        if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
          ::close(fd);
          fd = connect_from(address(), port);
          if (fd >= 0 && ::send(fd, "G", 1, MSG_NOSIGNAL) == 1) ++reopened;
        }
      }
      for (int i = 0; i < 20 && !stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::vector<double> ms;
  int failures = 0;
  int64_t rss_peak = rss_kib(pid);
  for (int i = 0; i < requests; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    httplib::Client cli("127.0.0.1", port);
    cli.set_connection_timeout(5, 0);
    cli.set_read_timeout(10, 0);
    auto res = cli.Get(("/v1/tenants/" + tenant + "/events?page_size=50").c_str(),
                       httplib::Headers{{"Authorization", "Bearer " + token}});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!res || res->status != 200) ++failures;
    rss_peak = std::max(rss_peak, rss_kib(pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  trickle.join();
  for (int fd : slow_fds) ::close(fd);
  for (int fd : idle_fds) ::close(fd);
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  std::printf("{\"slow\":%d,\"idle\":%d,\"requests\":%d,\"failures\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,"
              "\"rss_before_mib\":%.1f,\"rss_peak_mib\":%.1f,\"rss_growth_mib\":%.1f,\"slow_reopened\":%lld}\n",
              slow, idle, requests, failures, pct(0.5), pct(0.99), ms.empty() ? 0.0 : ms.back(), rss_before / 1024.0,
              rss_peak / 1024.0, (rss_peak - rss_before) / 1024.0, static_cast<long long>(reopened.load()));
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trail-querybench: the read side under load"};
  app.require_subcommand(1);
  std::string dsn;
  int64_t events = 10000000;
  int tenants = 1000, days = 32, port = 8080, clients = 8;
  double zipf = 1.1, seconds = 15, rate = 0, warmup = 2;
  bool timeline = false;
  std::string token, scenario = "first";
  auto* load_cmd = app.add_subcommand("load", "fill the ledger with synthetic events through COPY");
  load_cmd->add_option("--dsn", dsn, "PostgreSQL (the schema's owner)")->required();
  load_cmd->add_option("--events", events);
  load_cmd->add_option("--tenants", tenants);
  load_cmd->add_option("--days", days);
  load_cmd->add_option("--zipf", zipf);
  auto* run_cmd = app.add_subcommand("run", "one scenario against a running traild");
  run_cmd->add_option("--dsn", dsn, "PostgreSQL, to find the largest tenants")->required();
  run_cmd->add_option("--port", port);
  run_cmd->add_option("--token", token, "audit:read for every tenant (tenant_id \"*\")")->required();
  run_cmd->add_option("--scenario", scenario, "first, actor, resource, action_severity, deep, catchup, get, diff");
  run_cmd->add_option("--clients", clients);
  run_cmd->add_option("--seconds", seconds);
  run_cmd->add_option("--warmup", warmup, "seconds run before the measured ones (not counted)");
  run_cmd->add_flag("--timeline", timeline, "each second's requests and slowest one, on stderr");
  run_cmd->add_option("--rate", rate, "requests/s over all clients (open loop); 0: as fast as answered (closed loop)");
  int slow = 1000, idle = 1000, per_address = 250, pid = 0, requests = 200;
  std::string tenant = "acme";
  auto* siege_cmd = app.add_subcommand("siege", "slow and idle connections held open while a reader is timed");
  siege_cmd->add_option("--port", port);
  siege_cmd->add_option("--token", token, "audit:read for --tenant")->required();
  siege_cmd->add_option("--tenant", tenant);
  siege_cmd->add_option("--slow", slow);
  siege_cmd->add_option("--idle", idle);
  siege_cmd->add_option("--per-address", per_address, "connections per client address (127.0.0.2, .3, …)");
  siege_cmd->add_option("--pid", pid, "traild's pid, for its RSS")->required();
  siege_cmd->add_option("--requests", requests);
  CLI11_PARSE(app, argc, argv);
  if (load_cmd->parsed()) return load(dsn, events, tenants, days, zipf);
  if (siege_cmd->parsed()) return siege(port, token, tenant, slow, idle, per_address, pid, requests);
  const auto targets = targets_of(dsn, port, token, scenario == "deep");
  if (targets.empty()) {
    std::fprintf(stderr, "querybench: no tenants to query (load first)\n");
    return 1;
  }
  return run(port, token, scenario, clients, seconds, rate, warmup, timeline, targets);
}
