// trailctl: Trail from a terminal.
//
//   trailctl send '{"tenant_id":"acme",…}'        publish events (or --file F, or one per line on stdin)
//   trailctl query --actor-id u-1 --last 24h      the API's listing, as a table (--output json|ndjson|csv)
//                                                 (list filters take commas: --actions a,b --severities warning,error)
//   trailctl get 42                               one event (its committed CloudEvent)
//   trailctl diff 42                              what it changed, field by field (colored on a terminal)
//   trailctl verify [--against-broker]            the tenant's chain, online
//   trailctl verify --export F --checkpoints F --public-key F   the same, offline
//   trailctl tail --actions a,b                   follow audit.committed.<tenant>, gaps filled from the API
//   trailctl export --format csv -f out.csv       everything matching, to a file (progress on a terminal)
//   trailctl dlq list|show N|replay N…            dead letters: why, their bytes; re-publish after a fix
//   trailctl mcp                                  the MCP server over stdio
//   trailctl completion bash                      a bash completion script
//
// Settings, first found wins: flags; TRAIL_API_URL, TRAIL_TOKEN, TRAIL_TENANT,
// TRAIL_NATS_URL; ~/.config/trail/trailctl.toml (api_url, token, tenant,
// nats_url); then http://127.0.0.1:8080 and the NATS URL of .dev/env.
// Exit codes: 0 success, 1 failure, 2 usage error. Errors go to stderr on one
// line. No color when stdout is not a terminal or NO_COLOR is set.
#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nats/nats.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <toml++/toml.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <iostream>
#include <string>
#include <vector>

#include "api/mcp_routes.h"
#include "app/integrity_cmd.h"
#include "common/sha256.h"
#include "common/time.h"
#include "ingest/jetstream.h"
#include "integrity/verify.h"
#include "mcp/mcp_server.h"

namespace {

struct settings {
  std::string api_url, token, tenant, nats_url;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "trailctl: %s\n", message.c_str());
  return 1;
}

// Flags, then the environment, then the config file, then the defaults.
void resolve(settings& s) {
  auto env = [](const char* name, std::string& v) {
    if (v.empty())
      if (const char* e = std::getenv(name)) v = e;
  };
  env("TRAIL_API_URL", s.api_url);
  env("TRAIL_TOKEN", s.token);
  env("TRAIL_TENANT", s.tenant);
  env("TRAIL_NATS_URL", s.nats_url);
  if (const char* home = std::getenv("HOME")) {
    try {
      const auto file = toml::parse_file(std::string(home) + "/.config/trail/trailctl.toml");
      auto from_file = [&file](const char* key, std::string& v) {
        if (v.empty())
          if (auto x = file[key].value<std::string>()) v = *x;
      };
      from_file("api_url", s.api_url);
      from_file("token", s.token);
      from_file("tenant", s.tenant);
      from_file("nats_url", s.nats_url);
    } catch (const toml::parse_error&) {
      // No file, or not TOML: flags and environment only.
    }
  }
  if (s.api_url.empty()) s.api_url = "http://127.0.0.1:8080";
  if (s.nats_url.empty()) {
    std::ifstream dev(".dev/env");
    for (std::string line; std::getline(dev, line);)
      if (line.rfind("TRAIL_NATS_URL=", 0) == 0) s.nats_url = line.substr(15);
  }
  if (s.nats_url.empty()) s.nats_url = "nats://127.0.0.1:4222";
}

bool colored() { return isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR"); }

std::string encode(const std::string& v) { return httplib::detail::encode_query_param(v); }

// One GET of the API; the body, or "" with `error` (the API's own message when it gave one).
bool api_get(const settings& s, const std::string& path, std::string& body, std::string* error) {
  httplib::Client cli(s.api_url);
  cli.set_read_timeout(300, 0);
  httplib::Headers h;
  if (!s.token.empty()) h.emplace("Authorization", "Bearer " + s.token);
  auto res = cli.Get(path.c_str(), h);
  if (!res) return *error = "cannot reach " + s.api_url + " (" + httplib::to_string(res.error()) + ")", false;
  body = res->body;
  if (res->status == 200) return true;
  rapidjson::Document d;
  d.Parse(res->body.c_str());
  *error = "HTTP " + std::to_string(res->status) +
           (!d.HasParseError() && d.IsObject() && d.HasMember("message") && d["message"].IsString()
                ? std::string(": ") + d["message"].GetString()
                : "");
  return false;
}

std::string str(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject() || !v.HasMember(key)) return "";
  const auto& x = v[key];
  if (x.IsString()) return x.GetString();
  if (x.IsNull()) return "";
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  x.Accept(w);
  return sb.GetString();
}

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return sb.GetString();
}

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// ---- NATS ----

struct nats_link {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  nats_link() = default;
  nats_link(const nats_link&) = delete;
  ~nats_link() {
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
  }
};

// Connects (with `tune` adjusting the options first); false with a message on stderr.
bool connect_nats(const settings& s, nats_link& l, const std::function<void(natsOptions*)>& tune = {}) {
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  trail::set_servers(o, s.nats_url);
  natsOptions_SetName(o, "trailctl");
  if (tune) tune(o);
  const bool up = natsConnection_Connect(&l.nc, o) == NATS_OK && natsConnection_JetStream(&l.js, l.nc, nullptr) == NATS_OK;
  natsOptions_Destroy(o);
  if (!up) std::fprintf(stderr, "trailctl: cannot connect to NATS at %s\n", s.nats_url.c_str());
  return up;
}

using filter_list = std::vector<std::pair<std::string, std::string>>;

// The API's list filters as flags (its parameter names; lists take commas:
// --actions a,b). The list is heap-held: CLI11 keeps pointers into it.
std::shared_ptr<filter_list> add_filters(CLI::App* cmd) {
  auto filters = std::make_shared<filter_list>(filter_list{
      {"actor_id", ""}, {"actor_type", ""}, {"actions", ""}, {"categories", ""}, {"severities", ""},
      {"resource_type", ""}, {"resource_id", ""}, {"source_service", ""}, {"correlation_id", ""},
      {"trace_id", ""}, {"outcome", ""}, {"from", ""}, {"to", ""}, {"last", ""}});
  for (auto& [name, value] : *filters) {
    std::string flag = "--" + name;
    for (auto& c : flag)
      if (c == '_') c = '-';
    cmd->add_option(flag, value, "filter: " + name + " (as the API's parameter)");
  }
  return filters;
}

int send_command(const settings& s, const std::vector<std::string>& events, const std::string& file,
                 const std::vector<std::string>& headers, const std::string& msg_id, const std::string& subject) {
  std::vector<std::string> bodies = events;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return fail("cannot read " + file);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bodies.push_back(all);
  }
  if (bodies.empty())
    for (std::string line; std::getline(std::cin, line);)
      if (!line.empty()) bodies.push_back(line);
  nats_link l;
  if (!connect_nats(s, l)) return 1;
  int failures = 0;
  for (const auto& body : bodies) {
    trail::header_list h;
    for (const auto& x : headers) {
      const auto colon = x.find(':');
      if (colon != std::string::npos) h.emplace_back(x.substr(0, colon), x.substr(colon + 1));
    }
    const auto ack = trail::publish_and_wait(l.js, subject, body, h, msg_id.empty() ? nullptr : msg_id.c_str(), 10000);
    if (!ack.ok()) {
      ++failures;
      std::fprintf(stderr, "trailctl: not stored: %s\n", trail::nats_error_text(ack.status, ack.jerr));
    } else {
      std::printf("stored in the stream%s\n", ack.duplicate ? " (a duplicate of a message it holds)" : "");
    }
  }
  return failures ? 1 : 0;
}

int query_command(const settings& s, const std::vector<std::pair<std::string, std::string>>& filters, int limit,
                  const std::string& output) {
  std::string query, token, error, body;
  for (const auto& [k, v] : filters)
    if (!v.empty()) query += "&" + k + "=" + encode(v);
  std::vector<std::string> rows;  // compact JSON of each event
  rapidjson::Document page;
  while (static_cast<int>(rows.size()) < limit) {
    const int want = std::min(1000, limit - static_cast<int>(rows.size()));
    const std::string path = "/v1/tenants/" + encode(s.tenant) + "/events?page_size=" + std::to_string(want) + query +
                             (token.empty() ? "" : "&page_token=" + encode(token));
    if (!api_get(s, path, body, &error)) return fail(error);
    page.Parse(body.c_str());
    if (page.HasParseError() || !page.IsObject() || !page.HasMember("events")) return fail("unexpected answer: " + body.substr(0, 200));
    for (const auto& e : page["events"].GetArray()) rows.push_back(compact(e));
    if (!page["next_page_token"].IsString()) break;
    token = page["next_page_token"].GetString();
  }
  if (output == "json") {
    std::printf("[");
    for (size_t i = 0; i < rows.size(); ++i) std::printf("%s%s", i ? "," : "", rows[i].c_str());
    std::printf("]\n");
    return 0;
  }
  if (output == "ndjson") {
    for (const auto& r : rows) std::printf("%s\n", r.c_str());
    return 0;
  }
  const std::vector<std::string> header = {"sequence", "occurred_at", "action", "actor", "resource", "outcome"};
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows) {
    rapidjson::Document e;
    e.Parse(r.c_str());
    const auto& d = e["data"];
    table.push_back({str(e, "sequence"), str(e, "time"), str(d, "action"),
                     d.HasMember("actor") ? str(d["actor"], "type") + ":" + str(d["actor"], "id") : "",
                     d.HasMember("primary_resource") ? str(d["primary_resource"], "type") + ":" + str(d["primary_resource"], "id") : "",
                     d.HasMember("outcome") ? str(d["outcome"], "status") : ""});
  }
  if (output == "csv") {
    for (size_t c = 0; c < header.size(); ++c) std::printf("%s%s", c ? "," : "", header[c].c_str());
    std::printf("\r\n");
    for (const auto& row : table) {
      for (size_t c = 0; c < row.size(); ++c) std::printf("%s%s", c ? "," : "", csv_field(row[c]).c_str());
      std::printf("\r\n");
    }
    return 0;
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : table)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c)
      std::printf("%-*s%s", static_cast<int>(width[c]), row[c].c_str(), c + 1 < row.size() ? "  " : "\n");
  };
  line(header);
  for (const auto& row : table) line(row);
  std::printf("(%zu events)\n", table.size());
  return 0;
}

int get_command(const settings& s, long long sequence) {
  std::string body, error;
  if (!api_get(s, "/v1/tenants/" + encode(s.tenant) + "/events/" + std::to_string(sequence), body, &error))
    return fail(error);
  std::printf("%s\n", body.c_str());
  return 0;
}

int diff_command(const settings& s, long long sequence) {
  std::string body, error;
  if (!api_get(s, "/v1/tenants/" + encode(s.tenant) + "/events/" + std::to_string(sequence) + "/diff", body, &error))
    return fail(error);
  rapidjson::Document d;
  d.Parse(body.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("fields")) return fail("unexpected answer: " + body.substr(0, 200));
  const bool color = colored();
  const char* red = color ? "\033[31m" : "";
  const char* green = color ? "\033[32m" : "";
  const char* bold = color ? "\033[1m" : "";
  const char* reset = color ? "\033[0m" : "";
  std::printf("%sevent %lld of tenant %s%s\n", bold, sequence, s.tenant.c_str(), reset);
  if (!d["has_changes"].GetBool()) {
    std::printf("no recorded change\n");
    return 0;
  }
  for (const auto& f : d["fields"].GetArray()) {
    std::printf("%s%s%s\n", bold, str(f, "field").c_str(), reset);
    if (f.HasMember("old")) std::printf("  %s- %s%s\n", red, compact(f["old"]).c_str(), reset);
    if (f.HasMember("new")) std::printf("  %s+ %s%s\n", green, compact(f["new"]).c_str(), reset);
  }
  return 0;
}

int verify_command(const settings& s, bool against_broker) {
  std::string body, error;
  if (!api_get(s, "/v1/tenants/" + encode(s.tenant) + "/verify" + (against_broker ? "?against=broker" : ""), body, &error))
    return fail(error);
  rapidjson::Document d;
  d.Parse(body.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("verified")) return fail("unexpected answer: " + body.substr(0, 200));
  if (d["verified"].GetBool()) {
    std::printf("tenant %s: sequences %lld..%lld verified: %lld events, %lld signed checkpoints%s\n", s.tenant.c_str(),
                static_cast<long long>(d["from_sequence"].GetInt64()), static_cast<long long>(d["to_sequence"].GetInt64()),
                static_cast<long long>(d["events_checked"].GetInt64()),
                static_cast<long long>(d["checkpoints_checked"].GetInt64()),
                against_broker ? ", against the broker's copies" : "");
    return 0;
  }
  std::printf("tenant %s: BROKEN at sequence %lld: %s\n", s.tenant.c_str(),
              static_cast<long long>(d["first_break"]["sequence"].GetInt64()), d["first_break"]["reason"].GetString());
  return 1;
}


// ---- client-side filters (tail) ----

struct event_filter {
  std::set<std::string> actions, severities, categories;
  std::string actor_id, resource_type, resource_id;

  static std::set<std::string> list(const std::string& v, const char* prefix) {
    std::set<std::string> out;
    std::stringstream in(v);
    for (std::string x; std::getline(in, x, ',');) {
      if (x.empty()) continue;
      if (prefix) {
        for (auto& c : x) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (x.rfind(prefix, 0) != 0) x = prefix + x;
      }
      out.insert(x);
    }
    return out;
  }
  bool matches(const rapidjson::Value& e) const {
    if (!e.IsObject() || !e.HasMember("data")) return false;
    const auto& d = e["data"];
    auto in = [](const std::set<std::string>& set, const std::string& v) { return set.empty() || set.count(v) > 0; };
    return in(actions, str(d, "action")) && in(severities, str(d, "severity")) && in(categories, str(d, "category")) &&
           (actor_id.empty() || (d.HasMember("actor") && str(d["actor"], "id") == actor_id)) &&
           (resource_type.empty() || (d.HasMember("primary_resource") && str(d["primary_resource"], "type") == resource_type)) &&
           (resource_id.empty() || (d.HasMember("primary_resource") && str(d["primary_resource"], "id") == resource_id));
  }
};

std::string table_line(const rapidjson::Value& e) {
  const auto& d = e["data"];
  std::string line = str(e, "sequence");
  const auto first_digit = line.find_first_not_of('0');
  line = first_digit == std::string::npos ? "0" : line.substr(first_digit);
  line += "  " + str(e, "time") + "  " + str(d, "action");
  if (d.HasMember("actor")) line += "  " + str(d["actor"], "type") + ":" + str(d["actor"], "id");
  if (d.HasMember("primary_resource")) line += "  " + str(d["primary_resource"], "type") + ":" + str(d["primary_resource"], "id");
  if (d.HasMember("outcome")) line += "  " + str(d["outcome"], "status");
  return line;
}

long long sequence_of(const rapidjson::Value& e) {
  const std::string s = str(e, "sequence");
  try {
    return s.empty() ? -1 : std::stoll(s);
  } catch (...) {
    return -1;
  }
}

// ---- tail ----

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reconnected{false};

int tail_command(const settings& s, const event_filter& filter, const std::string& output, long long from_sequence,
                 long long count, const std::string& prefix) {
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  long long emitted = 0;
  auto emit = [&](const rapidjson::Value& e) {
    if (!filter.matches(e)) return;
    if (output == "ndjson" || output == "json") std::printf("%s\n", compact(e).c_str());
    else std::printf("%s\n", table_line(e).c_str());
    std::fflush(stdout);
    ++emitted;
  };
  // Everything after `last` (up to `upto`) from the API, in sequence order;
  // retried until it succeeds, so that nothing between is skipped.
  auto catch_up = [&](long long& last, long long upto, bool print) {
    for (int attempt = 0; !g_stop;) {
      std::string body, error;
      const std::string path = "/v1/tenants/" + encode(s.tenant) + "/events?order=asc&page_size=1000&after_sequence=" +
                               std::to_string(last);
      if (!api_get(s, path, body, &error)) {
        if (attempt++ == 0) std::fprintf(stderr, "trailctl: tail: cannot catch up yet (%s); retrying\n", error.c_str());
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      rapidjson::Document page;
      page.Parse(body.c_str());
      if (page.HasParseError() || !page.IsObject() || !page.HasMember("events")) return;
      const auto& events = page["events"].GetArray();
      for (const auto& e : events) {
        const long long seq = sequence_of(e);
        if (seq > upto) return;
        if (seq <= last) continue;
        if (print) emit(e);
        last = seq;
      }
      if (events.Size() < 1000) return;
    }
  };
  nats_link l;
  const bool up = connect_nats(s, l, [](natsOptions* o) {
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 250);
    natsOptions_SetDisconnectedCB(o, [](natsConnection*, void*) {
      std::fprintf(stderr, "trailctl: tail: disconnected from NATS; catching up from the API once back\n");
    }, nullptr);
    natsOptions_SetReconnectedCB(o, [](natsConnection*, void*) { g_reconnected = true; }, nullptr);
  });
  if (!up) return 1;
  natsSubscription* sub = nullptr;
  const std::string subject = prefix + "." + s.tenant;
  if (natsConnection_SubscribeSync(&sub, l.nc, subject.c_str()) != NATS_OK ||
      natsConnection_Flush(l.nc) != NATS_OK)
    return fail("cannot subscribe to " + subject);
  // Where to start: the given sequence, or the tenant's head (found through
  // the API, printing nothing) so that a disconnection before the first
  // live event is caught up too.
  long long last = 0;
  if (from_sequence > 0) {
    last = from_sequence - 1;
    catch_up(last, LLONG_MAX, true);
  } else {
    std::string body, error;
    if (!api_get(s, "/v1/tenants/" + encode(s.tenant) + "/events?page_size=1", body, &error)) return fail(error);
    rapidjson::Document page;
    page.Parse(body.c_str());
    if (!page.HasParseError() && page.IsObject() && page.HasMember("events") && page["events"].Size() == 1)
      last = std::max(0LL, sequence_of(page["events"][0]));
    catch_up(last, LLONG_MAX, false);
  }
  std::fprintf(stderr, "trailctl: tail: following %s after sequence %lld\n", subject.c_str(), last);
  while (!g_stop && (count <= 0 || emitted < count)) {
    if (g_reconnected.exchange(false)) catch_up(last, LLONG_MAX, true);
    natsMsg* m = nullptr;
    const natsStatus st = natsSubscription_NextMsg(&m, sub, 250);
    if (st == NATS_SLOW_CONSUMER) {
      catch_up(last, LLONG_MAX, true);  // messages were dropped: the API has them
      continue;
    }
    if (st != NATS_OK) continue;
    rapidjson::Document e;
    e.Parse(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
    const long long seq = e.HasParseError() ? -1 : sequence_of(e);
    if (seq <= last) continue;  // seen already (a catch-up got there first)
    if (seq > last + 1) catch_up(last, seq - 1, true);
    emit(e);
    last = seq;
  }
  natsSubscription_Destroy(sub);
  return 0;
}

// ---- export ----

std::string with_commas(long long n) {
  std::string d = std::to_string(n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return out;
}

int export_command(const settings& s, const std::vector<std::pair<std::string, std::string>>& filters,
                   const std::string& format, const std::string& file) {
  std::string query = "format=" + format;
  for (const auto& [k, v] : filters)
    if (!v.empty()) query += "&" + k + "=" + encode(v);
  FILE* out = file.empty() || file == "-" ? stdout : std::fopen(file.c_str(), "wb");
  if (!out) return fail("cannot write " + file);
  const bool progress = isatty(STDERR_FILENO) && out != stdout;
  httplib::Client cli(s.api_url);
  cli.set_read_timeout(300, 0);
  httplib::Headers h;
  if (!s.token.empty()) h.emplace("Authorization", "Bearer " + s.token);
  int status = 0;
  std::string error_body;
  long long rows = 0;
  bool write_failed = false;
  std::string line, last_line;  // a ledger export's last complete line names its last sequence
  const auto start = std::chrono::steady_clock::now();
  auto last_shown = start;
  auto show = [&](bool final) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\r  %s rows  %s rows/s%s", with_commas(rows).c_str(),
                 with_commas(static_cast<long long>(secs > 0 ? rows / secs : 0)).c_str(), final ? "\n" : "   ");
  };
  auto res = cli.Get(
      ("/v1/tenants/" + encode(s.tenant) + "/export?" + query).c_str(), h,
      [&](const httplib::Response& r) {
        status = r.status;
        return true;
      },
      [&](const char* data, size_t n) {
        if (status != 200) {
          error_body.append(data, n);
          return true;
        }
        if (std::fwrite(data, 1, n, out) != n) return write_failed = true, false;
        rows += std::count(data, data + n, '\n');
        if (format == "ledger")
          for (size_t i = 0; i < n; ++i) {
            if (data[i] != '\n') {
              line += data[i];
              continue;
            }
            last_line.swap(line);
            line.clear();
          }
        if (progress && std::chrono::steady_clock::now() - last_shown > std::chrono::milliseconds(200)) {
          last_shown = std::chrono::steady_clock::now();
          show(false);
        }
        return true;
      });
  if (out != stdout && std::fclose(out) != 0) write_failed = true;
  if (write_failed) return fail("cannot write " + file);
  if (!res) return fail("the export was cut off (" + httplib::to_string(res.error()) + "): " + file + " is incomplete");
  if (status != 200) {
    rapidjson::Document d;
    d.Parse(error_body.c_str());
    return fail("HTTP " + std::to_string(status) +
                (!d.HasParseError() && d.IsObject() && d.HasMember("message") ? std::string(": ") + d["message"].GetString() : ""));
  }
  if (format == "csv" && rows > 0) --rows;  // the header line
  if (progress) show(true);
  if (out != stdout)
    std::fprintf(stderr, "exported %s %s of tenant %s to %s\n", with_commas(rows).c_str(), format == "csv" ? "records" : "rows",
                 s.tenant.c_str(), file.c_str());
  if (format != "ledger" || out == stdout) return 0;
  // A ledger export goes with what verifies it offline: the tenant's signed
  // checkpoints up to its last exported sequence (every page, one per line),
  // and the verifier key as served. Checkpoints signed after the export read
  // its rows (events go on committing, this export's own access event among
  // them) name sequences the file does not hold: they are left out.
  trail::integrity::ledger_row last_row;
  std::string parse_error;
  int64_t last_sequence = 0;
  if (!last_line.empty()) {
    if (!trail::integrity::parse_ledger_line(last_line, last_row, &parse_error))
      return fail("the export's last line is not a ledger line: " + parse_error);
    last_sequence = last_row.sequence;
  }
  std::string cps;
  long long next = 1, count = 0;
  while (next > 0) {
    std::string body, error;
    if (!api_get(s, "/v1/tenants/" + encode(s.tenant) + "/checkpoints?limit=1000&from_sequence=" + std::to_string(next), body, &error))
      return fail("the checkpoints: " + error);
    rapidjson::Document d;
    d.Parse(body.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("checkpoints")) return fail("the checkpoints: unexpected answer");
    for (const auto& c : d["checkpoints"].GetArray()) {
      if (!c.HasMember("sequence") || !c["sequence"].IsInt64() || c["sequence"].GetInt64() > last_sequence) continue;
      cps += compact(c) + "\n", ++count;
    }
    next = d["next_from_sequence"].IsInt64() ? d["next_from_sequence"].GetInt64() : 0;
  }
  std::string key, error;
  if (!api_get(s, "/v1/integrity/public-key", key, &error)) return fail("the verifier key: " + error);
  if (!(std::ofstream(file + ".checkpoints") << cps) || !(std::ofstream(file + ".pub") << key << "\n"))
    return fail("cannot write " + file + ".checkpoints or " + file + ".pub");
  std::fprintf(stderr, "with its %lld signed checkpoints (%s.checkpoints) and the verifier key as served (%s.pub):\n"
                       "  trailctl verify --export %s   (give --public-key a copy of the key you trust, to rely on it)\n",
               count, file.c_str(), file.c_str(), file.c_str());
  return 0;
}

// ---- dead letters ----

struct dead_letter {
  uint64_t seq = 0;
  int64_t time_ns = 0;
  trail::header_list headers;
  std::string body;
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
    return "";
  }
};

// One stored message of the dead-letter stream; false if there is none at `seq`.
bool read_dead_letter(jsCtx* js, const std::string& stream, uint64_t seq, dead_letter& out, std::string* error) {
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus st = js_GetMsg(&m, js, stream.c_str(), seq, nullptr, &jerr);
  if (st != NATS_OK) {
    *error = trail::nats_error_text(st, jerr);
    return false;
  }
  out.seq = seq;
  out.time_ns = natsMsg_GetTime(m);
  out.body.assign(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
  trail::read_headers(m, out.headers);
  natsMsg_Destroy(m);
  return true;
}

bool stream_range(jsCtx* js, const std::string& stream, uint64_t& first, uint64_t& last) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr) != NATS_OK) return false;
  first = si->State.FirstSeq;
  last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return true;
}

std::string printable(const std::string& s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  return out + (s.size() > max ? "…" : "");
}

int dlq_list(const settings& s, const std::string& stream, int limit, const std::string& reason) {
  nats_link l;
  if (!connect_nats(s, l)) return 1;
  uint64_t first = 0, last = 0;
  if (!stream_range(l.js, stream, first, last)) return fail("no dead-letter stream " + stream + " on " + s.nats_url);
  std::vector<dead_letter> shown;
  // Newest first, skipping deleted sequences.
  for (uint64_t seq = last; seq >= first && seq > 0 && static_cast<int>(shown.size()) < limit; --seq) {
    dead_letter d;
    std::string error;
    if (!read_dead_letter(l.js, stream, seq, d, &error)) continue;
    if (!reason.empty() && d.header("Trail-Dlq-Reason") != reason) continue;
    shown.push_back(std::move(d));
  }
  std::printf("%-8s  %-24s  %-22s  %-8s  %s\n", "seq", "dead-lettered at", "reason", "bytes", "message");
  for (const auto& d : shown) {
    const std::string when = d.time_ns > 0 ? trail::format_rfc3339_us(d.time_ns / 1000).substr(0, 23) + "Z" : "";
    const bool in_db = !d.header("Trail-Dlq-Stored").empty();
    std::printf("%-8llu  %-24s  %-22s  %-8s  %s\n", static_cast<unsigned long long>(d.seq), when.c_str(),
                d.header("Trail-Dlq-Reason").c_str(), in_db ? "(in db)" : std::to_string(d.body.size()).c_str(),
                printable(d.header("Trail-Dlq-Message"), 100).c_str());
  }
  std::printf("(%zu dead letters shown; stream %s holds sequences %llu..%llu)\n", shown.size(), stream.c_str(),
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(last));
  return 0;
}

int dlq_show(const settings& s, const std::string& stream, uint64_t seq, bool raw) {
  nats_link l;
  if (!connect_nats(s, l)) return 1;
  dead_letter d;
  std::string error;
  if (!read_dead_letter(l.js, stream, seq, d, &error))
    return fail("no dead letter " + std::to_string(seq) + " in " + stream + " (" + error + ")");
  if (raw) {
    std::fwrite(d.body.data(), 1, d.body.size(), stdout);
    return 0;
  }
  const bool color = colored();
  const char* bold = color ? "\033[1m" : "";
  const char* reset = color ? "\033[0m" : "";
  std::printf("%sdead letter %llu%s of %s\n", bold, static_cast<unsigned long long>(seq), reset, stream.c_str());
  std::printf("reason:   %s\nmessage:  %s\n", d.header("Trail-Dlq-Reason").c_str(), d.header("Trail-Dlq-Message").c_str());
  std::printf("original: subject %s, sequence %s, delivered %s time(s)\n", d.header("Trail-Dlq-Subject").c_str(),
              d.header("Trail-Dlq-Stream-Sequence").c_str(), d.header("Trail-Dlq-Delivered").c_str());
  std::printf("%sheaders%s\n", bold, reset);
  for (const auto& [k, v] : d.headers)
    if (k.rfind("Trail-Dlq-", 0) != 0 && k != "Nats-Msg-Id") std::printf("  %s: %s\n", k.c_str(), v.c_str());
  if (!d.header("Trail-Dlq-Stored").empty()) {
    std::printf("%sbody%s: kept in PostgreSQL (%s): too large for the broker\n", bold, reset, d.header("Trail-Dlq-Stored").c_str());
    return 0;
  }
  std::printf("%sbody%s (%zu bytes; --raw prints the bytes alone)\n%s\n", bold, reset, d.body.size(), d.body.c_str());
  return 0;
}

int dlq_replay(const settings& s, const std::string& stream, std::vector<uint64_t> seqs, const std::string& reason, bool all,
               const std::string& body_file, const std::string& subject, bool dry_run, bool yes) {
  if (!body_file.empty() && (seqs.size() != 1 || all)) {
    std::fprintf(stderr, "trailctl: --body-file replaces the body of one dead letter: name exactly one\n");
    return 2;
  }
  if (seqs.empty() && !all) {
    std::fprintf(stderr, "trailctl: name the dead letters to replay (their sequences), or --all (with --reason)\n");
    return 2;
  }
  std::string fixed;
  if (!body_file.empty()) {
    std::ifstream in(body_file, std::ios::binary);
    if (!in) return fail("cannot read " + body_file);
    fixed.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  nats_link l;
  if (!connect_nats(s, l)) return 1;
  if (all) {
    uint64_t first = 0, last = 0;
    if (!stream_range(l.js, stream, first, last)) return fail("no dead-letter stream " + stream);
    for (uint64_t q = first; q <= last && q > 0; ++q) seqs.push_back(q);
  }
  struct planned {
    dead_letter d;
    trail::header_list headers;
    std::string body;
  };
  std::vector<planned> plan;
  for (uint64_t q : seqs) {
    planned p;
    std::string error;
    if (!read_dead_letter(l.js, stream, q, p.d, &error)) {
      if (all) continue;
      return fail("no dead letter " + std::to_string(q) + " in " + stream + " (" + error + ")");
    }
    if (!reason.empty() && p.d.header("Trail-Dlq-Reason") != reason) continue;
    if (!p.d.header("Trail-Dlq-Stored").empty() && fixed.empty())
      return fail("dead letter " + std::to_string(q) + " keeps its body in PostgreSQL; replay it with --body-file");
    // The original headers, as published: Trail's verdict dropped, the
    // publisher's broker headers restored except Nats-Msg-Id (the original id
    // is inside the stream's duplicate window or was stored already: the
    // replay gets its own, once per dead letter), and a note of where it came from.
    for (const auto& [k, v] : p.d.headers) {
      if (k.rfind("Trail-Dlq-", 0) == 0 || k == "Nats-Msg-Id" || k == "Trail-Original-Nats-Msg-Id") continue;
      p.headers.emplace_back(k.rfind("Trail-Original-", 0) == 0 ? k.substr(15) : k, v);
    }
    p.headers.emplace_back("Trail-Replayed-From", stream + "/" + std::to_string(q));
    p.body = fixed.empty() ? p.d.body : fixed;
    plan.push_back(std::move(p));
  }
  if (plan.empty()) return fail("no dead letter matches");
  std::printf("%s %zu dead letter(s) to %s:\n", dry_run ? "Would replay" : "Replaying", plan.size(), subject.c_str());
  for (const auto& p : plan)
    std::printf("  %llu  %-22s  %zu bytes%s\n", static_cast<unsigned long long>(p.d.seq), p.d.header("Trail-Dlq-Reason").c_str(),
                p.body.size(), fixed.empty() ? "" : (" (the body of " + body_file + ")").c_str());
  if (dry_run) return 0;
  if (!yes) {
    if (!isatty(STDIN_FILENO)) {
      std::fprintf(stderr, "trailctl: not a terminal: confirm with --yes\n");
      return 2;
    }
    std::printf("Publish them? [y/N] ");
    std::fflush(stdout);
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      std::printf("nothing replayed\n");
      return 1;
    }
  }
  int failures = 0;
  for (const auto& p : plan) {
    // One id per dead letter and body: the same replay twice is one message;
    // a second, different fix is another.
    const auto digest = trail::sha256(p.body);
    std::string tag;
    for (int i = 0; i < 8; ++i) tag += "0123456789abcdef"[digest[i] >> 4], tag += "0123456789abcdef"[digest[i] & 15];
    const std::string msg_id = "trail-replay-" + stream + "-" + std::to_string(p.d.seq) + "-" + tag;
    const auto ack = trail::publish_and_wait(l.js, subject, p.body, p.headers, msg_id.c_str(), 10000);
    if (!ack.ok()) {
      ++failures;
      std::fprintf(stderr, "trailctl: dead letter %llu not replayed: %s\n", static_cast<unsigned long long>(p.d.seq),
                   trail::nats_error_text(ack.status, ack.jerr));
      continue;
    }
    std::printf("replayed %llu%s\n", static_cast<unsigned long long>(p.d.seq),
                ack.duplicate ? " (already replayed: the broker kept the first)" : "");
  }
  return failures ? 1 : 0;
}

// ---- completion ----

void completion_words(const CLI::App* app, std::vector<std::string>& words) {
  for (const auto* sub : app->get_subcommands({})) words.push_back(sub->get_name());
  for (const auto* opt : app->get_options())
    for (const auto& n : opt->get_lnames()) words.push_back("--" + n);
}

int completion_command(const CLI::App& app) {
  std::printf("# bash completion for trailctl: source <(trailctl completion bash)\n_trailctl() {\n");
  std::printf("  local cur=${COMP_WORDS[COMP_CWORD]} path=\"\" w\n");
  std::printf("  for w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do case \"$w\" in -*) ;; *) path=\"$path $w\" ;; esac; done\n");
  std::printf("  case \"${path# }\" in\n");
  // Deeper paths first, so that "dlq replay" is matched before "dlq".
  std::vector<std::pair<const CLI::App*, std::string>> all;
  std::function<void(const CLI::App*, const std::string&)> collect = [&](const CLI::App* a, const std::string& path) {
    all.emplace_back(a, path);
    for (const auto* sub : a->get_subcommands({})) collect(sub, path.empty() ? sub->get_name() : path + " " + sub->get_name());
  };
  collect(&app, "");
  auto depth = [](const std::string& path) {
    return path.empty() ? -1 : static_cast<int>(std::count(path.begin(), path.end(), ' '));
  };
  std::stable_sort(all.begin(), all.end(), [&](const auto& x, const auto& y) { return depth(x.second) > depth(y.second); });
  for (const auto& [a, path] : all) {
    std::vector<std::string> words;
    completion_words(a, words);
    std::string joined;
    for (const auto& w : words) joined += (joined.empty() ? "" : " ") + w;
    if (path.empty()) std::printf("    *) words=\"%s\" ;;\n", joined.c_str());
    else std::printf("    \"%s\"|\"%s \"*) words=\"%s\" ;;\n", path.c_str(), path.c_str(), joined.c_str());
  }
  std::printf("  esac\n  COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") )\n}\ncomplete -F _trailctl trailctl\n");
  return 0;
}

// The MCP server over stdio: one JSON-RPC message per line in, one answer per
// line out (nothing else is written to stdout), answered in order. The
// tools and resources call the API at s.api_url with s.token; TRAIL_TENANT,
// when set, is the tenant a call that names none is about.
int mcp_command(const settings& s) {
  trail::mcp::server_options o;
  o.version = TRAIL_VERSION;
  const trail::mcp::server server(trail::http_api(s.api_url), o);
  trail::mcp::caller c;
  if (!s.tenant.empty()) {
    c.tenants = {s.tenant};
    c.default_tenant = s.tenant;
  }
  if (!s.token.empty()) c.authorization = "Bearer " + s.token;
  for (std::string line; std::getline(std::cin, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string answer = server.handle(line, c);
    if (answer.empty()) continue;
    std::fwrite(answer.data(), 1, answer.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trailctl: Trail from a terminal (docs: README, \"trailctl\")"};
  settings s;
  app.add_option("--api", s.api_url, "the query API's base URL ($TRAIL_API_URL; default http://127.0.0.1:8080)");
  app.add_option("--token", s.token, "bearer token ($TRAIL_TOKEN)");
  app.add_option("--tenant", s.tenant, "tenant ($TRAIL_TENANT)");
  app.add_option("--nats", s.nats_url, "NATS URL(s), comma-separated ($TRAIL_NATS_URL)");
  app.require_subcommand(1);

  auto* send = app.add_subcommand("send", "publish audit events to audit.events and wait for the broker to store each");
  std::vector<std::string> events, headers;
  std::string file, msg_id, subject = "audit.events";
  send->add_option("event", events, "event JSON (bare payload or CloudEvent); none: one per line from stdin");
  send->add_option("-f,--file", file, "a file holding one event");
  send->add_option("-H,--header", headers, "header Name:Value (repeatable; binary mode uses ce-* headers)");
  send->add_option("--msg-id", msg_id, "Nats-Msg-Id (broker-side deduplication)");
  send->add_option("-s,--subject", subject, "subject (default audit.events)");

  auto* query = app.add_subcommand("query", "list events newest first, with the API's filters");
  auto filters = add_filters(query);
  int limit = 50;
  std::string output = "table";
  query->add_option("-n,--limit", limit, "at most this many events (default 50)")->check(CLI::PositiveNumber);
  query->add_option("-o,--output", output, "table, json, ndjson or csv")->check(CLI::IsMember({"table", "json", "ndjson", "csv"}));

  long long sequence = 0;
  auto* get = app.add_subcommand("get", "one event, as its committed CloudEvent");
  get->add_option("sequence", sequence, "the event's sequence")->required()->check(CLI::PositiveNumber);
  auto* diff = app.add_subcommand("diff", "what one event changed, field by field");
  diff->add_option("sequence", sequence, "the event's sequence")->required()->check(CLI::PositiveNumber);
  bool against_broker = false;
  auto* verify = app.add_subcommand("verify", "recompute the tenant's hash chain against its signed checkpoints "
                                              "(online through the API, or offline from files)");
  verify->add_flag("--against-broker", against_broker, "also against the checkpoint stream's copies");
  std::string offline_export, offline_checkpoints, offline_key;
  auto* offline = verify->add_option("--export", offline_export, "offline: NDJSON of trailctl export --format ledger");
  verify->add_option("--checkpoints", offline_checkpoints,
                     "offline: the checkpoints (default: EXPORT.checkpoints, as trailctl export writes it)")->needs(offline);
  verify->add_option("--public-key", offline_key, "offline: the verifier key (default: EXPORT.pub)")->needs(offline);
  offline->excludes("--against-broker");

  auto* tail = app.add_subcommand("tail", "follow the tenant's committed events live (audit.committed.<tenant>); after a "
                                          "disconnection, what was missed is read from the API, so nothing is skipped");
  std::string tail_actions, tail_severities, tail_categories, tail_actor, tail_resource_type, tail_resource_id;
  std::string tail_output = "table", committed_prefix = "audit.committed";
  long long tail_from = 0, tail_count = 0;
  tail->add_option("--actions", tail_actions, "only these actions (comma-separated)");
  tail->add_option("--severities", tail_severities, "only these severities (comma-separated)");
  tail->add_option("--categories", tail_categories, "only these categories (comma-separated)");
  tail->add_option("--actor-id", tail_actor, "only this actor");
  tail->add_option("--resource-type", tail_resource_type, "only this primary resource type");
  tail->add_option("--resource-id", tail_resource_id, "only this primary resource id");
  tail->add_option("--from-sequence", tail_from, "start at this sequence (default: what is committed from now on)")
      ->check(CLI::PositiveNumber);
  tail->add_option("-n,--count", tail_count, "stop after this many events")->check(CLI::PositiveNumber);
  tail->add_option("-o,--output", tail_output, "table or ndjson")->check(CLI::IsMember({"table", "ndjson", "json"}));
  tail->add_option("--committed-prefix", committed_prefix, "nats.committed_prefix of the installation");

  auto* exp = app.add_subcommand("export", "export every matching event (oldest first) to a file, with progress on a terminal");
  auto export_filters = add_filters(exp);
  std::string export_format = "ndjson", export_file;
  exp->add_option("--format", export_format, "ndjson, csv or ledger (for offline verification)")
      ->check(CLI::IsMember({"ndjson", "csv", "ledger"}));
  exp->add_option("-f,--file", export_file, "the file to write (default: stdout)");

  auto* dlq = app.add_subcommand("dlq", "dead-lettered messages: list, show, replay after a fix");
  dlq->require_subcommand(1);
  std::string dlq_stream = "AUDIT_DLQ", dlq_reason;
  dlq->add_option("--stream", dlq_stream, "the dead-letter stream (nats.dlq_stream; default AUDIT_DLQ)");
  auto* dlq_ls = dlq->add_subcommand("list", "the newest dead letters: sequence, time, reason, size, message");
  int dlq_limit = 50;
  dlq_ls->add_option("-n,--limit", dlq_limit, "at most this many (default 50)")->check(CLI::PositiveNumber);
  dlq_ls->add_option("--reason", dlq_reason, "only this reason (e.g. payload_invalid)");
  auto* dlq_sh = dlq->add_subcommand("show", "one dead letter: its reason, the original headers and bytes");
  uint64_t dlq_seq = 0;
  bool dlq_raw = false;
  dlq_sh->add_option("sequence", dlq_seq, "its sequence in the dead-letter stream")->required()->check(CLI::PositiveNumber);
  dlq_sh->add_flag("--raw", dlq_raw, "the original bytes alone");
  auto* dlq_rp = dlq->add_subcommand("replay", "re-publish dead letters to audit.events (asks first)");
  std::vector<uint64_t> replay_seqs;
  bool replay_all = false, replay_dry = false, replay_yes = false;
  std::string replay_body, replay_subject = "audit.events";
  dlq_rp->add_option("sequences", replay_seqs, "their sequences in the dead-letter stream");
  dlq_rp->add_flag("--all", replay_all, "every dead letter (narrow with --reason)");
  dlq_rp->add_option("--reason", dlq_reason, "only those with this reason");
  dlq_rp->add_option("--body-file", replay_body, "publish this fixed body instead of the stored one (one dead letter)");
  dlq_rp->add_option("-s,--subject", replay_subject, "where to publish (default audit.events)");
  dlq_rp->add_flag("--dry-run", replay_dry, "show what would be published, publish nothing");
  dlq_rp->add_flag("-y,--yes", replay_yes, "do not ask");

  auto* completion = app.add_subcommand("completion", "print a shell completion script (bash)");
  std::string shell = "bash";
  completion->add_option("shell", shell, "bash")->check(CLI::IsMember({"bash"}));

  auto* mcp = app.add_subcommand("mcp", "serve MCP over stdio (for an agent that launches Trail as a local server)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  resolve(s);
  if (send->parsed()) return send_command(s, events, file, headers, msg_id, subject);
  if (mcp->parsed()) return mcp_command(s);
  if (completion->parsed()) return completion_command(app);
  if (dlq->parsed()) {
    if (dlq_ls->parsed()) return dlq_list(s, dlq_stream, dlq_limit, dlq_reason);
    if (dlq_sh->parsed()) return dlq_show(s, dlq_stream, dlq_seq, dlq_raw);
    return dlq_replay(s, dlq_stream, replay_seqs, dlq_reason, replay_all, replay_body, replay_subject, replay_dry, replay_yes);
  }
  if (verify->parsed() && !offline_export.empty()) {
    // What `trailctl export --format ledger -f F` writes beside F.
    auto beside = [&offline_export](std::string& v, const char* suffix) {
      if (v.empty() && std::ifstream(offline_export + suffix)) v = offline_export + suffix;
    };
    beside(offline_checkpoints, ".checkpoints");
    beside(offline_key, ".pub");
    if (offline_checkpoints.empty() || offline_key.empty()) {
      std::fprintf(stderr, "trailctl: offline verification needs --export, --checkpoints and --public-key\n");
      return 2;
    }
    return trail::verify_command(offline_export, offline_checkpoints, offline_key);
  }
  if (s.tenant.empty()) {
    std::fprintf(stderr, "trailctl: --tenant (or TRAIL_TENANT) is required\n");
    return 2;
  }
  if (query->parsed()) return query_command(s, *filters, limit, output);
  if (tail->parsed()) {
    event_filter f;
    f.actions = event_filter::list(tail_actions, nullptr);
    f.severities = event_filter::list(tail_severities, "SEVERITY_");
    f.categories = event_filter::list(tail_categories, "CATEGORY_");
    f.actor_id = tail_actor;
    f.resource_type = tail_resource_type;
    f.resource_id = tail_resource_id;
    return tail_command(s, f, tail_output, tail_from, tail_count, committed_prefix);
  }
  if (exp->parsed()) return export_command(s, *export_filters, export_format, export_file);
  if (get->parsed()) return get_command(s, sequence);
  if (diff->parsed()) return diff_command(s, sequence);
  if (verify->parsed()) return verify_command(s, against_broker);
  return 2;
}
