// trailctl: Trail from a terminal.
//
//   trailctl send '{"tenant_id":"acme",…}'        publish events (or --file F, or one per line on stdin)
//   trailctl query --actor-id u-1 --last 24h      the API's listing, as a table (--output json|ndjson|csv)
//                                                 (list filters take commas: --actions a,b --severities warning,error)
//   trailctl get 42                               one event (its committed CloudEvent)
//   trailctl diff 42                              what it changed, field by field (colored on a terminal)
//   trailctl verify [--against-broker]            the tenant's chain, online
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
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "api/mcp_routes.h"
#include "ingest/jetstream.h"
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
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  trail::set_servers(o, s.nats_url);
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  const bool up = natsConnection_Connect(&nc, o) == NATS_OK && natsConnection_JetStream(&js, nc, nullptr) == NATS_OK;
  natsOptions_Destroy(o);
  if (!up) return fail("cannot connect to NATS at " + s.nats_url);
  int failures = 0;
  for (const auto& body : bodies) {
    trail::header_list h;
    for (const auto& x : headers) {
      const auto colon = x.find(':');
      if (colon != std::string::npos) h.emplace_back(x.substr(0, colon), x.substr(colon + 1));
    }
    const auto ack = trail::publish_and_wait(js, subject, body, h, msg_id.empty() ? nullptr : msg_id.c_str(), 10000);
    if (!ack.ok()) {
      ++failures;
      std::fprintf(stderr, "trailctl: not stored: %s\n", trail::nats_error_text(ack.status, ack.jerr));
    } else {
      std::printf("stored in the stream%s\n", ack.duplicate ? " (a duplicate of a message it holds)" : "");
    }
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
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
  // The API's parameter names (lists are comma-separated: --actions a,b).
  std::vector<std::pair<std::string, std::string>> filters = {
      {"actor_id", ""}, {"actor_type", ""}, {"actions", ""}, {"categories", ""}, {"severities", ""},
      {"resource_type", ""}, {"resource_id", ""}, {"source_service", ""}, {"correlation_id", ""},
      {"trace_id", ""}, {"outcome", ""}, {"from", ""}, {"to", ""}, {"last", ""}};
  for (auto& [name, value] : filters) {
    std::string flag = "--" + name;
    for (auto& c : flag)
      if (c == '_') c = '-';
    query->add_option(flag, value, "filter: " + name + " (as the API's parameter)");
  }
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
  auto* verify = app.add_subcommand("verify", "recompute the tenant's hash chain against its signed checkpoints");
  verify->add_flag("--against-broker", against_broker, "also against the checkpoint stream's copies");

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
  if (s.tenant.empty()) {
    std::fprintf(stderr, "trailctl: --tenant (or TRAIL_TENANT) is required\n");
    return 2;
  }
  if (query->parsed()) return query_command(s, filters, limit, output);
  if (get->parsed()) return get_command(s, sequence);
  if (diff->parsed()) return diff_command(s, sequence);
  if (verify->parsed()) return verify_command(s, against_broker);
  return 2;
}
