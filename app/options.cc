#include "app/options.h"

#include <fstream>
#include <iterator>
#include <sstream>

namespace trail {
namespace {
size_t size_of(int64_t v) { return static_cast<size_t>(v); }
}  // namespace

pg_timeouts pg_timeouts_of(const config& c) { return pg_timeouts{c.pg_connect_timeout_s, c.pg_statement_timeout_s}; }

decoder_limits decoder_limits_of(const config& c, size_t max_message_bytes) {
  decoder_limits d;
  d.max_event_bytes = size_of(c.max_event_bytes);
  d.max_batch_bytes = size_of(c.max_batch_bytes);
  d.max_batch_events = size_of(c.max_batch_events);
  d.max_depth = size_of(c.max_json_depth);
  d.max_object_keys = size_of(c.max_object_keys);
  d.max_message_bytes = max_message_bytes;
  return d;
}

pipeline_options pipeline_options_of(const config& c, size_t max_message_bytes) {
  pipeline_options o;
  o.validators = size_of(c.validators);
  o.txn_max_events = size_of(c.txn_max_events);
  o.txn_max_bytes = size_of(c.txn_max_bytes);
  o.decoding = decoder_limits_of(c, max_message_bytes);
  o.max_deliver = static_cast<uint64_t>(c.max_deliver);
  return o;
}

namespace {
bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return static_cast<bool>(f) || f.eof();
}
}  // namespace

bool auth_options_of(const config& c, auth_options& out, std::string* error) {
  out = auth_options{};
  out.hs256_secret = c.api_jwt_hs256_secret;
  out.leeway_s = c.api_jwt_leeway_s;
  if (!c.api_jwt_rs256_public_key_file.empty() && !read_file(c.api_jwt_rs256_public_key_file, out.rs256_public_key_pem))
    return *error = "api.jwt_rs256_public_key_file: cannot read " + c.api_jwt_rs256_public_key_file, false;
  if (!c.api_jwt_es256_public_key_file.empty() && !read_file(c.api_jwt_es256_public_key_file, out.es256_public_key_pem))
    return *error = "api.jwt_es256_public_key_file: cannot read " + c.api_jwt_es256_public_key_file, false;
  if (!c.api_keys_file.empty()) {
    std::string text, why;
    if (!read_file(c.api_keys_file, text)) return *error = "api.keys_file: cannot read " + c.api_keys_file, false;
    if (!parse_api_keys(text, out.api_keys, &why)) return *error = "api.keys_file " + c.api_keys_file + ": " + why, false;
  }
  return true;
}

reader_options reader_options_of(const config& c) {
  reader_options o;
  o.dsn = c.api_pg_dsn;
  o.timeouts = pg_timeouts_of(c);
  o.connections = size_of(c.api_pg_connections);
  return o;
}

route_options route_options_of(const config& c, size_t max_message_bytes) {
  route_options o;
  o.limits = decoder_limits_of(c, max_message_bytes);
  o.events_subject = "audit.events";  // what the AUDIT stream captures (ingest/jetstream.cc)
  o.commit_wait_ms = c.api_write_commit_wait_ms;
  o.meta_audit = c.api_meta_audit == "best_effort" ? meta_audit_mode::best_effort : meta_audit_mode::required;
  o.committed_prefix = c.committed_enabled ? c.committed_prefix : "";
  o.max_streams = size_of(c.api_max_streams);
  o.max_streams_per_tenant = size_of(c.api_max_streams_per_tenant);
  o.max_batch_body_bytes = size_of(c.http_max_batch_body_bytes);
  return o;
}

http_limits http_limits_of(const config& c) {
  http_limits l;
  l.max_connections = size_of(c.http_max_connections);
  l.max_connections_per_address = size_of(c.http_max_connections_per_address);
  l.header_timeout_ms = c.http_header_timeout_ms;
  l.idle_timeout_ms = c.http_idle_timeout_ms;
  l.body_timeout_ms = c.http_body_timeout_ms;
  l.write_timeout_ms = c.http_write_timeout_ms;
  l.max_header_bytes = size_of(c.http_max_header_bytes);
  l.max_body_bytes = size_of(c.http_max_body_bytes);
  // Live streams each hold a worker: room for all of them besides the requests.
  l.worker_threads = size_of(c.http_workers) + size_of(c.api_max_streams);
  l.queue_max = size_of(c.http_queue_max);
  return l;
}

publisher_options publisher_options_of(const config& c) {
  publisher_options o;
  o.url = c.nats_url;
  o.url_in_logs = mask_secret(c.nats_url);
  o.timeout_ms = c.publish_ack_timeout_ms;
  return o;
}

bool outbox_enabled(const config& c) { return c.committed_enabled && !c.committed_stream.empty(); }

writer_pool_options writer_pool_options_of(const config& c) {
  writer_pool_options o;
  o.dsn = c.pg_dsn;
  o.timeouts = pg_timeouts_of(c);
  o.writers = size_of(c.writers);
  o.known_tenants_max = size_of(c.known_tenants_max);
  o.outbox = outbox_enabled(c);
  return o;
}

source_options source_options_of(const config& c) {
  source_options o;
  o.url = c.nats_url;
  o.url_in_logs = mask_secret(c.nats_url);
  o.stream = c.stream;
  o.stream_max_age_s = c.stream_max_age_s;
  o.stream_max_bytes = c.stream_max_bytes;
  o.duplicate_window_s = c.duplicate_window_s;
  o.stream_replicas = c.stream_replicas;
  o.consumer = c.consumer;
  o.ack_wait_s = c.ack_wait_s;
  o.max_ack_pending = c.max_ack_pending;
  o.fetch_batch = c.fetch_batch;
  o.fetch_expires_ms = c.fetch_expires_ms;
  o.fetch_wait_ms = c.fetch_wait_ms;
  o.dlq_subject = c.dlq_subject;
  o.dlq_stream = c.dlq_stream;
  o.dlq_max_age_s = c.dlq_max_age_s;
  o.committed_enabled = c.committed_enabled;
  o.committed_prefix = c.committed_prefix;
  o.committed_stream = c.committed_stream;
  o.committed_max_age_s = c.committed_max_age_s;
  o.committed_max_bytes = c.committed_max_bytes;
  if (!c.integrity_signing_key_file.empty()) {  // only a signer needs the stream
    o.checkpoint_stream = c.checkpoint_stream;
    o.checkpoint_prefix = c.checkpoint_prefix;
    o.checkpoint_max_age_s = c.checkpoint_max_age_s;
  }
  o.publish_max_pending = c.publish_max_pending;
  o.inflight_max_events = c.inflight_max_events;
  o.inflight_max_bytes = c.inflight_max_bytes;
  return o;
}

finalizer_options finalizer_options_of(const config& c) {
  finalizer_options o;
  o.committed_enabled = c.committed_enabled;
  o.committed_prefix = c.committed_prefix;
  o.committed_stream = !c.committed_stream.empty();
  o.publish_ack_timeout_ms = c.publish_ack_timeout_ms;
  o.republish_retry_max = c.republish_retry_max;
  return o;
}

outbox_options outbox_options_of(const config& c) {
  outbox_options o;
  o.pg_dsn = c.pg_dsn;
  o.timeouts = pg_timeouts_of(c);
  o.committed_prefix = c.committed_prefix;
  o.publish_ack_timeout_ms = c.publish_ack_timeout_ms;
  o.reconcile_after_s = c.outbox_reconcile_after_s;
  return o;
}

dead_letter_options dead_letter_options_of(const config& c) { return dead_letter_options{c.stream, c.dlq_subject}; }

checkpointer_options checkpointer_options_of(const config& c) {
  checkpointer_options o;
  o.pg_dsn = c.pg_dsn;
  o.timeouts = pg_timeouts_of(c);
  o.subject_prefix = c.checkpoint_prefix;
  o.events_subject = "audit.events";  // the AUDIT stream's subject, as the read side's writes use
  o.interval_s = c.checkpoint_interval_s;
  o.publish_ack_timeout_ms = c.publish_ack_timeout_ms;
  return o;
}

namespace {

bool read_file(const std::string& path, std::string& out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = "cannot read " + path;
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

}  // namespace

retention_options retention_options_of(const config& c) {
  retention_options o;
  o.pg_dsn = c.retention_pg_dsn;
  o.timeouts = pg_timeouts{c.pg_connect_timeout_s, std::max<int64_t>(c.pg_statement_timeout_s, 600)};
  o.archive_dir = c.retention_archive_dir;
  o.days = c.retention_days;
  o.tenant_days = parse_tenant_days(c.retention_tenant_days, c.retention_days);
  return o;
}

bool signing_key_of(const config& c, std::optional<integrity::signing_key>& out, std::string* error) {
  out.reset();
  if (c.integrity_signing_key_file.empty()) return true;
  std::string text, why;
  if (!read_file(c.integrity_signing_key_file, text, error)) return false;
  out = integrity::parse_signing_key(text, &why);
  if (!out && error) *error = "integrity.signing_key_file: " + why;
  return out.has_value();
}

bool verifier_key_of(const config& c, std::optional<integrity::verifier_key>& out, std::string* error) {
  out.reset();
  if (c.integrity_public_key_file.empty()) {
    std::optional<integrity::signing_key> k;
    if (!signing_key_of(c, k, error)) return false;
    if (k) out = k->verifier();
    return true;
  }
  std::string text, why;
  if (!read_file(c.integrity_public_key_file, text, error)) return false;
  out = integrity::parse_verifier_key(text, &why);
  if (!out && error) *error = "integrity.public_key_file: " + why;
  return out.has_value();
}

}  // namespace trail
