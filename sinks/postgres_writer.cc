#include "sinks/postgres_writer.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>

#include "common/log.h"
#include "common/time.h"
#include "sinks/copy_encoding.h"
#include "sinks/event_rows.h"
#include "sinks/ledger_writer.h"
#include "sinks/pg_session.h"

namespace trail {
namespace {

// The ledger's statements on one libpq session (the seam of ledger_writer.h).
class pg_ledger final : public ledger_session {
 public:
  explicit pg_ledger(pg_session& s) : s_(s) {}

  db_result begin() override { return s_.exec("BEGIN"); }

  db_result create_heads(const std::vector<std::string>& tenants) override {
    // A head row is created only for a tenant with no stored event: a tenant
    // whose head was lost (restore, lagging standby, deleted row) must not
    // start again at 1. It is caught by lock_heads' caller instead.
    const std::string arr = text_array(tenants);
    const char* p[] = {arr.c_str()};
    return s_.exec("INSERT INTO audit.tenant_heads (tenant_id) SELECT t FROM unnest($1::text[]) AS t "
                   "WHERE NOT EXISTS (SELECT 1 FROM audit.event_ids x WHERE x.tenant_id = t) "
                   "ON CONFLICT DO NOTHING",
                   1, p);
  }

  db_result lock_heads(const std::vector<std::string>& tenants, tenant_heads& heads, int64_t& now_us) override {
    // In tenant order: no deadlock between writers or replicas. The head's
    // link is locked with its sequence: the chain cannot fork.
    const std::string arr = text_array(tenants);
    const char* p[] = {arr.c_str()};
    PGresult* res = nullptr;
    if (auto r = s_.exec("SELECT tenant_id, last_sequence, encode(head_hash, 'hex'), "
                         "(extract(epoch FROM now()) * 1000000)::bigint "
                         "FROM audit.tenant_heads WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE",
                         1, p, &res);
        !r.ok())
      return r;
    for (int i = 0; i < PQntuples(res); ++i) {
      const auto hash = chain_hash_from_hex(PQgetvalue(res, i, 2));
      if (!hash) {
        PQclear(res);
        db_result bad;
        bad.kind = result_kind::unavailable;
        bad.sqlstate = kLedgerInvariant;
        bad.message = std::string("audit.tenant_heads.head_hash of tenant ") + PQgetvalue(res, i, 0) +
                      " is not 32 bytes; the chain cannot be continued";
        return bad;
      }
      heads[PQgetvalue(res, i, 0)] = {std::stoll(PQgetvalue(res, i, 1)), *hash};
      now_us = std::stoll(PQgetvalue(res, i, 3));
    }
    PQclear(res);
    return {};
  }

  db_result find_stored(const std::vector<identity_key>& keys, std::vector<stored_identity>& found) override {
    buf_.clear();
    for (const auto& k : keys) {
      copy_text::row_builder row(buf_);
      row.integer(static_cast<int64_t>(k.index));
      row.text(k.tenant);
      row.text(digest_hex(identity_digest(k.source, k.id)));
      row.text(k.source);
      row.text(k.id);
      row.end_row();
    }
    if (auto r = s_.copy_in("COPY trail_keys (n, t, d, s, i) FROM STDIN", buf_); !r.ok()) return r;
    PGresult* res = nullptr;
    // Found by its digest; the same event only if source and id match too.
    if (auto r = s_.exec("SELECT k.n, x.sequence, (extract(epoch FROM e.recorded_at) * 1000000)::bigint, "
                         "x.ce_source = k.s AND x.ce_id = k.i FROM trail_keys k "
                         "JOIN audit.event_ids x ON x.tenant_id = k.t AND x.id_digest = k.d "
                         "LEFT JOIN audit.events e ON e.tenant_id = x.tenant_id AND e.occurred_at = x.occurred_at "
                         "AND e.sequence = x.sequence",
                         0, nullptr, &res);
        !r.ok())
      return r;
    for (int i = 0; i < PQntuples(res); ++i)
      found.push_back({static_cast<size_t>(std::stoll(PQgetvalue(res, i, 0))), std::stoll(PQgetvalue(res, i, 1)),
                       PQgetisnull(res, i, 2) ? 0 : std::stoll(PQgetvalue(res, i, 2)), PQgetvalue(res, i, 3)[0] == 't'});
    PQclear(res);
    return {};
  }

  db_result insert(std::string_view ids_copy, std::string_view events_copy) override {
    // The identities first: a repeat fails there, before the wide rows are sent.
    if (auto r = s_.copy_in(kEventIdsCopy, ids_copy); !r.ok()) return r;
    return s_.copy_in(kEventsCopy, events_copy);
  }

  db_result advance_heads(const tenant_heads& heads) override {
    std::vector<std::string> ts, hs;
    std::vector<int64_t> ss;
    for (const auto& [t, h] : heads) {
      ts.push_back(t);
      ss.push_back(h.sequence);
      hs.push_back(to_hex(h.hash));
    }
    const std::string tenants = text_array(ts), seqs = bigint_array(ss), hashes = text_array(hs);
    const char* p[] = {tenants.c_str(), seqs.c_str(), hashes.c_str()};
    return s_.exec("UPDATE audit.tenant_heads h SET last_sequence = v.s, head_hash = decode(v.h, 'hex'), "
                   "updated_at = now() FROM unnest($1::text[], $2::bigint[], $3::text[]) AS v(t, s, h) "
                   "WHERE h.tenant_id = v.t AND h.last_sequence < v.s",
                   3, p);
  }

  db_result record_outbox(const outbox_ranges& ranges, int64_t& id) override {
    const std::string t = text_array(ranges.tenants), f = bigint_array(ranges.first), l = bigint_array(ranges.last);
    const char* p[] = {t.c_str(), f.c_str(), l.c_str()};
    PGresult* res = nullptr;
    if (auto r = s_.exec("INSERT INTO audit.outbox (tenants, first_seqs, last_seqs) VALUES ($1, $2, $3) RETURNING id", 3,
                         p, &res);
        !r.ok())
      return r;
    id = std::stoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return {};
  }

  db_result commit() override { return s_.exec("COMMIT"); }
  void rollback() override { s_.exec("ROLLBACK"); }
  bool connected() const override { return s_.connected(); }

 private:
  pg_session& s_;
  std::string buf_;
};

}  // namespace

class postgres_writer_pool::writer {
 public:
  writer(int index, const writer_pool_options& opt, commit_observer& obs, health& h)
      : index_(index),
        health_(h),
        session_(opt.dsn, opt.timeouts,
                 "traild-writer-" + std::to_string(index)),
        ledger_(session_),
        writer_(ledger_, obs,
                ledger_writer::hooks{[this] { return ensure_connected(); },
                                     [this](const std::string& why, const std::string& cls) { backoff(why, cls); },
                                     [this] { return abandon_.load(); }, [this](bool b) { set_blocked(b); }},
                opt.known_tenants_max, opt.outbox),
        rng_(std::random_device{}()),
        known_tenants_gauge_(writer_metrics::get().known_tenants(index)) {}

  ~writer() { disconnect(); }

  void start() { thread_ = std::thread([this] { run(); }); }
  void stop() {
    stop_ = true;
    queue_.enqueue({});  // wakes the thread now rather than at its next poll
    if (thread_.joinable()) thread_.join();
  }
  void enqueue(record_batch&& b) { queue_.enqueue(std::move(b)); }
  void set_ready(std::function<void()> f) { ready_ = std::move(f); }
  void abandon() { abandon_ = true; }

 private:
  void run();
  bool ensure_connected();
  void disconnect() {
    session_.close();
    if (connected_) --health_.writers_connected;
    connected_ = false;
  }
  void backoff(const std::string& why, const std::string& error_class);
  void set_blocked(bool blocked) {
    if (blocked == blocked_) return;
    blocked_ = blocked;
    if (blocked) {
      ++health_.writers_blocked;
    } else {
      --health_.writers_blocked;
      log::info("writer", "the ledger's invariants hold again; writing", {{"writer", index_}});
    }
  }

  const int index_;
  health& health_;
  pg_session session_;
  pg_ledger ledger_;
  ledger_writer writer_;
  moodycamel::BlockingConcurrentQueue<record_batch> queue_;  // at most one batch (its batcher waits for ready_)
  std::function<void()> ready_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> abandon_{false};
  bool connected_ = false;
  int64_t backoff_ms_ = 0;
  std::mt19937_64 rng_;
  prometheus::Gauge& known_tenants_gauge_;
  bool blocked_ = false;  // counted in health::writers_blocked
};

bool postgres_writer_pool::writer::ensure_connected() {
  if (session_.connected()) return true;
  disconnect();
  std::string err;
  if (!session_.connect(&err)) {
    backoff("cannot connect to PostgreSQL: " + err, "");
    return false;
  }
  if (auto r = session_.exec("CREATE TEMP TABLE trail_keys (n int, t text, d uuid, s text, i text) ON COMMIT DELETE ROWS");
      !r.ok()) {
    backoff("cannot prepare the session: " + r.message, r.sqlstate);
    disconnect();
    return false;
  }
  connected_ = true;
  ++health_.writers_connected;
  if (backoff_ms_ > 0) log::info("writer", "connected to PostgreSQL again", {{"writer", index_}});
  backoff_ms_ = 0;
  return true;
}

void postgres_writer_pool::writer::backoff(const std::string& why, const std::string& error_class) {
  if (!session_.connected()) disconnect();  // not ready while it waits
  writer_metrics::get().db_error(error_class).Increment();
  backoff_ms_ = backoff_ms_ == 0 ? 100 : std::min<int64_t>(backoff_ms_ * 2, 5000);
  const int64_t sleep_ms = backoff_ms_ / 2 + static_cast<int64_t>(rng_() % static_cast<uint64_t>(backoff_ms_ / 2 + 1));
  if (error_class == kLedgerInvariant)
    log::limited(log::level::error, "writer", "refusing to write: the ledger's invariants do not hold; waiting for repair",
                 {{"writer", index_}, {"error", why}, {"retry_ms", sleep_ms}});
  else
    log::limited(log::level::warn, "writer", "database unavailable; waiting before retrying",
                 {{"writer", index_}, {"error", why}, {"retry_ms", sleep_ms}});
  // Sleep in slices: a shutdown past its deadline must not wait out a backoff.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(sleep_ms);
  while (!abandon_ && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
}

void postgres_writer_pool::writer::run() {
  record_batch batch;
  ensure_connected();  // connect before the first batch: /readyz reports it
  auto last_ping = std::chrono::steady_clock::now();
  while (true) {
    if (!queue_.wait_dequeue_timed(batch, std::chrono::milliseconds(100)) || batch.empty()) {
      if (abandon_ || (stop_ && queue_.size_approx() == 0)) return;
      // Idle: check the connection now and then, so readiness tells the truth.
      if (std::chrono::steady_clock::now() - last_ping > std::chrono::seconds(2)) {
        last_ping = std::chrono::steady_clock::now();
        if (!session_.connected() || !session_.exec("SELECT 1").ok()) {
          if (!session_.connected()) disconnect();
          ensure_connected();
        }
      }
      continue;
    }
    writer_.write(std::exchange(batch, {}), false);
    known_tenants_gauge_.Set(static_cast<double>(writer_.known_tenants()));
    // Ask for the next transaction: what gathered while this one ran.
    if (ready_) ready_();
  }
}

postgres_writer_pool::postgres_writer_pool(const writer_pool_options& opt, commit_observer& observer, health& h) {
  h.writers_total = static_cast<int>(opt.writers);
  for (size_t i = 0; i < opt.writers; ++i) writers_.push_back(std::make_unique<writer>(static_cast<int>(i), opt, observer, h));
}

postgres_writer_pool::~postgres_writer_pool() { stop(); }

void postgres_writer_pool::start() {
  for (auto& w : writers_) w->start();
}

void postgres_writer_pool::stop() {
  for (auto& w : writers_) w->stop();
}

void postgres_writer_pool::abandon() {
  for (auto& w : writers_) w->abandon();
}

size_t postgres_writer_pool::lane_of(std::string_view tenant) const {
  return lane_for(tenant, writers_.size());
}

void postgres_writer_pool::submit(size_t lane, record_batch&& batch) {
  if (batch.empty()) return;
  writers_[lane]->enqueue(std::move(batch));
}

void postgres_writer_pool::on_ready(size_t lane, std::function<void()> ready) { writers_[lane]->set_ready(std::move(ready)); }

}  // namespace trail
