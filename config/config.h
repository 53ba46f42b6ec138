#pragma once
// Trail's configuration: every knob is declared once in config.cc (name, unit,
// default, meaning, whether it is secret), read from a TOML file and overridden
// by TRAIL_<SECTION>_<KEY> environment variables (e.g. nats.url -> TRAIL_NATS_URL).
// All knobs need a restart to change.

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace trail {

struct config {
  // [nats]
  std::string nats_url;
  std::string stream;
  int64_t stream_max_age_s;
  int64_t stream_max_bytes;
  int64_t duplicate_window_s;
  std::string consumer;
  int64_t ack_wait_s;
  int64_t max_deliver;
  int64_t max_ack_pending;
  int64_t fetch_batch;
  int64_t fetch_expires_ms;
  int64_t fetch_wait_ms;
  std::string dlq_subject;
  std::string dlq_stream;
  int64_t dlq_max_age_s;
  bool committed_enabled;
  std::string committed_prefix;
  std::string committed_stream;
  int64_t committed_max_age_s;
  int64_t committed_max_bytes;
  int64_t publish_max_pending;
  int64_t publish_ack_timeout_ms;
  int64_t republish_retry_max;
  int64_t outbox_reconcile_after_s;
  int64_t stream_replicas;
  // [pg]
  std::string pg_dsn;
  int64_t writers;
  int64_t txn_max_events;
  int64_t txn_max_bytes;
  int64_t partitions_ahead_days;
  int64_t partitions_behind_days;
  int64_t pg_connect_timeout_s;
  int64_t pg_statement_timeout_s;
  int64_t known_tenants_max;
  // [validate]
  int64_t validators;
  int64_t max_event_bytes;
  int64_t max_batch_bytes;
  int64_t max_batch_events;
  int64_t max_json_depth;
  int64_t max_object_keys;
  // [limits]
  int64_t inflight_max_events;
  int64_t inflight_max_bytes;
  // [api] the read side
  std::string api_pg_dsn;
  int64_t api_pg_connections;
  std::string api_jwt_hs256_secret;
  std::string api_jwt_rs256_public_key_file;
  std::string api_jwt_es256_public_key_file;
  int64_t api_jwt_leeway_s;
  std::string api_keys_file;
  std::string api_meta_audit;
  int64_t api_write_commit_wait_ms;
  int64_t api_max_streams;
  int64_t api_max_streams_per_tenant;
  bool mcp_enabled;
  std::string mcp_allowed_hosts;
  std::string mcp_allowed_origins;
  int64_t mcp_export_max_rows;
  // [integrity]
  std::string integrity_signing_key_file;
  std::string integrity_public_key_file;
  int64_t checkpoint_interval_s;
  std::string checkpoint_prefix;
  std::string checkpoint_stream;
  int64_t checkpoint_max_age_s;
  // [retention]
  int64_t retention_days;
  std::string retention_tenant_days;
  std::string retention_pg_dsn;
  std::string retention_archive_dir;
  int64_t retention_interval_s;
  // [http] [metrics] [log] [shutdown]
  std::string http_addr;
  // What one client may cost the HTTP listeners (api/http_listener.h)
  int64_t http_max_connections;
  int64_t http_max_connections_per_address;
  int64_t http_header_timeout_ms;
  int64_t http_idle_timeout_ms;
  int64_t http_body_timeout_ms;
  int64_t http_write_timeout_ms;
  int64_t http_max_header_bytes;
  int64_t http_max_body_bytes;
  int64_t http_max_batch_body_bytes;
  int64_t http_workers;
  int64_t http_queue_max;
  std::string metrics_addr;
  int64_t metrics_top_tenants;
  std::string log_format;
  std::string log_level;
  int64_t shutdown_deadline_s;
  // Retired settings found in the file or the environment, one line each
  // (traild logs them as warnings; they change nothing).
  std::vector<std::string> retired;
};

// retention.tenant_days parsed ("acme=3650,beta=400"); throws config_error.
std::map<std::string, int64_t> parse_tenant_days(const std::string& text, int64_t at_least);

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Defaults, then the file (if non-empty path), then the environment.
// Throws config_error naming the knob on a bad value, an unknown key or a
// value out of range.
config load_config(const std::string& path, const std::map<std::string, std::string>& env);
std::map<std::string, std::string> process_environment();

// "name = value" lines of the effective config, secrets masked.
std::vector<std::pair<std::string, std::string>> describe(const config& c);

// A TOML document of every knob at its default, each with its unit and meaning
// as a comment. config/trail.toml is this output (a test keeps them equal).
std::string default_config_toml();

// Replaces the password in a URL or libpq DSN with "****".
std::string mask_secret(const std::string& value);

}  // namespace trail
