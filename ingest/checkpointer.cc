#include "ingest/checkpointer.h"

#include <libpq-fe.h>

#include <chrono>

#include "common/log.h"
#include "common/time.h"
#include "ingest/ingest_metrics.h"

namespace trail {

checkpointer::checkpointer(checkpointer_options opt, integrity::signing_key key, jetstream_source& source)
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
  auto failed = [&](const std::string& what, const std::string& error) {
    if (session_.connected()) session_.exec("ROLLBACK");
    m.failed_rounds.Increment();
    log::limited(log::level::warn, "checkpoints", "checkpoint round failed; retried at the next one",
                 {{"step", what}, {"error", error}});
    return int64_t{-1};
  };
  std::string error;
  if (!session_.connected() && !session_.connect(&error)) return failed("connect", error);
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
    return 0;
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
    c.origin = integrity::checkpoint_origin(key_.name, tenant);
    c.size = std::stoll(PQgetvalue(res, i, 1));
    const auto root = chain_hash_from_hex(PQgetvalue(res, i, 2));
    if (!root) continue;  // the writers refuse such a head loudly (ledger_invariant)
    c.root = *root;
    c.time_us = std::stoll(PQgetvalue(res, i, 3));
    const std::string note = integrity::sign_checkpoint(c, key_);
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
  m.signed_total.Increment(static_cast<double>(tenants.size()));
  if (!publish_error.empty()) {
    m.failed_rounds.Increment();
    log::limited(log::level::warn, "checkpoints", "the broker did not take a checkpoint; the rest waits for the next round",
                 {{"error", publish_error}, {"stored", static_cast<int64_t>(tenants.size())}});
    return static_cast<int64_t>(tenants.size());
  }
  m.last_round.Set(static_cast<double>(now_unix_us()) / 1e6);
  return static_cast<int64_t>(tenants.size());
}

}  // namespace trail
