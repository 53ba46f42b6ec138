// traild: Trail's audit-log service.
//
//   traild [--config FILE] run        consume audit.events into PostgreSQL (the default)
//   traild [--config FILE] migrate    apply the schema migrations
//   traild config defaults            print every setting at its default (config/trail.toml)
//   traild [--config FILE] config show   print the effective settings, secrets masked
//   traild [--config FILE] dev-token --tenant T [--scopes …] [--subject S] [--ttl 1h]
//                                     print an HS256 bearer token signed with api.jwt_hs256_secret
//   traild keygen --name NAME --out FILE
//                                     write a checkpoint signing key (and FILE.pub)
//   traild verify --export FILE --checkpoints FILE --public-key FILE
//   traild verify --archive FILE --public-key FILE
//                                     verify a ledger export or a retention archive offline
//   traild retention run              one retention pass now
//   traild legal-hold place|release|list …
//
// Threads of `run`: main (start-up, then shutdown), a signal waiter, the fetch
// thread, CAF's scheduler (validators, lane batchers), one thread per
// PostgreSQL writer, the commit finalizer, the dead-letter publisher, the
// partition keeper, the checkpointer, and the HTTP servers' pools (the query API and health;
// metrics).

#include <CLI/CLI.hpp>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "actors/actor_metrics.h"
#include "app/integrity_cmd.h"
#include "app/options.h"
#include "ingest/ingest_metrics.h"
#include "sinks/writer_metrics.h"
#include "actors/pipeline.h"
#include "api/http_server.h"
#include "api/mcp_routes.h"
#include "api/query_routes.h"
#include "common/time.h"
#include "api/metrics_server.h"
#include "common/log.h"
#include "common/metrics.h"
#include "config/config.h"
#include "ingest/dead_letter.h"
#include "ingest/finalizer.h"
#include "ingest/jetstream.h"
#include "sinks/dead_letter_store.h"
#include "sinks/postgres_writer.h"
#include "store/migrate.h"

namespace {

using namespace trail;

// Set by the signal thread; everything that waits checks it.
std::atomic<bool> g_stop{false};
std::mutex g_stop_mu;
std::condition_variable g_stop_cv;

void start_signal_thread(const sigset_t& set) {
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    log::info("traild", "shutdown requested", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    {
      std::lock_guard<std::mutex> lock(g_stop_mu);
      g_stop = true;
    }
    g_stop_cv.notify_all();
    // A second signal means "now".
    sigwait(&set, &sig);
    log::warn("traild", "second signal: exiting without waiting");
    std::_Exit(1);
  }).detach();
}

void log_effective_config(const config& c) {
  std::vector<log::field> fields;
  for (auto& [k, v] : describe(c)) fields.emplace_back(k, v);
  fields.emplace_back("version", TRAIL_VERSION);
  log::write(log::level::info, "config", "effective configuration", fields);
}

// Every connection is a descriptor: the soft open-files limit (often 1024)
// goes up to the hard one, so that http.max_connections can be reached.
void raise_open_files_limit(const config& cfg) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  // The listeners, the broker, the database and the files need room besides.
  const auto wanted = static_cast<rlim_t>(cfg.http_max_connections) + 64 + 256;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted)
    log::warn("traild", "the open-files limit is below what http.max_connections needs; connections past it are refused "
              "by the kernel, not answered", {{"limit", static_cast<int64_t>(lim.rlim_cur)},
                                              {"http.max_connections", cfg.http_max_connections}});
}

int run(const config& cfg) {
  log_effective_config(cfg);
  raise_open_files_limit(cfg);
  health h;
  const http_limits limits = http_limits_of(cfg);

  metrics::enable_top_tenants(static_cast<size_t>(cfg.metrics_top_tenants));
  // Every component's metrics, registered now so that /metrics lists them
  // (at 0) before their first occurrence.
  actor_metrics::get();
  writer_metrics::get();
  source_metrics::get();
  republish_metrics::get();
  dead_letter_metrics::get();
  metrics_server metrics_http(metrics::registry(), metrics_limits(limits));
  if (!metrics_http.start(cfg.metrics_addr)) return 1;
  // The read side: credentials first (a key file that cannot be read stops
  // the start), its PostgreSQL role checked once the database answers.
  auth_options auth_opt;
  std::string auth_error;
  if (!auth_options_of(cfg, auth_opt, &auth_error)) {
    log::error("api", "cannot load the query API's credentials", {{"error", auth_error}});
    return 2;
  }
  const authenticator auth(std::move(auth_opt));
  if (!auth.configured())
    log::warn("api", "no credentials configured (api.jwt_*, api.keys_file): every /v1 request is refused with 401");
  std::unique_ptr<ledger_reader> reader;
  if (!cfg.api_pg_dsn.empty()) reader = std::make_unique<ledger_reader>(reader_options_of(cfg));
  else log::warn("api", "api.pg_dsn is empty: the query API answers 503");
  // Synchronous writes and the meta-audit publish through their own connection.
  event_publisher publisher(publisher_options_of(cfg));
  publish_fn publish = [&publisher](const std::string& subject, std::string_view body, const header_list& headers,
                                    const std::string& msg_id, std::string* error) {
    return publisher.publish(subject, body, headers, msg_id, error);
  };
  query_routes routes(auth, reader.get(), publish, route_options_of(cfg, 1 << 20));
  // Tamper evidence: the key that signs checkpoints (or only verifies them).
  std::optional<integrity::signing_key> signing_key;
  std::optional<integrity::verifier_key> verifier_key;
  std::string signing_error;
  if (!signing_key_of(cfg, signing_key, &signing_error) || !verifier_key_of(cfg, verifier_key, &signing_error)) {
    log::error("integrity", "cannot load the checkpoint key", {{"error", signing_error}});
    return 2;
  }
  if (!signing_key)
    log::warn("integrity", "integrity.signing_key_file is not set: tenants' chains are not checkpointed, so a rewrite "
              "of a chain from some event on (with its links recomputed) would go unnoticed; see docs/INTEGRITY.md");
  integrity_access integrity;
  integrity.key = verifier_key;
  integrity.checkpoint_stream = cfg.checkpoint_stream;
  integrity.checkpoint_prefix = cfg.checkpoint_prefix;
  integrity.read_broker = [&publisher](const std::string& stream, const std::string& subject, int64_t since_us,
                                       const std::function<bool(std::string_view)>& each, std::string* error) {
    return publisher.read_subject(stream, subject, since_us, each, error);
  };
  // MCP (/mcp): its tools call the same routes on a loopback listener of
  // their own (a separate worker pool, so agents' calls never wait on the
  // workers they occupy), and those reads are recorded as made through MCP.
  route_options mcp_route_opt = route_options_of(cfg, 1 << 20);
  mcp_route_opt.via = "mcp";
  query_routes mcp_api(auth, reader.get(), publish, mcp_route_opt);
  mcp_api.set_integrity(integrity);
  routes.set_integrity(std::move(integrity));
  http_listener mcp_loopback("mcp", limits);
  std::unique_ptr<mcp::server> mcp_protocol;
  std::unique_ptr<mcp_routes> mcp_http;
  if (cfg.mcp_enabled) {
    mcp_api.install(mcp_loopback.router());
    mcp_loopback.set_body_admission(bearer_admission(auth));
    const int port = mcp_loopback.start_loopback();
    if (port <= 0) return 1;
    mcp::server_options mo;
    mo.version = TRAIL_VERSION;
    mo.export_max_rows = cfg.mcp_export_max_rows;
    mcp_protocol = std::make_unique<mcp::server>(http_api("http://127.0.0.1:" + std::to_string(port)), mo);
    mcp_http = std::make_unique<mcp_routes>(
        auth, *mcp_protocol, mcp_http_options{split_names(cfg.mcp_allowed_hosts), split_names(cfg.mcp_allowed_origins)});
  }
  routes.set_watch([&publisher](const std::string& subject, std::function<void()> wake) {
    return publisher.watch(subject, std::move(wake));
  });
  http_server http(h, limits, &routes, mcp_http.get(), &auth);
  if (!http.start(cfg.http_addr)) return 1;

  // The schema must be migrated (`traild migrate`) before traild consumes.
  const int latest = embedded_migrations().empty() ? 0 : embedded_migrations().back().version;
  for (int64_t backoff_ms = 200;; backoff_ms = std::min<int64_t>(backoff_ms * 2, 5000)) {
    std::string err;
    const int v = schema_version(cfg.pg_dsn, &err);
    if (v == latest) break;
    if (v >= 0) {
      log::error("traild", "the database schema is not at this traild's version; run `traild migrate` first",
                 {{"schema_version", v}, {"expected", latest}});
      return 2;
    }
    log::warn("traild", "cannot reach PostgreSQL; retrying", {{"error", err}, {"retry_ms", backoff_ms}});
    std::unique_lock<std::mutex> lock(g_stop_mu);
    if (g_stop_cv.wait_for(lock, std::chrono::milliseconds(backoff_ms), [] { return g_stop.load(); })) return 0;
  }
  auto keep_partitions = [&cfg] {
    std::string err;
    if (!ensure_partitions(cfg.pg_dsn, static_cast<int>(cfg.partitions_behind_days), static_cast<int>(cfg.partitions_ahead_days), &err))
      log::warn("partitions", "could not create partitions ahead; events still land in the default partition", {{"error", err}});
  };
  keep_partitions();
  std::string key_error;
  const auto key = installation_key(cfg.pg_dsn, &key_error);
  if (!key) {
    log::error("traild", "cannot read the installation key (audit.installation)", {{"error", key_error}});
    return 1;
  }
  if (auto problem = ingest_role_problem(cfg.pg_dsn)) {
    log::error("traild", "pg.dsn cannot write the ledger", {{"error", *problem}});
    return 2;
  }
  if (reader) {
    std::string role_error;
    if (!reader->check_role(&role_error)) {
      log::error("api", "refusing to serve queries through api.pg_dsn", {{"error", role_error}});
      return 2;
    }
  }
  routes.set_token_secret(*key);
  mcp_api.set_token_secret(*key);
  if (mcp_http) mcp_http->set_session_secret(*key);

  jetstream_source source(source_options_of(cfg), h);
  if (!source.connect(g_stop)) return g_stop ? 0 : 1;

  log::info("nats", "broker limits", {{"max_payload", source.max_payload()}});
  routes.set_max_message_bytes(static_cast<size_t>(source.max_payload()));
  mcp_api.set_max_message_bytes(static_cast<size_t>(source.max_payload()));
  postgres_dead_letter_store dead_letter_db(cfg.pg_dsn, pg_timeouts_of(cfg));
  dead_letter_publisher dlq(dead_letter_options_of(cfg), source, dead_letter_db, *key);
  // The committed-event outbox, when there is a committed stream to republish into.
  std::unique_ptr<outbox_keeper> outbox;
  if (outbox_enabled(cfg)) {
    outbox = std::make_unique<outbox_keeper>(outbox_options_of(cfg), source);
    source.set_publish_tracker(outbox.get());
  }
  commit_finalizer finalizer(finalizer_options_of(cfg), source, dlq, outbox.get());
  // Checkpoints (with a key) and the record of break-glass changes (always).
  auto checkpoints = std::make_unique<checkpointer>(checkpointer_options_of(cfg), signing_key, source);
  postgres_writer_pool writers(writer_pool_options_of(cfg), finalizer, h);
  actor_pipeline pipeline(pipeline_options_of(cfg, static_cast<size_t>(source.max_payload())), writers, dlq, source);
  dlq.start();
  if (outbox) outbox->start();
  finalizer.start();
  writers.start();
  checkpoints->start();
  source.start_fetching([&pipeline](std::vector<inbound_message*>&& chunk) { pipeline.deliver(std::move(chunk)); });
  log::info("traild", "consuming", {{"stream", cfg.stream}, {"consumer", cfg.consumer}});

  std::thread partition_keeper([&] {
    std::unique_lock<std::mutex> lock(g_stop_mu);
    while (!g_stop_cv.wait_for(lock, std::chrono::hours(1), [] { return g_stop.load(); })) {
      lock.unlock();
      keep_partitions();
      lock.lock();
    }
  });
  // Retention: archive, verify, drop; needs the maintenance role and the key.
  const bool retaining = cfg.retention_days > 0 && !cfg.retention_pg_dsn.empty();
  if (retaining && !signing_key)
    log::error("retention", "retention.days is set but integrity.signing_key_file is not: archives must be signed, so "
                            "nothing is dropped");
  if (cfg.retention_days > 0 && cfg.retention_pg_dsn.empty())
    log::warn("retention", "retention.days is set but retention.pg_dsn is empty: retention is off");
  std::thread retention_keeper([&] {
    if (!retaining || !signing_key) return;
    const retention_options opt = retention_options_of(cfg);
    std::unique_lock<std::mutex> lock(g_stop_mu);
    do {
      lock.unlock();
      run_retention(opt, *signing_key, now_unix_us());
      lock.lock();
    } while (!g_stop_cv.wait_for(lock, std::chrono::seconds(cfg.retention_interval_s), [] { return g_stop.load(); }));
  });

  {
    std::unique_lock<std::mutex> lock(g_stop_mu);
    g_stop_cv.wait(lock, [] { return g_stop.load(); });
  }

  // Graceful shutdown: stop pulling, flush what is held, commit, ack, exit.
  // The last part of the deadline is kept for handing back what is not
  // committed; a watchdog ends the process at the deadline whatever is stuck
  // (a frozen database, a broker that does not answer): anything un-acked is
  // redelivered, so an early exit loses nothing.
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::seconds(cfg.shutdown_deadline_s);
  const auto reserve = std::chrono::milliseconds(std::clamp<int64_t>(cfg.shutdown_deadline_s * 200, 500, 5000));
  const auto drain_until = deadline - reserve;
  std::thread([deadline] {
    std::this_thread::sleep_until(deadline);
    log::error("traild", "shutdown deadline reached with work still stuck; exiting now (un-acked messages are redelivered)");
    std::_Exit(1);
  }).detach();
  http.set_draining();
  routes.stop_streams();  // live clients reconnect (to another replica) and resume by Last-Event-ID
  source.stop_fetching();
  const bool drained = source.gate().wait_drained(drain_until);
  if (!drained) {
    // Hand back what is not committed now, before anything else can get
    // stuck: the broker redelivers it at once (to another replica, or to the
    // next start). Should a write still commit, its ack follows; the dedupe
    // path absorbs the redelivery.
    const size_t n = source.nak_all_in_flight(1000);
    natsConnection_FlushTimeout(source.connection(), 500);
    log::warn("traild", "shutdown deadline near; un-committed messages handed back to the broker",
              {{"messages", n}});
    writers.abandon();
  }
  pipeline.stop();
  writers.stop();
  finalizer.stop();
  dlq.stop(drained ? deadline - reserve / 2 : std::chrono::steady_clock::now());
  // Committed and acked, but is each republish confirmed? Wait for the broker
  // (bounded); each one still unconfirmed is logged with its (tenant, sequence).
  if (const size_t lost = source.settle_republishes(deadline - reserve / 4))
    log::warn("traild", "committed events not confirmed downstream (logged above, one line each); audit.outbox keeps them "
              "for the next outbox pass", {{"events", lost}});
  if (outbox) outbox->stop();  // deletes the rows confirmed by now
  checkpoints->stop();
  if (drained) checkpoints->round();  // the last commits get their checkpoint now
  if (drained && source.gate().events() > 0) {
    // Left by a component that stopped at its own deadline (dead letters).
    const size_t n = source.nak_all_in_flight(1000);
    log::info("traild", "un-settled messages handed back to the broker", {{"messages", n}});
  }
  partition_keeper.join();
  retention_keeper.join();
  source.close();
  http.stop();
  mcp_loopback.stop();
  log::info("traild", "stopped", {{"drained", drained ? "true" : "false"}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by one thread with sigwait; every other thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  CLI::App app{"traild: Trail's audit-log service"};
  std::string config_path;
  if (const char* p = std::getenv("TRAIL_CONFIG")) config_path = p;
  std::string log_format, log_level;
  app.add_option("-c,--config", config_path, "TOML config file (default: $TRAIL_CONFIG, else built-in defaults)");
  app.add_option("--log-format", log_format, "json or text (overrides log.format)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (overrides log.level)");
  auto* run_cmd = app.add_subcommand("run", "consume audit events into PostgreSQL (the default)");
  auto* migrate_cmd = app.add_subcommand("migrate", "apply the schema migrations and exit");
  auto* config_cmd = app.add_subcommand("config", "print configuration");
  auto* defaults_cmd = config_cmd->add_subcommand("defaults", "every setting at its default, as TOML");
  auto* show_cmd = config_cmd->add_subcommand("show", "the effective settings, secrets masked");
  auto* token_cmd = app.add_subcommand("dev-token", "print an HS256 bearer token signed with api.jwt_hs256_secret");
  std::string token_tenant, token_scopes = "audit:read", token_subject = "dev", token_ttl = "1h";
  token_cmd->add_option("--tenant", token_tenant, "tenant id, a comma-separated list, or * (all tenants)")->required();
  token_cmd->add_option("--scopes", token_scopes, "comma-separated: audit:read, audit:write, audit:export, audit:admin");
  token_cmd->add_option("--subject", token_subject, "the token's sub (the actor of meta-audit events)");
  token_cmd->add_option("--ttl", token_ttl, "lifetime: 90s, 15m, 1h, 7d");
  auto* keygen_cmd = app.add_subcommand("keygen", "write an Ed25519 checkpoint signing key (FILE) and its verifier key (FILE.pub)");
  std::string key_name, key_out;
  keygen_cmd->add_option("--name", key_name, "the key's name, which checkpoints carry (a schema-less URL such as audit.example.com/trail)")->required();
  keygen_cmd->add_option("--out", key_out, "where to write the signing key (never overwritten)")->required();
  auto* verify_cmd = app.add_subcommand("verify", "verify a ledger export offline: no database, no broker");
  std::string verify_export, verify_checkpoints, verify_key;
  std::string verify_archive_path;
  auto* verify_export_opt =
      verify_cmd->add_option("--export", verify_export, "NDJSON of GET /v1/tenants/{t}/export?format=ledger");
  verify_cmd->add_option("--checkpoints", verify_checkpoints, "JSON of GET /v1/tenants/{t}/checkpoints (same range)");
  verify_cmd->add_option("--public-key", verify_key, "the verifier key (GET /v1/integrity/public-key, or its key text)")->required();
  verify_cmd->add_option("--archive", verify_archive_path, "a retention archive (its manifest beside it, FILE.manifest)");
  verify_export_opt->excludes(verify_cmd->get_option("--archive"));
  auto* retention_cmd = app.add_subcommand("retention", "retention of old partitions (retention.*)");
  auto* retention_run = retention_cmd->add_subcommand("run", "one pass now: archive, verify and drop what is past retention");
  retention_cmd->require_subcommand(1);
  auto* hold_cmd = app.add_subcommand("legal-hold", "legal holds: partitions holding a held tenant are never dropped");
  std::string hold_tenant, hold_reason;
  auto* hold_place = hold_cmd->add_subcommand("place", "place a hold");
  hold_place->add_option("--tenant", hold_tenant, "the tenant, or * for every tenant")->required();
  hold_place->add_option("--reason", hold_reason, "why (a case or ticket)")->required();
  auto* hold_release = hold_cmd->add_subcommand("release", "release a hold");
  hold_release->add_option("--tenant", hold_tenant, "the tenant, or *")->required();
  auto* hold_list = hold_cmd->add_subcommand("list", "the holds in place");
  hold_cmd->require_subcommand(1);
  config_cmd->require_subcommand(1);
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  if (defaults_cmd->parsed()) {
    std::cout << default_config_toml();
    return 0;
  }
  if (keygen_cmd->parsed()) return keygen_command(key_name, key_out);
  if (verify_cmd->parsed()) {
    if (!verify_archive_path.empty()) return verify_archive_command(verify_archive_path, verify_key);
    if (verify_export.empty()) {
      std::fprintf(stderr, "traild: verify needs --export FILE or --archive FILE\n");
      return 2;
    }
    return verify_command(verify_export, verify_checkpoints, verify_key);
  }
  config cfg;
  try {
    auto env = process_environment();
    if (!log_format.empty()) env["TRAIL_LOG_FORMAT"] = log_format;
    if (!log_level.empty()) env["TRAIL_LOG_LEVEL"] = log_level;
    cfg = load_config(config_path, env);
  } catch (const config_error& e) {
    std::fprintf(stderr, "traild: configuration error: %s\n", e.what());
    return 2;
  }
  const log::level lvl = cfg.log_level == "debug" ? log::level::debug
                         : cfg.log_level == "warn" ? log::level::warn
                         : cfg.log_level == "error" ? log::level::error
                                                    : log::level::info;
  log::configure(cfg.log_format == "json", lvl);
  for (const auto& line : cfg.retired) log::warn("config", line);

  if (retention_run->parsed() || hold_cmd->parsed()) {
    if (cfg.retention_pg_dsn.empty()) {
      std::fprintf(stderr, "traild: retention.pg_dsn is not set (the trail_maintenance role)\n");
      return 2;
    }
    std::string error;
    if (hold_place->parsed()) return place_legal_hold(cfg.retention_pg_dsn, hold_tenant, hold_reason, &error) ? 0 : (std::fprintf(stderr, "traild: %s\n", error.c_str()), 1);
    if (hold_release->parsed()) return release_legal_hold(cfg.retention_pg_dsn, hold_tenant, &error) ? 0 : (std::fprintf(stderr, "traild: %s\n", error.c_str()), 1);
    if (hold_list->parsed()) {
      std::vector<std::string> holds;
      if (!list_legal_holds(cfg.retention_pg_dsn, holds, &error)) return std::fprintf(stderr, "traild: %s\n", error.c_str()), 1;
      for (const auto& h : holds) std::cout << h << "\n";
      return 0;
    }
    std::optional<integrity::signing_key> key;
    if (!signing_key_of(cfg, key, &error) || !key) {
      std::fprintf(stderr, "traild: retention signs its archives: integrity.signing_key_file %s\n",
                   error.empty() ? "is not set" : error.c_str());
      return 2;
    }
    const auto report = run_retention(retention_options_of(cfg), *key, now_unix_us());
    std::cout << "archived and dropped: " << report.archived << " partitions, " << report.rows << " events\n";
    if (report.emptied) std::cout << "dropped without rows: " << report.emptied << " partitions\n";
    for (const auto& h : report.held) std::cout << "kept under legal hold: " << h << "\n";
    for (const auto& k : report.kept) std::cout << "kept for a tenant's longer retention: " << k << "\n";
    if (!report.ok()) std::cout << "stopped: " << report.error << "\n";
    return report.ok() ? 0 : 1;
  }
  if (show_cmd->parsed()) {
    for (auto& [k, v] : describe(cfg)) std::cout << k << " = " << v << "\n";
    return 0;
  }
  if (token_cmd->parsed()) {
    if (cfg.api_jwt_hs256_secret.empty()) {
      std::fprintf(stderr, "traild: api.jwt_hs256_secret is not set; dev-token signs with it\n");
      return 2;
    }
    std::vector<std::string> tenants;
    for (size_t s = 0; s <= token_tenant.size();) {
      size_t e = token_tenant.find(',', s);
      if (e == std::string::npos) e = token_tenant.size();
      if (e > s) tenants.push_back(token_tenant.substr(s, e - s));
      s = e + 1;
    }
    unsigned scopes = 0;
    for (size_t s = 0; s <= token_scopes.size();) {
      size_t e = token_scopes.find(',', s);
      if (e == std::string::npos) e = token_scopes.size();
      const std::string one = token_scopes.substr(s, e - s);
      if (!scope_of(one)) {
        std::fprintf(stderr, "traild: unknown scope '%s'\n", one.c_str());
        return 2;
      }
      scopes |= scope_of(one);
      s = e + 1;
    }
    int64_t ttl_s = 0;
    const char unit = token_ttl.empty() ? 0 : token_ttl.back();
    try {
      ttl_s = std::stoll(token_ttl.substr(0, token_ttl.size() - 1)) *
              (unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0);
    } catch (...) {
      ttl_s = 0;
    }
    if (ttl_s <= 0 || tenants.empty()) {
      std::fprintf(stderr, "traild: --ttl is a duration such as 15m, 1h or 7d, --tenant is not empty\n");
      return 2;
    }
    std::cout << issue_hs256_token(cfg.api_jwt_hs256_secret, token_subject, tenants, scopes, now_unix_us() / 1000000, ttl_s)
              << "\n";
    return 0;
  }
  if (migrate_cmd->parsed()) {
    auto r = apply_migrations(cfg.pg_dsn);
    if (!r.ok) {
      log::error("migrate", "migration failed", {{"error", r.error}});
      return 1;
    }
    std::string err;
    if (!ensure_partitions(cfg.pg_dsn, static_cast<int>(cfg.partitions_behind_days), static_cast<int>(cfg.partitions_ahead_days), &err))
      log::warn("partitions", "could not create partitions", {{"error", err}});
    log::info("migrate", "schema is up to date", {{"version", r.version}, {"applied", r.applied}});
    return 0;
  }
  (void)run_cmd;
  start_signal_thread(set);
  return run(cfg);
}
