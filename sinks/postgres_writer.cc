#include "sinks/postgres_writer.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "common/failpoint.h"
#include "common/log.h"
#include "common/time.h"
#include "sinks/copy_encoding.h"
#include "sinks/event_columns.h"

namespace trail {
namespace {

enum class result_kind { ok, duplicate_key, bad_data, unavailable };

struct db_result {
  result_kind kind = result_kind::ok;
  std::string sqlstate;
  std::string message;
};

db_result classify(PGconn* conn, PGresult* res) {
  db_result r;
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  r.sqlstate = state ? state : "";
  r.message = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  while (!r.message.empty() && (r.message.back() == '\n' || r.message.back() == ' ')) r.message.pop_back();
  if (PQstatus(conn) != CONNECTION_OK || r.sqlstate.empty()) r.kind = result_kind::unavailable;
  else if (r.sqlstate == "23505") r.kind = result_kind::duplicate_key;
  else if (r.sqlstate.compare(0, 2, "22") == 0 || r.sqlstate.compare(0, 2, "23") == 0 || r.sqlstate.compare(0, 2, "54") == 0)
    r.kind = result_kind::bad_data;
  else r.kind = result_kind::unavailable;
  return r;
}

// Runs a statement; ok or the classified failure.
db_result exec(PGconn* conn, const char* sql, int nparams = 0, const char* const* params = nullptr,
               PGresult** keep = nullptr) {
  PGresult* res = nparams ? PQexecParams(conn, sql, nparams, nullptr, params, nullptr, nullptr, 0) : PQexec(conn, sql);
  const auto st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (keep) *keep = res;
    else PQclear(res);
    return {};
  }
  db_result r = classify(conn, res);
  PQclear(res);
  return r;
}

// COPY … FROM STDIN with `data` as the whole input.
db_result copy_in(PGconn* conn, const std::string& statement, const std::string& data) {
  PGresult* res = PQexec(conn, statement.c_str());
  if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
    db_result r = classify(conn, res);
    PQclear(res);
    return r;
  }
  PQclear(res);
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    const size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(conn, data.data() + off, static_cast<int>(n)) != 1) break;
  }
  PQputCopyEnd(conn, nullptr);
  db_result r;
  while ((res = PQgetResult(conn)) != nullptr) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && r.kind == result_kind::ok) r = classify(conn, res);
    PQclear(res);
  }
  return r;
}

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

class postgres_writer_pool::writer {
 public:
  writer(int index, const config& cfg, commit_observer& obs, health& h)
      : index_(index), cfg_(cfg), observer_(obs), health_(h), rng_(std::random_device{}()) {}

  ~writer() { disconnect(); }

  void start() { thread_ = std::thread([this] { run(); }); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void enqueue(record_batch&& b) { queue_.enqueue(std::move(b)); }
  void abandon() { abandon_ = true; }

 private:
  void run();
  void write(std::vector<audit_record>&& records, bool dedupe);
  db_result try_write(std::vector<audit_record>& records, bool dedupe);
  bool ensure_connected();
  void disconnect() {
    if (conn_) {
      PQfinish(conn_);
      conn_ = nullptr;
      if (connected_) --health_.writers_connected;
      connected_ = false;
    }
  }
  void backoff(const std::string& why, const std::string& sqlstate);

  const int index_;
  const config& cfg_;
  commit_observer& observer_;
  health& health_;
  moodycamel::BlockingConcurrentQueue<record_batch> queue_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> abandon_{false};
  PGconn* conn_ = nullptr;
  bool connected_ = false;
  int64_t backoff_ms_ = 0;
  std::mt19937_64 rng_;
  std::set<std::string> known_tenants_;  // tenants whose head row exists
  std::string copy_buf_;
  int write_depth_ = 0;
};

bool postgres_writer_pool::writer::ensure_connected() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK) return true;
  disconnect();
  conn_ = PQconnectdb(cfg_.pg_dsn.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string err = PQerrorMessage(conn_);
    while (!err.empty() && err.back() == '\n') err.pop_back();
    PQfinish(conn_);
    conn_ = nullptr;
    backoff("cannot connect to PostgreSQL: " + err, "");
    return false;
  }
  const std::string app = "SET application_name = 'traild-writer-" + std::to_string(index_) + "'";
  if (exec(conn_, app.c_str()).kind != result_kind::ok ||
      exec(conn_, "CREATE TEMP TABLE trail_keys (n int, t text, o timestamptz, s text, i text) ON COMMIT DELETE ROWS")
              .kind != result_kind::ok) {
    backoff(std::string("cannot prepare the session: ") + PQerrorMessage(conn_), "");
    disconnect();
    return false;
  }
  connected_ = true;
  ++health_.writers_connected;
  if (backoff_ms_ > 0) log::info("writer", "connected to PostgreSQL again", {{"writer", index_}});
  backoff_ms_ = 0;
  return true;
}

void postgres_writer_pool::writer::backoff(const std::string& why, const std::string& sqlstate) {
  metrics::get().db_error(sqlstate).Increment();
  backoff_ms_ = backoff_ms_ == 0 ? 100 : std::min<int64_t>(backoff_ms_ * 2, 5000);
  const int64_t sleep_ms = backoff_ms_ / 2 + static_cast<int64_t>(rng_() % static_cast<uint64_t>(backoff_ms_ / 2 + 1));
  log::limited(log::level::warn, "writer", "database unavailable; waiting before retrying",
            {{"writer", index_}, {"error", why}, {"retry_ms", sleep_ms}});
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
}

db_result postgres_writer_pool::writer::try_write(std::vector<audit_record>& records, bool dedupe) {
  if (auto r = exec(conn_, "BEGIN"); r.kind != result_kind::ok) return r;

  std::vector<std::string> tenants;
  for (const auto& r : records) tenants.push_back(r.tenant_id);
  std::sort(tenants.begin(), tenants.end());
  tenants.erase(std::unique(tenants.begin(), tenants.end()), tenants.end());
  std::vector<std::string> fresh;
  for (const auto& t : tenants)
    if (!known_tenants_.count(t)) fresh.push_back(t);
  if (!fresh.empty()) {
    const std::string arr = text_array(fresh);
    const char* p[] = {arr.c_str()};
    if (auto r = exec(conn_, "INSERT INTO audit.tenant_heads (tenant_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", 1, p);
        r.kind != result_kind::ok)
      return r;
  }
  // Lock the heads in tenant order (no deadlock between writers or replicas).
  std::unordered_map<std::string, int64_t> head;
  int64_t now_us = 0;
  {
    const std::string arr = text_array(tenants);
    const char* p[] = {arr.c_str()};
    PGresult* res = nullptr;
    if (auto r = exec(conn_,
                      "SELECT tenant_id, last_sequence, (extract(epoch FROM now()) * 1000000)::bigint "
                      "FROM audit.tenant_heads WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE",
                      1, p, &res);
        r.kind != result_kind::ok)
      return r;
    for (int i = 0; i < PQntuples(res); ++i) {
      head[PQgetvalue(res, i, 0)] = std::stoll(PQgetvalue(res, i, 1));
      now_us = std::stoll(PQgetvalue(res, i, 2));
    }
    PQclear(res);
  }

  // Identity: (tenant, occurred_at, source, id). Repeats inside this batch first.
  std::vector<int> same_as(records.size(), -1);
  {
    std::unordered_map<std::string, int> seen;
    std::string key;
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      key.clear();
      key.append(r.tenant_id).push_back('\x1f');
      key.append(std::to_string(r.occurred_at_us)).push_back('\x1f');
      key.append(r.ce_source).push_back('\x1f');
      key.append(r.ce_id);
      auto [it, inserted] = seen.emplace(key, static_cast<int>(i));
      if (!inserted) same_as[i] = it->second;
    }
  }
  std::vector<int64_t> stored_seq(records.size(), 0);  // > 0: already in the table
  if (dedupe) {
    copy_buf_.clear();
    for (size_t i = 0; i < records.size(); ++i) {
      if (same_as[i] >= 0) continue;
      copy_text::row_builder row(copy_buf_);
      row.integer(static_cast<int64_t>(i));
      row.text(records[i].tenant_id);
      row.text(format_rfc3339_us(records[i].occurred_at_us));
      row.text(records[i].ce_source);
      row.text(records[i].ce_id);
      row.end_row();
    }
    if (auto r = copy_in(conn_, "COPY trail_keys (n, t, o, s, i) FROM STDIN", copy_buf_); r.kind != result_kind::ok)
      return r;
    PGresult* res = nullptr;
    if (auto r = exec(conn_,
                      "SELECT k.n, e.sequence FROM trail_keys k JOIN audit.events e ON e.tenant_id = k.t "
                      "AND e.occurred_at = k.o AND e.ce_source = k.s AND e.ce_id = k.i",
                      0, nullptr, &res);
        r.kind != result_kind::ok)
      return r;
    for (int i = 0; i < PQntuples(res); ++i)
      stored_seq[static_cast<size_t>(std::stoll(PQgetvalue(res, i, 0)))] = std::stoll(PQgetvalue(res, i, 1));
    PQclear(res);
  }

  std::vector<int64_t> seq(records.size(), 0);
  copy_buf_.clear();
  size_t rows = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (same_as[i] >= 0 || stored_seq[i] > 0) continue;
    seq[i] = ++head[records[i].tenant_id];
    copy_buf_.append(std::to_string(seq[i])).push_back('\t');
    copy_buf_.append(records[i].copy_tail);
    ++rows;
  }
  if (rows > 0) {
    static const std::string copy_sql = std::string("COPY audit.events (") + kEventCopyColumns + ") FROM STDIN";
    if (auto r = copy_in(conn_, copy_sql, copy_buf_); r.kind != result_kind::ok) return r;
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
    if (auto r = exec(conn_,
                      "UPDATE audit.tenant_heads h SET last_sequence = v.s, updated_at = now() "
                      "FROM unnest($1::text[], $2::bigint[]) AS v(t, s) WHERE h.tenant_id = v.t AND h.last_sequence < v.s",
                      2, p);
        r.kind != result_kind::ok)
      return r;
  }
  failpoint::before_commit();
  const auto commit_started = std::chrono::steady_clock::now();
  if (auto r = exec(conn_, "COMMIT"); r.kind != result_kind::ok) return r;
  metrics::get().commit_seconds.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count());
  failpoint::after_commit();

  for (const auto& t : fresh) known_tenants_.insert(t);
  size_t dups = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    r.recorded_at_us = now_us;
    if (stored_seq[i] > 0) {
      r.sequence = stored_seq[i];
      r.duplicate = true;
    } else if (same_as[i] >= 0) {
      const size_t first = static_cast<size_t>(same_as[i]);
      r.sequence = stored_seq[first] > 0 ? stored_seq[first] : seq[first];
      r.duplicate = true;
    } else {
      r.sequence = seq[i];
    }
    dups += r.duplicate;
  }
  auto& m = metrics::get();
  m.committed.Increment(static_cast<double>(rows));
  if (auto* top = m.tenants()) {
    // One add per run of a tenant's records (the writer merges whole tenant batches).
    for (size_t i = 0; i < records.size();) {
      size_t j = i;
      uint64_t stored = 0;
      while (j < records.size() && records[j].tenant_id == records[i].tenant_id) stored += !records[j++].duplicate;
      if (stored) top->add(records[i].tenant_id, stored);
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
  while (true) {
    if (abandon_) return;  // shutdown deadline: the messages stay un-acked and are redelivered
    if (!ensure_connected()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    db_result r = try_write(records, dedupe);
    if (r.kind == result_kind::ok) {
      metrics::get().flush_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      observer_.committed(std::move(records));
      return;
    }
    exec(conn_, "ROLLBACK");
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
                    {{"tenant", records[0].tenant_id}, {"ce_id", records[0].ce_id}, {"sqlstate", r.sqlstate}, {"error", r.message}});
          observer_.refused(std::move(records[0]), "database_rejected", r.sqlstate + ": " + r.message);
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
        backoff(r.sqlstate + " " + r.message, r.sqlstate);
        if (PQstatus(conn_) != CONNECTION_OK) disconnect();
        // The connection may have dropped during COMMIT, whose outcome is then
        // unknown: retry on the dedupe path, which is right either way.
        dedupe = true;
        continue;
    }
  }
}

void postgres_writer_pool::writer::run() {
  std::vector<audit_record> txn;
  size_t txn_bytes = 0;
  record_batch batch;
  ensure_connected();  // connect before the first batch: /readyz reports it
  auto last_ping = std::chrono::steady_clock::now();
  auto flush = [&] {
    if (txn.empty()) return;
    write(std::move(txn), false);
    txn = {};
    txn_bytes = 0;
  };
  while (true) {
    bool got;
    if (txn.empty()) {
      got = queue_.wait_dequeue_timed(batch, std::chrono::milliseconds(100));
      if (!got) {
        if (stop_) return;
        // Idle: check the connection now and then, so readiness tells the truth.
        if (std::chrono::steady_clock::now() - last_ping > std::chrono::seconds(2)) {
          last_ping = std::chrono::steady_clock::now();
          if (!conn_ || exec(conn_, "SELECT 1").kind != result_kind::ok) {
            if (conn_ && PQstatus(conn_) != CONNECTION_OK) disconnect();
            ensure_connected();
          }
        }
        continue;
      }
    } else {
      got = queue_.try_dequeue(batch);
      if (!got) {
        flush();
        continue;
      }
    }
    for (auto& r : batch) {
      txn_bytes += r.copy_tail.size();
      txn.push_back(std::move(r));
    }
    batch.clear();
    if (static_cast<int64_t>(txn.size()) >= cfg_.txn_max_events || static_cast<int64_t>(txn_bytes) >= cfg_.txn_max_bytes)
      flush();
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

void postgres_writer_pool::submit(record_batch&& batch) {
  if (batch.empty()) return;
  const size_t i = std::hash<std::string>{}(batch.front().tenant_id) % writers_.size();
  writers_[i]->enqueue(std::move(batch));
}

}  // namespace trail
