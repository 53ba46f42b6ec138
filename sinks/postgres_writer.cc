#include "sinks/postgres_writer.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/time.h"
#include "sinks/copy_encoding.h"
#include "sinks/event_rows.h"
#include "sinks/pg_session.h"

namespace trail {
namespace {

std::string text_array(const std::vector<std::string>& items) {
  // Tenant ids are [A-Za-z0-9._:-] (validated), so quoting needs no escapes.
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out.push_back('"');
    out.append(items[i]);
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

}  // namespace

// The ledger's own invariant failed (a head row missing for a tenant with
// events, or a sequence already taken): never written around, waited out
// loudly until an operator repairs it (docs/RELIABILITY.md, "Recovery").
constexpr const char* kLedgerInvariant = "ledger_invariant";

class postgres_writer_pool::writer {
 public:
  writer(int index, const config& cfg, commit_observer& obs, health& h)
      : index_(index),
        cfg_(cfg),
        observer_(obs),
        health_(h),
        session_(cfg.pg_dsn, pg_timeouts{cfg.pg_connect_timeout_s, cfg.pg_statement_timeout_s},
                 "traild-writer-" + std::to_string(index)),
        rng_(std::random_device{}()),
        known_tenants_gauge_(metrics::get().writer_known_tenants(index)) {}

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
  void write(std::vector<audit_record>&& records, bool dedupe);
  db_result try_write(std::vector<audit_record>& records, bool dedupe, bool uncertain);
  bool ensure_connected();
  void disconnect() {
    session_.close();
    if (connected_) --health_.writers_connected;
    connected_ = false;
  }
  void backoff(const std::string& why, const std::string& error_class);
  void remember_tenants(const std::vector<std::string>& fresh);

  const int index_;
  const config& cfg_;
  commit_observer& observer_;
  health& health_;
  pg_session session_;
  moodycamel::BlockingConcurrentQueue<record_batch> queue_;  // at most one batch (its batcher waits for ready_)
  std::function<void()> ready_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> abandon_{false};
  bool connected_ = false;
  int64_t backoff_ms_ = 0;
  std::mt19937_64 rng_;
  // Tenants whose head row is known to exist: a cache, cleared at
  // pg.known_tenants_max (a miss only costs an INSERT … ON CONFLICT).
  std::unordered_set<std::string> known_tenants_;
  prometheus::Gauge& known_tenants_gauge_;
  std::string copy_buf_;
  std::string ids_buf_;
  // Set by try_write: records whose identity digest is held by another event.
  std::vector<bool> collided_;
  int write_depth_ = 0;
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
  metrics::get().db_error(error_class).Increment();
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

void postgres_writer_pool::writer::remember_tenants(const std::vector<std::string>& fresh) {
  const auto max = static_cast<size_t>(cfg_.known_tenants_max);
  if (known_tenants_.size() + fresh.size() > max) known_tenants_.clear();
  for (const auto& t : fresh) {
    if (known_tenants_.size() >= max) break;  // a miss only costs an INSERT … ON CONFLICT
    known_tenants_.insert(t);
  }
  known_tenants_gauge_.Set(static_cast<double>(known_tenants_.size()));
}

db_result postgres_writer_pool::writer::try_write(std::vector<audit_record>& records, bool dedupe, bool uncertain) {
  if (auto r = session_.exec("BEGIN"); !r.ok()) return r;

  std::vector<std::string> tenants;
  for (const auto& r : records) tenants.emplace_back(r.tenant_id());
  std::sort(tenants.begin(), tenants.end());
  tenants.erase(std::unique(tenants.begin(), tenants.end()), tenants.end());
  std::vector<std::string> fresh;
  for (const auto& t : tenants)
    if (!known_tenants_.count(t)) fresh.push_back(t);
  if (!fresh.empty()) {
    // A head row is created only for a tenant with no stored event: a tenant
    // whose head was lost (restore, lagging standby, deleted row) must not
    // start again at 1. It is caught below instead.
    const std::string arr = text_array(fresh);
    const char* p[] = {arr.c_str()};
    if (auto r = session_.exec("INSERT INTO audit.tenant_heads (tenant_id) SELECT t FROM unnest($1::text[]) AS t "
                               "WHERE NOT EXISTS (SELECT 1 FROM audit.event_ids x WHERE x.tenant_id = t) "
                               "ON CONFLICT DO NOTHING",
                               1, p);
        !r.ok())
      return r;
  }
  // Lock the heads in tenant order (no deadlock between writers or replicas).
  std::unordered_map<std::string, int64_t> head;
  int64_t now_us = 0;
  {
    const std::string arr = text_array(tenants);
    const char* p[] = {arr.c_str()};
    PGresult* res = nullptr;
    if (auto r = session_.exec("SELECT tenant_id, last_sequence, (extract(epoch FROM now()) * 1000000)::bigint "
                               "FROM audit.tenant_heads WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE",
                               1, p, &res);
        !r.ok())
      return r;
    for (int i = 0; i < PQntuples(res); ++i) {
      head[PQgetvalue(res, i, 0)] = std::stoll(PQgetvalue(res, i, 1));
      now_us = std::stoll(PQgetvalue(res, i, 2));
    }
    PQclear(res);
  }
  if (head.size() != tenants.size()) {
    std::string missing;
    for (const auto& t : tenants)
      if (!head.count(t)) missing += (missing.empty() ? "" : ",") + t;
    for (const auto& t : tenants) known_tenants_.erase(t);
    db_result r;
    r.kind = result_kind::unavailable;
    r.sqlstate = kLedgerInvariant;
    r.message = "tenant(s) " + missing + " have stored events but no row in audit.tenant_heads; "
                "new sequences would repeat old ones";
    return r;
  }

  // Identity: (tenant, source, id). Repeats inside this batch first.
  std::vector<int> same_as(records.size(), -1);
  {
    std::unordered_map<std::string, int> seen;
    std::string key;
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      key.clear();
      key.append(r.tenant_id()).push_back('\x1f');
      key.append(r.ce_source()).push_back('\x1f');
      key.append(r.ce_id());
      auto [it, inserted] = seen.emplace(key, static_cast<int>(i));
      if (!inserted) same_as[i] = it->second;
    }
  }
  std::vector<int64_t> stored_seq(records.size(), 0);  // > 0: already in the table
  std::vector<int64_t> stored_at(records.size(), 0);   // its recorded_at
  collided_.assign(records.size(), false);
  if (dedupe) {
    copy_buf_.clear();
    for (size_t i = 0; i < records.size(); ++i) {
      if (same_as[i] >= 0) continue;
      copy_text::row_builder row(copy_buf_);
      row.integer(static_cast<int64_t>(i));
      row.text(records[i].tenant_id());
      row.text(digest_hex(identity_digest(records[i].ce_source(), records[i].ce_id())));
      row.text(records[i].ce_source());
      row.text(records[i].ce_id());
      row.end_row();
    }
    if (auto r = session_.copy_in("COPY trail_keys (n, t, d, s, i) FROM STDIN", copy_buf_); !r.ok()) return r;
    PGresult* res = nullptr;
    // Found by its digest; the same event only if source and id match too.
    if (auto r = session_.exec(
            "SELECT k.n, x.sequence, (extract(epoch FROM e.recorded_at) * 1000000)::bigint, "
            "x.ce_source = k.s AND x.ce_id = k.i FROM trail_keys k "
            "JOIN audit.event_ids x ON x.tenant_id = k.t AND x.id_digest = k.d "
            "LEFT JOIN audit.events e ON e.tenant_id = x.tenant_id AND e.occurred_at = x.occurred_at "
            "AND e.sequence = x.sequence",
            0, nullptr, &res);
        !r.ok())
      return r;
    for (int i = 0; i < PQntuples(res); ++i) {
      const auto n = static_cast<size_t>(std::stoll(PQgetvalue(res, i, 0)));
      if (PQgetvalue(res, i, 3)[0] != 't') {  // another event holds this digest
        collided_[n] = true;
        continue;
      }
      stored_seq[n] = std::stoll(PQgetvalue(res, i, 1));
      if (!PQgetisnull(res, i, 2)) stored_at[n] = std::stoll(PQgetvalue(res, i, 2));
    }
    PQclear(res);
    for (size_t i = 0; i < records.size(); ++i)
      if (same_as[i] >= 0) collided_[i] = collided_[static_cast<size_t>(same_as[i])];
  }

  std::vector<int64_t> seq(records.size(), 0);
  copy_buf_.clear();
  ids_buf_.clear();
  size_t rows = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (same_as[i] >= 0 || stored_seq[i] > 0 || collided_[i]) continue;
    auto& r = records[i];
    seq[i] = ++head[std::string(r.tenant_id())];
    render_rows(r.event, seq[i], copy_buf_, ids_buf_);
    ++rows;
  }
  if (rows > 0) {
    // The identities first: a repeat fails here, before the wide rows are sent.
    if (auto r = session_.copy_in(kEventIdsCopy, ids_buf_);
        !r.ok()) {
      if (r.constraint == "event_ids_sequence") {  // a sequence is taken: the head is behind the table
        for (const auto& t : tenants) known_tenants_.erase(t);
        r.kind = result_kind::unavailable;
        r.message = "a sequence about to be assigned is already stored (audit.tenant_heads is behind): " + r.message;
        r.sqlstate = kLedgerInvariant;
      }
      return r;
    }
    if (auto r = session_.copy_in(kEventsCopy, copy_buf_); !r.ok()) return r;
    std::vector<std::string> ts, ss;
    for (const auto& [t, s] : head) {
      ts.push_back(t);
      ss.push_back(std::to_string(s));
    }
    const std::string a1 = text_array(ts);
    std::string a2 = "{";
    for (size_t i = 0; i < ss.size(); ++i) a2 += (i ? "," : "") + ss[i];
    a2 += "}";
    const char* p[] = {a1.c_str(), a2.c_str()};
    if (auto r = session_.exec(
            "UPDATE audit.tenant_heads h SET last_sequence = v.s, updated_at = now() "
            "FROM unnest($1::text[], $2::bigint[]) AS v(t, s) WHERE h.tenant_id = v.t AND h.last_sequence < v.s",
            2, p);
        !r.ok())
      return r;
  }
  failpoint::before_commit();
  const auto commit_started = std::chrono::steady_clock::now();
  if (auto r = session_.exec("COMMIT"); !r.ok()) return r;
  metrics::get().commit_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count());
  failpoint::after_commit();

  remember_tenants(fresh);
  size_t dups = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    r.recorded_at_us = now_us;
    if (stored_seq[i] > 0) {
      r.sequence = stored_seq[i];
      r.duplicate = true;
      if (stored_at[i] > 0) r.recorded_at_us = stored_at[i];
    } else if (same_as[i] >= 0) {
      const size_t first = static_cast<size_t>(same_as[i]);
      r.sequence = stored_seq[first] > 0 ? stored_seq[first] : seq[first];
      if (stored_at[first] > 0) r.recorded_at_us = stored_at[first];
      r.duplicate = true;
    } else {
      r.sequence = seq[i];
    }
    // A duplicate is republished only when it may be the event whose first
    // republish was lost: a JetStream redelivery of its message, or a retry
    // of this very write after a commit of unknown outcome. A publisher's
    // re-send (delivered once, perhaps with other content) was republished
    // when first stored and is not sent again.
    r.republish = !r.duplicate || uncertain || (r.origin && r.origin->delivered > 1);
    if (r.duplicate && same_as[i] >= 0) r.republish = false;
    dups += r.duplicate;
  }
  auto& m = metrics::get();
  m.committed.Increment(static_cast<double>(rows));
  if (auto* top = m.tenants()) {
    // One add per run of a tenant's records (the writer merges whole tenant batches).
    for (size_t i = 0; i < records.size();) {
      size_t j = i;
      uint64_t stored = 0;
      while (j < records.size() && records[j].tenant_id() == records[i].tenant_id()) stored += !records[j++].duplicate;
      if (stored) top->add(std::string(records[i].tenant_id()), stored);
      i = j;
    }
  }
  if (dups) m.duplicates.Increment(static_cast<double>(dups));
  m.commits.Increment();
  m.batch_events.Observe(static_cast<double>(records.size()));
  m.batch_bytes.Observe(static_cast<double>(copy_buf_.size()));
  return {};
}

void postgres_writer_pool::writer::write(std::vector<audit_record>&& records, bool dedupe) {
  // Busy while this call runs (bisecting recurses: count the outermost call only).
  struct busy_mark {
    bool outer;
    explicit busy_mark(int& depth) : outer(depth++ == 0), depth_(depth) {
      if (outer) metrics::get().pg_connections_busy.Increment();
    }
    ~busy_mark() {
      if (outer) metrics::get().pg_connections_busy.Decrement();
      --depth_;
    }
    int& depth_;
  } mark(write_depth_);
  for (const auto& r : records)
    if (r.origin && r.origin->delivered > 1) dedupe = true;  // a redelivery may already be stored
  bool uncertain = false;  // an earlier attempt of this write may have committed
  while (true) {
    if (abandon_) return;  // shutdown deadline: the messages stay un-acked and are redelivered
    if (!ensure_connected()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    db_result r = try_write(records, dedupe, uncertain);
    if (r.ok()) {
      if (blocked_) {
        blocked_ = false;
        --health_.writers_blocked;
        log::info("writer", "the ledger's invariants hold again; writing", {{"writer", index_}});
      }
      metrics::get().flush_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (std::find(collided_.begin(), collided_.end(), true) != collided_.end()) {
        // Never stored and never taken for a duplicate: refused loudly.
        std::vector<audit_record> kept;
        for (size_t i = 0; i < records.size(); ++i) {
          if (!collided_[i]) {
            kept.push_back(std::move(records[i]));
            continue;
          }
          const std::string digest = digest_hex(identity_digest(records[i].ce_source(), records[i].ce_id()));
          log::error("writer", "an event's identity digest is already held by a different event; refusing it",
                     {{"tenant", records[i].tenant_id()}, {"ce_source", records[i].ce_source()},
                      {"ce_id", records[i].ce_id()}, {"id_digest", digest}});
          observer_.refused(std::move(records[i]), reason::database_rejected,
                            "identity digest " + digest + " of (source, id) is already held by another stored event "
                            "of this tenant (a SHA-256 collision); the event cannot be stored under this identity");
        }
        records = std::move(kept);
      }
      observer_.committed(std::move(records));
      return;
    }
    if (session_.connected()) session_.exec("ROLLBACK");
    switch (r.kind) {
      case result_kind::duplicate_key:
        if (dedupe) {  // cannot happen on the dedupe path unless someone else wrote the key meanwhile
          backoff("unique violation on the dedupe path: " + r.message, r.sqlstate);
        }
        dedupe = true;
        continue;
      case result_kind::bad_data:
        metrics::get().db_error(r.sqlstate).Increment();
        if (records.size() == 1) {
          log::limited(log::level::warn, "writer", "PostgreSQL refused an event; it goes to the dead-letter stream",
                    {{"tenant", records[0].tenant_id()}, {"ce_id", records[0].ce_id()}, {"sqlstate", r.sqlstate}, {"error", r.message}});
          observer_.refused(std::move(records[0]), reason::database_rejected, r.sqlstate + ": " + r.message);
          return;
        } else {
          // Bisect: the refused events end up alone, the rest is committed.
          std::vector<audit_record> second(std::make_move_iterator(records.begin() + static_cast<long>(records.size() / 2)),
                                           std::make_move_iterator(records.end()));
          records.resize(records.size() / 2);
          write(std::move(records), dedupe);
          write(std::move(second), dedupe);
          return;
        }
      default:
        if (r.sqlstate == kLedgerInvariant && !blocked_) {
          blocked_ = true;  // not ready until repaired
          ++health_.writers_blocked;
        }
        if (!session_.connected()) {
          disconnect();
          // The connection may have dropped during COMMIT, whose outcome is
          // then unknown: retry on the dedupe path, which is right either way.
          uncertain = true;
        }
        backoff(r.sqlstate.empty() ? r.message : r.sqlstate + " " + r.message, r.sqlstate);
        dedupe = true;
        continue;
    }
  }
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
    write(std::exchange(batch, {}), false);
    // Ask for the next transaction: what gathered while this one ran.
    if (ready_) ready_();
  }
}

postgres_writer_pool::postgres_writer_pool(const config& cfg, commit_observer& observer, health& h) {
  h.writers_total = static_cast<int>(cfg.writers);
  for (int i = 0; i < cfg.writers; ++i) writers_.push_back(std::make_unique<writer>(i, cfg, observer, h));
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
