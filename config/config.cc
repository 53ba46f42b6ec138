#include "config/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>
#include <thread>
#include <variant>

extern char** environ;

namespace trail {
namespace {

struct knob {
  const char* name;  // "section.key"
  std::variant<std::string config::*, int64_t config::*, bool config::*> field;
  std::variant<const char*, int64_t, bool> fallback;
  const char* unit;
  const char* meaning;
  int64_t min = 0;
  int64_t max = INT64_MAX;
  bool secret = false;
};

constexpr int64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr int64_t kDay = 86400;

// Settings an earlier Trail read and this one no longer does: accepted in a
// file or the environment (so an upgrade does not fail to start) and reported
// by traild as a warning with the reason.
const std::vector<std::pair<const char*, const char*>>& retired_knobs() {
  static const std::vector<std::pair<const char*, const char*>> all = {
      {"batch.max_events", "batch size now follows load: a writer takes what gathered during its last transaction (pg.txn_max_events bounds it)"},
      {"batch.max_bytes", "batch size now follows load (pg.txn_max_bytes bounds it)"},
      {"batch.max_linger_ms", "there is no linger: an idle writer takes an event as soon as it is validated"},
      {"batch.idle_stop_s", "there are no per-tenant batcher actors to stop"},
      {"batch.max_tenant_batchers", "there are no per-tenant batcher actors; batchers are one per writer"},
  };
  return all;
}

const std::vector<knob>& knobs() {
  static const std::vector<knob> all = {
      {"nats.url", &config::nats_url, "nats://127.0.0.1:4222", "URL",
       "NATS server(s), comma-separated; credentials in the URL are masked in logs", 0, 0, true},
      {"nats.stream", &config::stream, "AUDIT", "name",
       "JetStream stream capturing audit.events and audit.events.>; created at start if missing"},
      {"nats.stream_max_age_s", &config::stream_max_age_s, int64_t{7 * kDay}, "seconds",
       "how long the broker keeps audit events (0 = forever)"},
      {"nats.stream_max_bytes", &config::stream_max_bytes, int64_t{-1}, "bytes",
       "size limit of the audit stream (-1 = unlimited)", -1},
      {"nats.duplicate_window_s", &config::duplicate_window_s, int64_t{120}, "seconds",
       "window in which the broker drops publishes repeating a Nats-Msg-Id", 1},
      {"nats.consumer", &config::consumer, "trail-ingest", "name",
       "durable pull consumer shared by every traild replica"},
      {"nats.ack_wait_s", &config::ack_wait_s, int64_t{60}, "seconds",
       "redelivery timeout of an un-acked message; longer than a transaction", 5},
      {"nats.max_deliver", &config::max_deliver, int64_t{20}, "count",
       "deliveries tried before Trail dead-letters a message (reason max_deliver_exceeded); the broker itself never gives up",
       2},
      {"nats.max_ack_pending", &config::max_ack_pending, int64_t{100000}, "messages",
       "messages the broker lets traild hold un-acked; at least limits.inflight_max_events", 1},
      {"nats.fetch_batch", &config::fetch_batch, int64_t{512}, "messages", "messages per pull request", 1, 10000},
      {"nats.fetch_expires_ms", &config::fetch_expires_ms, int64_t{500}, "milliseconds",
       "how long a pull request waits for a first message when the stream is idle", 10},
      {"nats.fetch_wait_ms", &config::fetch_wait_ms, int64_t{5}, "milliseconds",
       "while events flow, how long a pull request waits to fill its batch (latency it adds)", 1},
      {"nats.dlq_subject", &config::dlq_subject, "audit.dlq", "subject", "where invalid events are dead-lettered"},
      {"nats.dlq_stream", &config::dlq_stream, "AUDIT_DLQ", "name", "JetStream stream storing dead letters"},
      {"nats.dlq_max_age_s", &config::dlq_max_age_s, int64_t{30 * kDay}, "seconds",
       "how long dead letters are kept (0 = forever)"},
      {"nats.committed_enabled", &config::committed_enabled, true, "bool",
       "republish each committed event on <committed_prefix>.<tenant_id>"},
      {"nats.committed_prefix", &config::committed_prefix, "audit.committed", "subject", "prefix of committed subjects"},
      {"nats.committed_stream", &config::committed_stream, "AUDIT_COMMITTED", "name",
       "JetStream stream capturing committed events so subscribers can replay (empty = core NATS only)"},
      {"nats.committed_max_age_s", &config::committed_max_age_s, int64_t{7 * kDay}, "seconds",
       "how long committed events are kept (0 = forever)"},
      {"nats.committed_max_bytes", &config::committed_max_bytes, int64_t{-1}, "bytes",
       "size limit of the committed stream (-1 = unlimited)", -1},
      {"nats.publish_max_pending", &config::publish_max_pending, int64_t{65536}, "messages",
       "asynchronous publishes awaiting the broker's acknowledgement", 1},
      {"nats.publish_ack_timeout_ms", &config::publish_ack_timeout_ms, int64_t{10000}, "milliseconds",
       "how long a committed event's republish waits for the broker's acknowledgement before it is retried", 100},
      {"nats.republish_retry_max", &config::republish_retry_max, int64_t{65536}, "events",
       "committed events waiting to be republished again; at this bound acks wait (backpressure)", 1},
      {"nats.outbox_reconcile_after_s", &config::outbox_reconcile_after_s, int64_t{60}, "seconds",
       "committed events whose republish is still unconfirmed this long after COMMIT are republished from the table (audit.outbox)",
       1},
      {"nats.stream_replicas", &config::stream_replicas, int64_t{1}, "replicas",
       "replicas of the streams Trail creates; existing streams keep their own settings", 1, 5},

      {"pg.dsn", &config::pg_dsn, "postgresql://postgres@127.0.0.1:5432/trail", "libpq DSN",
       "PostgreSQL connection string of the write side: the trail_ingest role for `run` (it needs BYPASSRLS), the schema's owner for `migrate`; the password is masked in logs",
       0, 0, true},
      {"pg.writers", &config::writers, int64_t{2}, "connections",
       "writer threads, each with its own connection; tenants are spread over them", 1, 64},
      {"pg.txn_max_events", &config::txn_max_events, int64_t{4000}, "events",
       "events merged into one COPY transaction", 1},
      {"pg.txn_max_bytes", &config::txn_max_bytes, int64_t{16 * MiB}, "bytes",
       "COPY bytes merged into one transaction", 1 * KiB},
      {"pg.partitions_ahead_days", &config::partitions_ahead_days, int64_t{7}, "days",
       "daily partitions kept created ahead of today"},
      {"pg.partitions_behind_days", &config::partitions_behind_days, int64_t{7}, "days",
       "daily partitions created behind today at start (late events; older ones go to the default partition)"},
      {"pg.connect_timeout_s", &config::pg_connect_timeout_s, int64_t{10}, "seconds",
       "a PostgreSQL connection attempt that takes longer fails (and is retried)", 1},
      {"pg.statement_timeout_s", &config::pg_statement_timeout_s, int64_t{60}, "seconds",
       "a statement PostgreSQL has not answered by then is abandoned with its connection (and retried); "
       "also sent as the server's statement_timeout", 1},
      {"pg.known_tenants_max", &config::known_tenants_max, int64_t{100000}, "tenants",
       "tenants each writer remembers as having a head row; at the bound the memory is cleared", 1},

      {"validate.validators", &config::validators, int64_t{0}, "actors",
       "validator actors (0 = one per core)", 0, 256},
      {"validate.max_event_bytes", &config::max_event_bytes, int64_t{256 * KiB}, "bytes",
       "largest accepted event", 1 * KiB},
      {"validate.max_batch_bytes", &config::max_batch_bytes, int64_t{4 * MiB}, "bytes",
       "largest accepted batch-mode message", 1 * KiB},
      {"validate.max_batch_events", &config::max_batch_events, int64_t{1000}, "events",
       "most events in one batch-mode message", 1},
      {"validate.max_json_depth", &config::max_json_depth, int64_t{64}, "levels",
       "deepest accepted JSON nesting", 4, 1000},
      {"validate.max_object_keys", &config::max_object_keys, int64_t{10000}, "keys",
       "most members in any one JSON object of an event", 16},

      {"limits.inflight_max_events", &config::inflight_max_events, int64_t{20000}, "events",
       "messages fetched and not yet acked or dead-lettered; fetching pauses at this bound", 1},
      {"limits.inflight_max_bytes", &config::inflight_max_bytes, int64_t{64 * MiB}, "bytes",
       "bytes of those messages; fetching pauses at this bound", 64 * KiB},

      {"api.pg_dsn", &config::api_pg_dsn, "", "libpq DSN",
       "the query API's connection, as the trail_reader role (row-level security); empty = read side off (its routes answer 503)",
       0, 0, true},
      {"api.pg_connections", &config::api_pg_connections, int64_t{4}, "connections",
       "PostgreSQL connections of the query API (requests beyond them wait up to 5 s)", 1, 256},
      {"api.jwt_hs256_secret", &config::api_jwt_hs256_secret, "", "text",
       "secret of HS256 bearer tokens (empty = HS256 refused); also signs `traild dev-token`", 0, 0, true},
      {"api.jwt_rs256_public_key_file", &config::api_jwt_rs256_public_key_file, "", "path",
       "PEM public key of RS256 bearer tokens (empty = RS256 refused)"},
      {"api.jwt_es256_public_key_file", &config::api_jwt_es256_public_key_file, "", "path",
       "PEM public key of ES256 bearer tokens (empty = ES256 refused)"},
      {"api.jwt_leeway_s", &config::api_jwt_leeway_s, int64_t{60}, "seconds",
       "clock skew allowed when checking a token's exp and nbf", 0, 3600},
      {"api.keys_file", &config::api_keys_file, "", "path",
       "static API keys: lines \"<sha256 hex of the key> <tenant> <scopes,comma-separated> <name>\" (empty = none)"},
      {"api.meta_audit", &config::api_meta_audit, "required", "required|best_effort",
       "every read and refusal is recorded in the tenant's trail; required: a read whose record cannot be handed to the broker fails with 503"},
      {"api.write_commit_wait_ms", &config::api_write_commit_wait_ms, int64_t{5000}, "milliseconds",
       "how long a synchronous write (POST …/events) waits for its COMMIT before answering 504 commit_pending", 100, 600000},
      {"api.max_streams", &config::api_max_streams, int64_t{32}, "streams",
       "live streams (GET …/events:stream, the viewer's Live) one traild serves at once; each holds an HTTP worker "
       "thread, and the pool is sized for them", 1, 1024},
      {"api.max_streams_per_tenant", &config::api_max_streams_per_tenant, int64_t{8}, "streams",
       "live streams one tenant may hold open at once on one traild, so that no tenant can take every slot", 1, 1024},
      {"mcp.enabled", &config::mcp_enabled, true, "bool",
       "serve the MCP endpoint (POST /mcp on http.addr): the query API's tools and resources for AI agents, with the same "
       "bearer tokens"},
      {"mcp.allowed_hosts", &config::mcp_allowed_hosts, "localhost,127.0.0.1,::1", "comma-separated host names",
       "Host header names /mcp answers (DNS-rebinding protection; * = any), also the host names an Origin header may carry"},
      {"mcp.allowed_origins", &config::mcp_allowed_origins, "", "comma-separated origins",
       "further Origin values /mcp accepts, exactly (e.g. https://agents.example.com)"},
      {"mcp.export_max_rows", &config::mcp_export_max_rows, int64_t{10000}, "events",
       "the most events one export_events call returns", 1, 1000000},
      {"integrity.signing_key_file", &config::integrity_signing_key_file, "", "path",
       "Ed25519 key that signs checkpoints of every tenant's chain (`traild keygen` writes one); empty = no checkpoints, "
       "the chain alone (traild warns)"},
      {"integrity.public_key_file", &config::integrity_public_key_file, "", "path",
       "the verifier key of the checkpoints, for a traild that serves the API without signing; empty = taken from "
       "integrity.signing_key_file"},
      {"integrity.checkpoint_interval_s", &config::checkpoint_interval_s, int64_t{10}, "seconds",
       "how often tenants whose chain moved get a signed checkpoint (also at every UTC midnight, a partition boundary)",
       1, 86400},
      {"integrity.checkpoint_prefix", &config::checkpoint_prefix, "audit.checkpoints", "subject",
       "checkpoints are published on <prefix>.<tenant_id>"},
      {"integrity.checkpoint_stream", &config::checkpoint_stream, "AUDIT_CHECKPOINTS", "name",
       "JetStream stream keeping the checkpoints: the copy outside the database that verification compares against"},
      {"integrity.checkpoint_max_age_s", &config::checkpoint_max_age_s, int64_t{0}, "seconds",
       "how long the checkpoint stream keeps checkpoints (0 = forever; keep them at least as long as the events)"},
      {"retention.days", &config::retention_days, int64_t{0}, "days",
       "daily partitions whose day ended this long ago are archived (verified) and dropped; 0 = keep forever", 0},
      {"retention.tenant_days", &config::retention_tenant_days, "", "tenant=days,…",
       "longer retention for some tenants (never shorter than retention.days): a partition holding their events is kept that long"},
      {"retention.pg_dsn", &config::retention_pg_dsn, "", "libpq DSN",
       "the connection of retention and legal holds, as the trail_maintenance role; empty = retention off", 0, 0, true},
      {"retention.archive_dir", &config::retention_archive_dir, "", "path",
       "where archives and their signed manifests are written (keep it on storage the database's administrators cannot rewrite)"},
      {"retention.interval_s", &config::retention_interval_s, int64_t{3600}, "seconds",
       "how often traild runs a retention pass", 60},
      {"http.addr", &config::http_addr, "0.0.0.0:8080", "host:port", "HTTP API: /v1 (the query API), /healthz, /readyz"},
      {"http.max_connections", &config::http_max_connections, int64_t{4096}, "connections",
       "open connections per listener (http.addr; metrics.addr takes 64); past it a connection gets 503 and is closed "
       "(traild raises its open-files limit to fit)", 16, 1000000},
      {"http.max_connections_per_address", &config::http_max_connections_per_address, int64_t{256}, "connections",
       "open connections from one client address; behind a proxy or load balancer that hides client addresses, raise "
       "it to http.max_connections (docs/SECURITY.md)", 1, 1000000},
      {"http.header_timeout_ms", &config::http_header_timeout_ms, int64_t{10000}, "milliseconds",
       "a request's header must arrive within this of its first byte (slow headers are cut off)", 100, 600000},
      {"http.idle_timeout_ms", &config::http_idle_timeout_ms, int64_t{60000}, "milliseconds",
       "how long a keep-alive connection may wait for its next request", 100, 3600000},
      {"http.body_timeout_ms", &config::http_body_timeout_ms, int64_t{30000}, "milliseconds",
       "a request's body must arrive within this", 100, 600000},
      {"http.write_timeout_ms", &config::http_write_timeout_ms, int64_t{30000}, "milliseconds",
       "a response, or each chunk of a streamed one, must be taken by the client within this", 100, 600000},
      {"http.max_header_bytes", &config::http_max_header_bytes, int64_t{16 * KiB}, "bytes",
       "largest request line and headers (431 past it)", 1 * KiB, 1 * MiB},
      {"http.max_body_bytes", &config::http_max_body_bytes, int64_t{1 * MiB}, "bytes",
       "largest request body (a synchronous write), refused with 413 before it is read; /mcp takes 4 MiB", 1 * KiB, 64 * MiB},
      {"http.max_batch_body_bytes", &config::http_max_batch_body_bytes, int64_t{8 * MiB}, "bytes",
       "largest body of POST …/events:batch", 1 * KiB, 256 * MiB},
      {"http.workers", &config::http_workers, int64_t{16}, "threads",
       "requests handled at once on http.addr, besides one thread per live stream (api.max_streams)", 1, 1024},
      {"http.queue_max", &config::http_queue_max, int64_t{256}, "requests",
       "requests waiting for a worker; past it, 503 overloaded at once", 1, 100000},
      {"metrics.addr", &config::metrics_addr, "0.0.0.0:9464", "host:port", "Prometheus /metrics"},
      {"metrics.top_tenants", &config::metrics_top_tenants, int64_t{0}, "tenants",
       "export committed-event counts for this many busiest tenants (0 = off: no tenant labels)", 0, 1000},
      {"log.format", &config::log_format, "json", "json|text", "log line format"},
      {"log.level", &config::log_level, "info", "debug|info|warn|error", "lowest level logged"},
      {"shutdown.deadline_s", &config::shutdown_deadline_s, int64_t{25}, "seconds",
       "on SIGTERM, time to flush and commit before exiting", 1},
  };
  return all;
}

std::string env_name(const std::string& knob_name) {
  std::string out = "TRAIL_";
  for (char c : knob_name) out.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

void set_value(config& c, const knob& k, const std::string& text) {
  std::visit(
      [&](auto field) {
        using T = std::remove_cvref_t<decltype(c.*field)>;
        if constexpr (std::is_same_v<T, std::string>) {
          c.*field = text;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (text == "true" || text == "1" || text == "yes") c.*field = true;
          else if (text == "false" || text == "0" || text == "no") c.*field = false;
          else throw config_error(std::string(k.name) + ": '" + text + "' is not a boolean");
        } else {
          size_t pos = 0;
          int64_t v = 0;
          try {
            v = std::stoll(text, &pos);
          } catch (...) {
            pos = 0;
          }
          if (pos != text.size() || text.empty())
            throw config_error(std::string(k.name) + ": '" + text + "' is not an integer (" + k.unit + ")");
          c.*field = v;
        }
      },
      k.field);
}

void check_range(const config& c, const knob& k) {
  if (const auto* f = std::get_if<int64_t config::*>(&k.field)) {
    const int64_t v = c.**f;
    if (v < k.min || v > k.max)
      throw config_error(std::string(k.name) + " = " + std::to_string(v) + " is out of range [" +
                         std::to_string(k.min) + ", " + std::to_string(k.max) + "]");
  }
}

std::string value_text(const config& c, const knob& k) {
  return std::visit(
      [&](auto field) -> std::string {
        using T = std::remove_cvref_t<decltype(c.*field)>;
        if constexpr (std::is_same_v<T, std::string>) return c.*field;
        else if constexpr (std::is_same_v<T, bool>) return c.*field ? "true" : "false";
        else return std::to_string(c.*field);
      },
      k.field);
}

}  // namespace

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos && kv.rfind("TRAIL_", 0) == 0) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

config load_config(const std::string& path, const std::map<std::string, std::string>& env) {
  config c{};
  for (const auto& k : knobs()) {
    std::visit(
        [&](auto field) {
          using T = std::remove_cvref_t<decltype(c.*field)>;
          std::visit(
              [&](auto def) {
                if constexpr (std::is_same_v<T, std::string> && std::is_same_v<decltype(def), const char*>) c.*field = def;
                else if constexpr (std::is_same_v<T, int64_t> && std::is_same_v<decltype(def), int64_t>) c.*field = def;
                else if constexpr (std::is_same_v<T, bool> && std::is_same_v<decltype(def), bool>) c.*field = def;
              },
              k.fallback);
        },
        k.field);
  }
  if (!path.empty()) {
    toml::table tbl;
    try {
      tbl = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      std::ostringstream os;
      os << "config file " << path << ": " << e.description() << " at line " << e.source().begin.line;
      throw config_error(os.str());
    }
    // Every key in the file must be a known knob: a typo must not silently fall back to a default.
    for (const auto& [section, node] : tbl) {
      const auto* sub = node.as_table();
      if (!sub) throw config_error("config file " + path + ": '" + std::string(section.str()) + "' must be a [section]");
      for (const auto& [key, value] : *sub) {
        const std::string name = std::string(section.str()) + "." + std::string(key.str());
        auto it = std::find_if(knobs().begin(), knobs().end(), [&](const knob& k) { return name == k.name; });
        if (it == knobs().end()) {
          auto old = std::find_if(retired_knobs().begin(), retired_knobs().end(), [&](const auto& r) { return name == r.first; });
          if (old == retired_knobs().end())
            throw config_error("config file " + path + ": unknown setting '" + name + "'");
          c.retired.push_back(name + " (in " + path + ") is no longer used: " + old->second);
          continue;
        }
        std::string text;
        if (auto s = value.value<std::string>(); s && value.is_string()) text = *s;
        else if (value.is_integer()) text = std::to_string(*value.value<int64_t>());
        else if (value.is_boolean()) text = *value.value<bool>() ? "true" : "false";
        else throw config_error("config file " + path + ": " + name + " has an unsupported value type");
        set_value(c, *it, text);
      }
    }
  }
  for (const auto& k : knobs()) {
    auto it = env.find(env_name(k.name));
    if (it != env.end()) set_value(c, k, it->second);
    check_range(c, k);
  }
  for (const auto& [name, why] : retired_knobs())
    if (env.count(env_name(name))) c.retired.push_back(env_name(name) + " is no longer used: " + why);
  if (c.log_format != "json" && c.log_format != "text") throw config_error("log.format must be json or text");
  if (c.api_meta_audit != "required" && c.api_meta_audit != "best_effort")
    throw config_error("api.meta_audit must be required or best_effort");
  if (c.max_ack_pending < c.inflight_max_events)
    throw config_error("nats.max_ack_pending must be at least limits.inflight_max_events");
  if (c.validators == 0) c.validators = std::max<int64_t>(1, std::thread::hardware_concurrency());
  parse_tenant_days(c.retention_tenant_days, c.retention_days);  // refuses a malformed or shorter one now
  if (c.retention_days > 0 && !c.retention_pg_dsn.empty() && c.retention_archive_dir.empty())
    throw config_error("retention.archive_dir must name a directory when retention.days is set");
  return c;
}

std::map<std::string, int64_t> parse_tenant_days(const std::string& text, int64_t at_least) {
  std::map<std::string, int64_t> out;
  for (size_t s = 0; s < text.size();) {
    size_t e = text.find(',', s);
    if (e == std::string::npos) e = text.size();
    const std::string item = text.substr(s, e - s);
    const size_t eq = item.find('=');
    int64_t days = -1;
    try {
      if (eq != std::string::npos && eq > 0) days = std::stoll(item.substr(eq + 1));
    } catch (...) {
      days = -1;
    }
    if (days < 0) throw config_error("retention.tenant_days: '" + item + "' is not tenant=days");
    if (days != 0 && at_least == 0)
      throw config_error("retention.tenant_days: " + item + " is shorter than retention.days = 0 (forever)");
    if (days != 0 && days < at_least)
      throw config_error("retention.tenant_days: " + item + " is shorter than retention.days; overrides may only be longer");
    out[item.substr(0, eq)] = days == 0 ? (int64_t{1} << 40) : days;  // 0: forever
    s = e + 1;
  }
  return out;
}

std::string mask_secret(const std::string& v) {
  // URL form, in every URL of a comma-separated list:
  // scheme://user:password@host -> scheme://user:****@host, and
  // nats://token@host (NATS token auth) -> nats://****@host.
  static const std::regex url_userinfo(R"(([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@,\s]*)@)");
  std::string out;
  auto begin = std::sregex_iterator(v.begin(), v.end(), url_userinfo);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out.append(v, last, static_cast<size_t>(m.position(0)) - last);
    out += m[1].str();
    const std::string userinfo = m[2].str();
    const auto colon = userinfo.find(':');
    if (colon != std::string::npos) {
      out += userinfo.substr(0, colon + 1) + "****";
    } else {
      // A lone user part is a token in NATS URLs, a user name elsewhere.
      const std::string scheme = m[1].str();
      const bool nats = scheme.rfind("nats", 0) == 0 || scheme.rfind("tls", 0) == 0 || scheme.rfind("ws", 0) == 0;
      out += nats ? std::string("****") : userinfo;
    }
    out += '@';
    last = static_cast<size_t>(m.position(0) + m.length(0));
  }
  out.append(v, last, std::string::npos);
  // key/value form: password=secret
  static const std::regex kv_pw(R"((password\s*=\s*)('[^']*'|\S+))");
  return std::regex_replace(out, kv_pw, "$1****");
}

std::vector<std::pair<std::string, std::string>> describe(const config& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : knobs()) {
    std::string v = value_text(c, k);
    // A connection string keeps everything but its password; any other
    // secret (a signing key) is hidden whole.
    const bool connection = std::string_view(k.unit) == "URL" || std::string_view(k.unit) == "libpq DSN";
    if (k.secret) v = connection ? mask_secret(v) : (v.empty() ? v : "****");
    out.emplace_back(k.name, v);
  }
  return out;
}

std::string default_config_toml() {
  config c = load_config("", {});
  std::ostringstream os;
  os << "# Trail configuration: every setting at its default, with its unit and meaning.\n"
        "# Any setting can be overridden by an environment variable TRAIL_<SECTION>_<KEY>,\n"
        "# e.g. nats.url -> TRAIL_NATS_URL, pg.dsn -> TRAIL_PG_DSN. All settings need a restart.\n"
        "# Generated by `traild config defaults`; tests/unit/config_test.cc keeps this file in step.\n";
  std::string section;
  for (const auto& k : knobs()) {
    std::string name = k.name;
    const auto dot = name.find('.');
    const std::string sec = name.substr(0, dot), key = name.substr(dot + 1);
    if (sec != section) {
      os << "\n[" << sec << "]\n";
      section = sec;
    }
    os << "# " << k.meaning << " [" << k.unit << "; env " << env_name(k.name) << "]\n";
    std::string v = value_text(c, k);
    if (k.name == std::string("validate.validators")) v = "0";
    if (std::holds_alternative<std::string config::*>(k.field)) os << key << " = \"" << v << "\"\n";
    else os << key << " = " << v << "\n";
  }
  return os.str();
}

}  // namespace trail
