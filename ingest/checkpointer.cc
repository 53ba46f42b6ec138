#include "ingest/checkpointer.h"

#include <libpq-fe.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>

#include "common/log.h"
#include "common/time.h"
#include "ingest/ingest_metrics.h"

namespace trail {

checkpointer::checkpointer(checkpointer_options opt, std::optional<integrity::signing_key> key, jetstream_source& source)
    : opt_(std::move(opt)), key_(std::move(key)), source_(source), session_(opt_.pg_dsn, opt_.timeouts, "traild-checkpoints") {}

checkpointer::~checkpointer() { stop(); }

void checkpointer::start() { thread_ = std::thread([this] { run(); }); }

void checkpointer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void checkpointer::run() {
  constexpr int64_t kDayUs = 86400LL * 1000000;
  while (!stop_) {
    round();
    // The next round: after the interval, or just past the next UTC midnight
    // (a partition boundary), whichever comes first.
    const int64_t now = now_unix_us();
    const int64_t midnight = (now / kDayUs + 1) * kDayUs + 100000;
    const int64_t wait_us = std::min(opt_.interval_s * 1000000, midnight - now);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::microseconds(wait_us), [this] { return stop_.load(); });
  }
}

int64_t checkpointer::round() {
  std::unique_lock<std::mutex> lock(mu_);
  auto& m = checkpoint_metrics::get();
  std::string step, error;
  int64_t stored = 0;
  bool ok = session_.connected() || session_.connect(&error);
  if (!ok) step = "connect";
  if (ok && key_) ok = sign_heads(stored, step, error);
  if (ok) ok = record_break_glass(step, error);
  if (!ok) {
    if (session_.connected() && session_.in_transaction_block()) session_.exec("ROLLBACK");
    m.failed_rounds.Increment();
    log::limited(log::level::warn, "checkpoints", "checkpoint round failed; retried at the next one",
                 {{"step", step}, {"error", error}, {"stored", stored}});
    return stored > 0 ? stored : -1;
  }
  m.last_round.Set(static_cast<double>(now_unix_us()) / 1e6);
  return stored;
}

bool checkpointer::sign_heads(int64_t& stored, std::string& step, std::string& error) {
  auto failed = [&](const char* what, const std::string& why) {
    step = what;
    error = why;
    return false;
  };
  auto& m = checkpoint_metrics::get();
  if (auto r = session_.exec("BEGIN"); !r.ok()) return failed("begin", r.message);
  // One replica at a time; the others find nothing left to do anyway.
  PGresult* res = nullptr;
  if (auto r = session_.exec("SELECT pg_try_advisory_xact_lock(hashtext('trail.checkpoints'))", 0, nullptr, &res);
      !r.ok())
    return failed("lock", r.message);
  const bool mine = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  if (!mine) {
    session_.exec("ROLLBACK");
    return true;
  }
  // The tenants whose head moved past their last checkpoint, heads as committed.
  const std::string limit = std::to_string(opt_.tenants_per_round);
  const char* p[] = {limit.c_str()};
  if (auto r = session_.exec(
          "SELECT h.tenant_id, h.last_sequence, encode(h.head_hash, 'hex'), "
          "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint FROM audit.tenant_heads h "
          "WHERE h.last_sequence > coalesce((SELECT max(c.sequence) FROM audit.checkpoints c "
          "WHERE c.tenant_id = h.tenant_id), 0) ORDER BY h.tenant_id LIMIT $1::int",
          1, p, &res);
      !r.ok())
    return failed("heads", r.message);
  std::vector<std::string> tenants, hashes, notes, times;
  std::vector<int64_t> sequences;
  std::string publish_error;
  for (int i = 0; i < PQntuples(res); ++i) {
    integrity::checkpoint c;
    const std::string tenant = PQgetvalue(res, i, 0);
    c.origin = integrity::checkpoint_origin(key_->name, tenant);
    c.size = std::stoll(PQgetvalue(res, i, 1));
    const auto root = chain_hash_from_hex(PQgetvalue(res, i, 2));
    if (!root) continue;  // the writers refuse such a head loudly (ledger_invariant)
    c.root = *root;
    c.time_us = std::stoll(PQgetvalue(res, i, 3));
    const std::string note = integrity::sign_checkpoint(c, *key_);
    const std::string msg_id = tenant + ":" + std::to_string(c.size);
    // The copy outside the database first: a stored checkpoint always has one.
    const stored_ack ack = publish_and_wait(source_.js(), opt_.subject_prefix + "." + tenant, note, {}, msg_id.c_str(),
                                            opt_.publish_ack_timeout_ms);
    if (!ack.ok()) {
      publish_error = nats_error_text(ack.status, ack.jerr);
      break;  // the rest waits for the next round
    }
    tenants.push_back(tenant);
    sequences.push_back(c.size);
    hashes.push_back(PQgetvalue(res, i, 2));
    notes.push_back(note);
    times.push_back(format_rfc3339_us(c.time_us));
  }
  PQclear(res);
  if (!tenants.empty()) {
    const std::string t = text_array(tenants), s = bigint_array(sequences), h = text_array(hashes),
                      at = text_array(times), n = text_array(notes);
    const char* params[] = {t.c_str(), s.c_str(), h.c_str(), at.c_str(), n.c_str()};
    if (auto r = session_.exec("INSERT INTO audit.checkpoints (tenant_id, sequence, head_hash, signed_at, note) "
                               "SELECT t, s, decode(h, 'hex'), a::timestamptz, n "
                               "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS v(t, s, h, a, n) "
                               "ON CONFLICT DO NOTHING",
                               5, params);
        !r.ok())
      return failed("insert", r.message);
  }
  if (auto r = session_.exec("COMMIT"); !r.ok()) return failed("commit", r.message);
  stored = static_cast<int64_t>(tenants.size());
  m.signed_total.Increment(static_cast<double>(tenants.size()));
  if (!publish_error.empty()) return failed("publish", publish_error);
  return true;
}

bool checkpointer::record_break_glass(std::string& step, std::string& error) {
  PGresult* res = nullptr;
  if (auto r = session_.exec(
          "SELECT l.id, to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), l.by_role, l.operation, "
          "l.table_name, coalesce(l.tenant_id, ''), coalesce(l.sequence, 0), l.reason FROM audit.break_glass_log l "
          "WHERE NOT EXISTS (SELECT 1 FROM audit.break_glass_recorded r WHERE r.log_id = l.id) ORDER BY l.id LIMIT 1000",
          0, nullptr, &res);
      !r.ok()) {
    step = "break-glass log";
    error = r.message;
    return false;
  }
  std::vector<std::string> recorded;
  for (int i = 0; i < PQntuples(res); ++i) {
    const std::string id = PQgetvalue(res, i, 0), table = PQgetvalue(res, i, 4), sequence = PQgetvalue(res, i, 6);
    std::string tenant = PQgetvalue(res, i, 5);
    if (tenant.empty()) tenant = "trail-system";  // a statement-level change (TRUNCATE) names no tenant
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    auto str = [&w](const char* k, const std::string& v) {
      w.Key(k);
      w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    };
    w.StartObject();
    str("specversion", "1.0");
    str("id", "break-glass-" + id);
    str("source", "trail:database");
    str("type", "trail.break_glass.v1");
    str("time", PQgetvalue(res, i, 1));
    str("datacontenttype", "application/json");
    w.Key("data");
    w.StartObject();
    str("tenant_id", tenant);
    str("action", "trail.break_glass");
    str("category", "CATEGORY_SECURITY");
    str("severity", "SEVERITY_CRITICAL");
    w.Key("actor");
    w.StartObject();
    str("type", "ACTOR_TYPE_USER");
    str("id", PQgetvalue(res, i, 2));
    w.EndObject();
    w.Key("primary_resource");
    w.StartObject();
    str("type", "audit_table");
    str("id", "audit." + table + (sequence != "0" ? "#" + sequence : ""));
    w.EndObject();
    str("description", std::string(PQgetvalue(res, i, 3)) + " under break-glass: " + PQgetvalue(res, i, 7));
    str("source_service", "postgresql");
    w.Key("metadata");
    w.StartObject();
    str("operation", PQgetvalue(res, i, 3));
    str("table", "audit." + table);
    if (sequence != "0") str("sequence", sequence);
    str("reason", PQgetvalue(res, i, 7));
    str("break_glass_log_id", id);
    w.EndObject();
    w.EndObject();
    w.EndObject();
    const std::string msg_id = "break-glass-" + id;
    const stored_ack ack = publish_and_wait(source_.js(), opt_.events_subject, std::string_view(sb.GetString(), sb.GetSize()),
                                            {{"Content-Type", "application/cloudevents+json"}}, msg_id.c_str(),
                                            opt_.publish_ack_timeout_ms);
    if (!ack.ok()) break;  // the rest at the next round
    recorded.push_back(id);
  }
  PQclear(res);
  if (recorded.empty()) return true;
  std::vector<int64_t> ids;
  for (const auto& id : recorded) ids.push_back(std::stoll(id));
  const std::string arr = bigint_array(ids);
  const char* p[] = {arr.c_str()};
  if (auto r = session_.exec("INSERT INTO audit.break_glass_recorded (log_id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING",
                             1, p);
      !r.ok()) {
    step = "break-glass recorded";
    error = r.message;
    return false;
  }
  log::warn("checkpoints", "break-glass changes of the ledger recorded as audit events",
            {{"entries", static_cast<int64_t>(recorded.size())}});
  return true;
}

}  // namespace trail
