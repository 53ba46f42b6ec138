#include "ingest/outbox.h"

#include <charconv>
#include <iterator>

#include "common/log.h"
#include "ingest/ingest_metrics.h"
#include "common/time.h"
#include "decode/event_json.h"
#include "sinks/event_reader.h"

namespace trail {

outbox_keeper::outbox_keeper(outbox_options opt, jetstream_source& source)
    : opt_(std::move(opt)),
      source_(source),
      session_(opt_.pg_dsn, opt_.timeouts, "traild-outbox") {}

outbox_keeper::~outbox_keeper() { stop(); }

void outbox_keeper::start() {
  last_reconcile_ = std::chrono::steady_clock::now() - std::chrono::hours(1);  // a first pass at start
  thread_ = std::thread([this] { run(); });
}

void outbox_keeper::stop() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void outbox_keeper::published(natsMsg* msg, int64_t outbox_id) {
  from_finalizer_.enqueue({note_kind::published, msg, outbox_id});
}
void outbox_keeper::seal(int64_t outbox_id) { from_finalizer_.enqueue({note_kind::sealed, nullptr, outbox_id}); }
void outbox_keeper::give_up(int64_t outbox_id) { from_finalizer_.enqueue({note_kind::given_up, nullptr, outbox_id}); }
void outbox_keeper::confirmed(natsMsg* msg) { from_broker_.enqueue({note_kind::confirmed, msg, 0}); }
void outbox_keeper::abandoned(natsMsg* msg) { from_broker_.enqueue({note_kind::abandoned, msg, 0}); }

void outbox_keeper::settle_row(int64_t id, row_state& s) {
  if (!s.sealed || s.pending > 0) return;
  if (!s.given_up) done_.push_back(id);
  rows_.erase(id);
}

void outbox_keeper::finish_row(int64_t id, bool confirmed) {
  auto& s = rows_[id];
  --s.pending;
  if (!confirmed) s.given_up = true;
  settle_row(id, s);
}

void outbox_keeper::outcome(natsMsg* msg, bool confirmed) {
  auto& a = addresses_[msg];
  if (a.publishes.empty()) {  // its publish is not drained yet
    a.outcomes.push_back(confirmed);
    return;
  }
  const int64_t id = a.publishes.front();
  a.publishes.pop_front();
  if (a.publishes.empty() && a.outcomes.empty()) addresses_.erase(msg);
  finish_row(id, confirmed);
}

void outbox_keeper::drain_notes() {
  note batch[256];
  // The finalizer's notes first: an outcome drained below has its publish
  // drained here or in an earlier pass, unless it raced this pass (then the
  // address keeps the outcome until its publish arrives).
  for (size_t n; (n = from_finalizer_.try_dequeue_bulk(batch, std::size(batch))) > 0;)
    for (size_t i = 0; i < n; ++i) {
      const note& x = batch[i];
      if (x.kind == note_kind::sealed) {
        auto& s = rows_[x.id];
        s.sealed = true;
        settle_row(x.id, s);
      } else if (x.kind == note_kind::given_up) {
        rows_[x.id].given_up = true;
      } else {
        ++rows_[x.id].pending;
        auto& a = addresses_[x.msg];
        if (!a.outcomes.empty()) {  // its outcome came first
          const bool ok = a.outcomes.front();
          a.outcomes.pop_front();
          if (a.publishes.empty() && a.outcomes.empty()) addresses_.erase(x.msg);
          finish_row(x.id, ok);
        } else {
          a.publishes.push_back(x.id);
        }
      }
    }
  for (size_t n; (n = from_broker_.try_dequeue_bulk(batch, std::size(batch))) > 0;)
    for (size_t i = 0; i < n; ++i) outcome(batch[i].msg, batch[i].kind == note_kind::confirmed);
}

bool outbox_keeper::ensure_connected() {
  if (session_.connected()) return true;
  std::string err;
  if (session_.connect(&err)) return true;
  log::limited(log::level::warn, "outbox", "cannot connect to PostgreSQL; confirmed rows are deleted later", {{"error", err}});
  return false;
}

void outbox_keeper::delete_confirmed() {
  drain_notes();
  republish_metrics::get().outbox_waiting.Set(static_cast<double>(rows_.size()));
  std::vector<int64_t> ids;
  ids.swap(done_);
  if (ids.empty()) return;
  const std::string arr = bigint_array(ids);
  const char* p[] = {arr.c_str()};
  if (!ensure_connected() || !session_.exec("DELETE FROM audit.outbox WHERE id = ANY($1::bigint[])", 1, p).ok())
    done_.insert(done_.end(), ids.begin(), ids.end());  // kept: deleted at the next pass
}

void outbox_keeper::reconcile() {
  if (!ensure_connected()) return;
  const std::string age = std::to_string(opt_.reconcile_after_s);
  const char* p_age[] = {age.c_str()};
  if (!session_.exec("BEGIN").ok()) return;
  PGresult* rows = nullptr;
  // Rows of any replica, old enough that their own confirmation is not
  // coming; SKIP LOCKED: two keepers never republish the same row at once.
  if (!session_
           .exec("SELECT o.id, t.tenant, t.first, t.last FROM (SELECT id, tenants, first_seqs, last_seqs FROM audit.outbox "
                 "WHERE created_at < now() - make_interval(secs => $1::int) ORDER BY id LIMIT 64 FOR UPDATE SKIP LOCKED) o, "
                 "unnest(o.tenants, o.first_seqs, o.last_seqs) AS t(tenant, first, last) ORDER BY o.id, t.tenant",
                 1, p_age, &rows)
           .ok()) {
    session_.exec("ROLLBACK");
    return;
  }
  std::unordered_map<int64_t, bool> row_ok;
  std::vector<int64_t> order;
  int64_t events = 0;
  const int n = PQntuples(rows);
  for (int i = 0; i < n && !stop_; ++i) {
    const int64_t id = std::stoll(PQgetvalue(rows, i, 0));
    if (!row_ok.count(id)) {
      row_ok[id] = true;
      order.push_back(id);
    }
    if (!row_ok[id]) continue;
    const char* p[] = {PQgetvalue(rows, i, 1), PQgetvalue(rows, i, 2), PQgetvalue(rows, i, 3)};
    PGresult* res = nullptr;
    static const std::string sql = std::string("SELECT ") + kStoredEventColumns +
                                   " FROM audit.event_ids x JOIN audit.events e ON e.tenant_id = x.tenant_id "
                                   "AND e.occurred_at = x.occurred_at AND e.sequence = x.sequence "
                                   "WHERE x.tenant_id = $1 AND x.sequence BETWEEN $2::bigint AND $3::bigint "
                                   "ORDER BY x.sequence";
    if (!session_.exec(sql.c_str(), 3, p, &res).ok()) {
      row_ok[id] = false;
      continue;
    }
    std::string body, subject, msg_id, error;
    for (int r = 0; r < PQntuples(res) && row_ok[id]; ++r) {
      stored_event se;
      if (!read_stored_event(res, r, se, &error)) {
        log::limited(log::level::error, "outbox", "cannot read a stored event back; its row stays", {{"error", error}});
        row_ok[id] = false;
        break;
      }
      const auto tenant = se.event.get(event_field::tenant_id);
      body.clear();
      render_committed_event(se.event, padded_sequence(se.sequence), format_rfc3339_us(se.recorded_at_us), body);
      subject.assign(opt_.committed_prefix).push_back('.');
      subject.append(tenant);
      msg_id.assign(tenant).push_back(':');
      msg_id += std::to_string(se.sequence);
      if (static_cast<int64_t>(body.size() + subject.size() + msg_id.size() + 64) > source_.max_payload()) {
        log::limited(log::level::error, "outbox", "a committed event is larger than the broker's max_payload; not republished",
                     {{"tenant_sequence", msg_id}});
        continue;  // it never can be: the table holds it
      }
      const stored_ack sent = publish_and_wait(source_.js(), subject, body, {}, msg_id.c_str(), opt_.publish_ack_timeout_ms);
      if (!sent.ok()) {
        log::limited(log::level::warn, "outbox", "republish from the table failed; the row is tried again later",
                     {{"tenant_sequence", msg_id}, {"error", nats_error_text(sent.status, sent.jerr)}});
        row_ok[id] = false;
        break;
      }
      ++events;
    }
    PQclear(res);
  }
  PQclear(rows);
  std::vector<int64_t> done;
  for (int64_t id : order)
    if (row_ok[id]) done.push_back(id);
  const auto deleted = static_cast<int64_t>(done.size());
  const std::string arr = bigint_array(done);
  const char* p_ids[] = {arr.c_str()};
  if (deleted > 0 && !session_.exec("DELETE FROM audit.outbox WHERE id = ANY($1::bigint[])", 1, p_ids).ok()) {
    session_.exec("ROLLBACK");
    return;
  }
  if (!session_.exec("COMMIT").ok()) return;
  if (deleted > 0) {
    reconciled_rows_ += deleted;
    republish_metrics::get().outbox_republished.Increment(static_cast<double>(events));
    log::info("outbox", "committed events republished from the table (their broker confirmation never came)",
              {{"rows", deleted}, {"events", events}});
  }
}

void outbox_keeper::run() {
  const auto every = std::chrono::seconds(std::max<int64_t>(1, opt_.reconcile_after_s / 2));
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wake_mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_.load(); });
    }
    delete_confirmed();
    if (stop_) return;
    if (std::chrono::steady_clock::now() - last_reconcile_ >= every) {
      last_reconcile_ = std::chrono::steady_clock::now();
      reconcile();
    }
  }
}

}  // namespace trail
