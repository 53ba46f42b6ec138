#include "api/ledger_reader.h"

#include <utility>

#include "decode/event_json.h"
#include "sinks/event_reader.h"
#include "common/time.h"

namespace trail {
namespace {

struct result_ptr {
  PGresult* r = nullptr;
  ~result_ptr() { PQclear(r); }
};

void render_row(const PGresult* res, int row, std::string& out, std::string* error, bool* ok) {
  stored_event ev;
  if (!read_stored_event(res, row, ev, error)) {
    *ok = false;
    return;
  }
  render_committed_event(ev.event, padded_sequence(ev.sequence), format_rfc3339_us(ev.recorded_at_us), out);
}

}  // namespace

ledger_reader::ledger_reader(reader_options opt) : opt_(std::move(opt)) {
  for (size_t i = 0; i < opt_.connections; ++i)
    idle_.push_back(std::make_unique<pg_session>(opt_.dsn, opt_.timeouts, "traild-api-" + std::to_string(i)));
}

ledger_reader::~ledger_reader() = default;

std::unique_ptr<pg_session> ledger_reader::take(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, wait, [this] { return !idle_.empty(); })) return nullptr;
  auto s = std::move(idle_.back());
  idle_.pop_back();
  return s;
}

void ledger_reader::give_back(std::unique_ptr<pg_session> s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(s));
  }
  cv_.notify_one();
}

bool ledger_reader::check_role(std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "no reader connection free", false;
  struct back {
    ledger_reader* self;
    std::unique_ptr<pg_session>& s;
    ~back() { self->give_back(std::move(s)); }
  } guard{this, s};
  if (!s->connect(error)) return false;
  result_ptr res;
  const db_result r = s->exec(
      "SELECT r.rolname, r.rolsuper OR r.rolbypassrls OR pg_has_role(r.oid, c.relowner, 'USAGE') "
      "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'audit.events'::regclass",
      0, nullptr, &res.r);
  if (!r.ok() || !res.r || PQntuples(res.r) != 1) return *error = "cannot read the reader role's attributes: " + r.message, false;
  if (std::string(PQgetvalue(res.r, 0, 1)) == "t") {
    *error = std::string("the role '") + PQgetvalue(res.r, 0, 0) +
             "' bypasses row-level security (superuser, BYPASSRLS or owner of audit.events); connect the API as trail_reader";
    return false;
  }
  return true;
}

read_status ledger_reader::run(pg_session& s, const std::string& tenant, const sql_statement& st, planning p,
                               PGresult** keep, std::string* error) {
  if (!valid_tenant_id(tenant)) return *error = "tenant id", read_status::invalid;
  if (!s.connect(error)) return read_status::unavailable;
  static const std::string kBegin = "BEGIN READ ONLY";
  static const std::string kRollback = "ROLLBACK";  // read only: nothing to commit
  // JIT is off for reads: with 40-odd partitions PostgreSQL compiles
  // hundreds of functions per statement (measured: 18 s of compilation
  // for a 10-second export), far more than it saves.
  static const std::string kConfine = "SELECT set_config('trail.tenant', $1, true), set_config('jit', 'off', true)";
  static const std::string kConfineOnce =
      "SELECT set_config('trail.tenant', $1, true), set_config('jit', 'off', true), "
      "set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_sort', 'off', true)";
  const std::vector<std::string> tenant_param{tenant};
  const bool once = p == planning::once;
  const db_result r = s.exec_pipeline({{&kBegin},
                                       {once ? &kConfineOnce : &kConfine, &tenant_param},
                                       {&st.text, &st.params, once, keep},
                                       {&kRollback}});
  // A failed statement leaves its transaction open (aborted): close it.
  if (!r.ok() && s.connected() && s.in_transaction_block()) s.exec("ROLLBACK");
  if (!r.ok()) {
    *error = r.message;
    return r.kind == result_kind::bad_data ? read_status::invalid : read_status::unavailable;
  }
  return read_status::ok;
}

read_status ledger_reader::list(const event_query& q, page_of_events& out, std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  result_ptr res;
  int rows = 0;
  read_status st;
  if (plain_catch_up(q)) {
    // Two steps: the identities' positions, then the events by position
    // (whose arrays of times let PostgreSQL plan only their partitions).
    result_ptr ids;
    st = run(*s, q.tenant, identity_page_sql(q), planning::once, &ids.r, error);
    if (st == read_status::ok && PQntuples(ids.r) > 0) {
      const int shown = std::min<int>(PQntuples(ids.r), static_cast<int>(q.page_size));
      // The identities are every sequence of the tenant in their range, so
      // the events in that range are exactly the page.
      std::string times = "{";
      for (int i = 0; i < shown; ++i) times += std::string(i ? "," : "") + PQgetvalue(ids.r, i, 1);
      st = run(*s, q.tenant,
               events_by_position_sql(q.tenant, times + "}", std::stoll(PQgetvalue(ids.r, 0, 0)),
                                      std::stoll(PQgetvalue(ids.r, shown - 1, 0)), kStoredEventColumns),
               planning::each_time, &res.r, error);
    }
    give_back(std::move(s));
    if (st != read_status::ok) return st;
    // One more identity than shown means a next page.
    rows = res.r ? PQntuples(res.r) + (PQntuples(ids.r) > static_cast<int>(q.page_size) ? 1 : 0) : 0;
  } else if (!q.by_sequence) {
    // Newest first: a window of recent days is tried before the whole range,
    // so that PostgreSQL plans and starts only the partitions it covers (a
    // query without a time bound starts every daily partition's index). The
    // window reaches back from the page's position (or now); rows newer than
    // it are always inside it, so a full page from the window is the page.
    static constexpr int64_t kDayUs = 86400LL * 1000000;
    const int64_t anchor = q.after ? q.after->occurred_at_us : now_unix_us();
    for (const int64_t days : {1, 8, 0}) {
      event_query windowed = q;
      if (days > 0) {
        const int64_t from = anchor - days * kDayUs;
        if (q.from_us && *q.from_us >= from) continue;  // the request's own range is narrower
        windowed.from_us = from;
      }
      if (res.r) PQclear(std::exchange(res.r, nullptr));
      st = run(*s, q.tenant, listing_sql(windowed, kStoredEventColumns), planning::once, &res.r, error);
      if (st != read_status::ok || days == 0 || PQntuples(res.r) > static_cast<int>(q.page_size)) break;
    }
    give_back(std::move(s));
    if (st != read_status::ok) return st;
    rows = PQntuples(res.r);
  } else {
    st = run(*s, q.tenant, listing_sql(q, kStoredEventColumns), planning::once, &res.r, error);
    give_back(std::move(s));
    if (st != read_status::ok) return st;
    rows = PQntuples(res.r);
  }
  const int shown = res.r ? std::min<int>({rows, static_cast<int>(q.page_size), PQntuples(res.r)}) : 0;
  bool ok = true;
  for (int i = 0; i < shown && ok; ++i) {
    if (i) out.events_json.push_back(',');
    const size_t begin = out.events_json.size();
    render_row(res.r, i, out.events_json, error, &ok);
    out.spans.push_back({std::stoll(PQgetvalue(res.r, i, 0)), begin, out.events_json.size()});
  }
  if (!ok) return read_status::unavailable;
  out.count = static_cast<size_t>(shown);
  if (rows > shown && shown > 0) {
    // Columns 0 and 2 of kStoredEventColumns: sequence and occurred_at in µs.
    page_position p;
    p.order = q.by_sequence ? 'a' : 'd';
    p.sequence = std::stoll(PQgetvalue(res.r, shown - 1, 0));
    p.occurred_at_us = std::stoll(PQgetvalue(res.r, shown - 1, 2));
    out.last = p;
  }
  return read_status::ok;
}

read_status ledger_reader::read(const std::string& tenant, int64_t sequence, stored_event& out, std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  result_ptr where, res;
  read_status st = run(*s, tenant, position_sql(tenant, sequence), planning::once, &where.r, error);
  if (st == read_status::ok && PQntuples(where.r) > 0) {
    const std::string times = std::string("{") + PQgetvalue(where.r, 0, 1) + "}";
    st = run(*s, tenant,
             events_by_position_sql(tenant, times, sequence, sequence, kStoredEventColumns),
             planning::each_time, &res.r, error);
  }
  give_back(std::move(s));
  if (st != read_status::ok) return st;
  if (!res.r || PQntuples(res.r) == 0) return read_status::not_found;
  return read_stored_event(res.r, 0, out, error) ? read_status::ok : read_status::unavailable;
}

read_status ledger_reader::find_identity(const std::string& tenant, const std::string& source, const std::string& id,
                                         int64_t& sequence, std::string& occurred_at, std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  sql_statement st;
  st.text =
      "SELECT i.sequence, to_char(i.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
      "FROM audit.event_ids i WHERE i.tenant_id = $1 AND i.id_digest = audit.identity_digest($2, $3) "
      "AND i.ce_source = $2 AND i.ce_id = $3";
  st.params = {tenant, source, id};
  result_ptr res;
  const read_status status = run(*s, tenant, st, planning::once, &res.r, error);
  give_back(std::move(s));
  if (status != read_status::ok) return status;
  if (PQntuples(res.r) == 0) return read_status::not_found;
  sequence = std::stoll(PQgetvalue(res.r, 0, 0));
  occurred_at = PQgetvalue(res.r, 0, 1);
  return read_status::ok;
}

read_status ledger_reader::get(const std::string& tenant, int64_t sequence, std::string& json, std::string* error) {
  stored_event ev;
  const read_status st = read(tenant, sequence, ev, error);
  if (st == read_status::ok)
    render_committed_event(ev.event, padded_sequence(ev.sequence), format_rfc3339_us(ev.recorded_at_us), json);
  return st;
}

}  // namespace trail

namespace trail {

export_cursor::export_cursor(ledger_reader& owner, std::unique_ptr<pg_session> s, export_format f)
    : owner_(owner), session_(std::move(s)), format_(f) {}

export_cursor::~export_cursor() {
  PQclear(first_);
  if (!session_) return;
  if (finished_) session_->exec("ROLLBACK");
  else session_->close();  // ends the statement; the session reconnects on its next use
  owner_.give_back(std::move(session_));
}

bool export_cursor::stream(const std::function<bool(std::string_view)>& sink, std::string* error) {
  constexpr size_t kChunk = 64 * 1024;
  PGconn* c = session_->raw();
  std::string buf;
  buf.reserve(2 * kChunk);
  if (copy_) {
    // PostgreSQL renders the CSV; Trail only turns its record ends into CRLF.
    crlf_records crlf;
    char* data = nullptr;
    int n = 0;
    while ((n = PQgetCopyData(c, &data, 0)) > 0) {
      crlf.convert(std::string_view(data, static_cast<size_t>(n)), buf);
      PQfreemem(data);
      if (buf.size() >= kChunk) {
        if (!sink(buf)) return *error = "the client went away", false;
        buf.clear();
      }
    }
    if (n == -2) return *error = PQerrorMessage(c), false;
    bool ok = true;
    for (PGresult* r; (r = PQgetResult(c)) != nullptr; PQclear(r))
      if (PQresultStatus(r) != PGRES_COMMAND_OK) ok = false, *error = PQresultErrorMessage(r);
    if (!ok) return false;
    rows_ = crlf.records() > 0 ? crlf.records() - 1 : 0;  // the header is a record too
    if (!buf.empty() && !sink(buf)) return *error = "the client went away", false;
    finished_ = true;
    return true;
  }
  stored_event ev;
  PGresult* r = std::exchange(first_, nullptr);
  while (r || (r = PQgetResult(c)) != nullptr) {
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_SINGLE_TUPLE) {
      if (!read_stored_event(r, 0, ev, error)) {
        PQclear(r);
        return false;
      }
      if (format_ == export_format::ledger) {
        if (!append_ledger_row(ev, buf)) {
          *error = "event " + std::to_string(ev.sequence) + ": a JSON column is not JSON";
          PQclear(r);
          return false;
        }
      } else {
        append_ndjson_row(ev, buf);
      }
      ++rows_;
    } else if (st != PGRES_TUPLES_OK) {
      *error = PQresultErrorMessage(r);
      PQclear(r);
      return false;
    }
    PQclear(r);
    r = nullptr;
    if (buf.size() >= kChunk) {
      if (!sink(buf)) return *error = "the client went away", false;
      buf.clear();
    }
  }
  if (!buf.empty() && !sink(buf)) return *error = "the client went away", false;
  finished_ = true;
  return true;
}

read_status ledger_reader::begin_cursor(const std::string& tenant, export_format f, std::unique_ptr<export_cursor>& cur,
                                        std::string* error) {
  if (!valid_tenant_id(tenant)) return *error = "tenant id", read_status::invalid;
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  cur.reset(new export_cursor(*this, std::move(s), f));
  pg_session& session = *cur->session_;
  if (!session.connect(error)) return read_status::unavailable;
  // A long read may outlast the usual statement timeout; an hour bounds a
  // runaway one. JIT is off as for every read (see run()).
  const std::string begin = "BEGIN READ ONLY; SET LOCAL trail.tenant = '" + tenant +
                            "'; SET LOCAL statement_timeout = '1h'; SET LOCAL jit = off";
  const db_result r = session.exec(begin.c_str());
  if (!r.ok()) return *error = r.message, read_status::unavailable;
  return read_status::ok;
}

read_status ledger_reader::stream_rows(std::unique_ptr<export_cursor>& cur, const sql_statement& st,
                                       std::unique_ptr<export_cursor>& out, std::string* error) {
  PGconn* c = cur->session_->raw();
  std::vector<const char*> params;
  for (const auto& p : st.params) params.push_back(p.c_str());
  if (!PQsendQueryParams(c, st.text.c_str(), static_cast<int>(params.size()), nullptr, params.data(), nullptr, nullptr, 0) ||
      !PQsetSingleRowMode(c))
    return *error = PQerrorMessage(c), read_status::unavailable;
  cur->first_ = PQgetResult(c);
  const ExecStatusType first = cur->first_ ? PQresultStatus(cur->first_) : PGRES_FATAL_ERROR;
  if (first != PGRES_SINGLE_TUPLE && first != PGRES_TUPLES_OK) {
    *error = cur->first_ ? PQresultErrorMessage(cur->first_) : PQerrorMessage(c);
    return read_status::unavailable;
  }
  out = std::move(cur);
  return read_status::ok;
}

read_status ledger_reader::open_export(const event_query& q, export_format f, std::unique_ptr<export_cursor>& out,
                                       std::string* error) {
  std::unique_ptr<export_cursor> cur;
  if (const read_status st = begin_cursor(q.tenant, f, cur, error); st != read_status::ok) return st;
  PGconn* c = cur->session_->raw();
  if (f == export_format::csv) {
    // COPY takes no parameters: each $n is replaced by its value as an
    // escaped literal, in one pass over the statement Trail built (whose own
    // text holds no '$'), so a value's own "$1" is never read as a marker.
    const sql_statement st = csv_copy_sql(q, csv_select_list());
    std::string text;
    for (size_t i = 0; i < st.text.size();) {
      if (st.text[i] != '$') {
        text.push_back(st.text[i++]);
        continue;
      }
      size_t j = i + 1, n = 0;
      while (j < st.text.size() && st.text[j] >= '0' && st.text[j] <= '9') n = n * 10 + static_cast<size_t>(st.text[j++] - '0');
      if (n == 0 || n > st.params.size()) return *error = "a malformed export statement", read_status::invalid;
      char* lit = PQescapeLiteral(c, st.params[n - 1].data(), st.params[n - 1].size());
      if (!lit) return *error = PQerrorMessage(c), read_status::unavailable;
      text += lit;
      PQfreemem(lit);
      i = j;
    }
    if (!PQsendQuery(c, text.c_str())) return *error = PQerrorMessage(c), read_status::unavailable;
    cur->first_ = PQgetResult(c);
    if (!cur->first_ || PQresultStatus(cur->first_) != PGRES_COPY_OUT) {
      *error = cur->first_ ? PQresultErrorMessage(cur->first_) : PQerrorMessage(c);
      return read_status::unavailable;
    }
    PQclear(std::exchange(cur->first_, nullptr));
    cur->copy_ = true;
    out = std::move(cur);
    return read_status::ok;
  }
  return stream_rows(cur, export_sql(q, kStoredEventColumns), out, error);
}

bool export_cursor::next(stored_event& ev, std::string* error) {
  error->clear();
  if (finished_) return false;
  PGresult* r = std::exchange(first_, nullptr);
  if (!r) r = PQgetResult(session_->raw());
  while (r) {
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_SINGLE_TUPLE) {
      const bool ok = read_stored_event(r, 0, ev, error);
      PQclear(r);
      if (ok) ++rows_;
      return ok;
    }
    if (st != PGRES_TUPLES_OK) {
      *error = PQresultErrorMessage(r);
      PQclear(r);
      return false;
    }
    PQclear(r);
    r = PQgetResult(session_->raw());
  }
  finished_ = true;
  return false;
}

read_status ledger_reader::open_chain(const std::string& tenant, int64_t from, int64_t to, export_format f,
                                      std::unique_ptr<export_cursor>& out, std::string* error) {
  std::unique_ptr<export_cursor> cur;
  if (const read_status st = begin_cursor(tenant, f, cur, error); st != read_status::ok) return st;
  sql_statement st;
  st.text = std::string("SELECT ") + kStoredEventWithLinksColumns +
            " FROM audit.events e WHERE e.tenant_id = $1 AND e.sequence BETWEEN $2::bigint AND $3::bigint "
            "ORDER BY e.sequence";
  st.params = {tenant, std::to_string(from), std::to_string(to)};
  return stream_rows(cur, st, out, error);
}

read_status ledger_reader::checkpoints(const std::string& tenant, int64_t from, int64_t to, size_t limit,
                                       std::vector<checkpoint_row>& out, std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  sql_statement st;
  st.text =
      "SELECT c.sequence, encode(c.head_hash, 'hex'), "
      "to_char(c.signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), c.note "
      "FROM audit.checkpoints c WHERE c.tenant_id = $1 AND c.sequence BETWEEN $2::bigint AND $3::bigint "
      "ORDER BY c.sequence LIMIT $4::bigint";
  st.params = {tenant, std::to_string(from), std::to_string(to), std::to_string(limit)};
  result_ptr res;
  const read_status status = run(*s, tenant, st, planning::once, &res.r, error);
  give_back(std::move(s));
  if (status != read_status::ok) return status;
  for (int i = 0; i < PQntuples(res.r); ++i)
    out.push_back({std::stoll(PQgetvalue(res.r, i, 0)), PQgetvalue(res.r, i, 1), PQgetvalue(res.r, i, 2),
                   PQgetvalue(res.r, i, 3)});
  return read_status::ok;
}

read_status ledger_reader::chain_extent(const std::string& tenant, int64_t& last_event, int64_t& last_checkpoint,
                                        std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  sql_statement st;
  st.text =
      "SELECT coalesce((SELECT max(i.sequence) FROM audit.event_ids i WHERE i.tenant_id = $1), 0), "
      "coalesce((SELECT max(c.sequence) FROM audit.checkpoints c WHERE c.tenant_id = $1), 0)";
  st.params = {tenant};
  result_ptr res;
  const read_status status = run(*s, tenant, st, planning::once, &res.r, error);
  give_back(std::move(s));
  if (status != read_status::ok) return status;
  last_event = std::stoll(PQgetvalue(res.r, 0, 0));
  last_checkpoint = std::stoll(PQgetvalue(res.r, 0, 1));
  return read_status::ok;
}

read_status ledger_reader::archived_runs(const std::string& tenant, int64_t from, int64_t to,
                                         std::vector<std::string>& notes, std::string* error) {
  auto s = take(std::chrono::seconds(5));
  if (!s) return *error = "every reader connection is busy", read_status::unavailable;
  sql_statement st;
  st.text =
      "SELECT r.note FROM audit.archived_runs r WHERE r.tenant_id = $1 AND r.last_sequence >= $2::bigint "
      "AND r.first_sequence <= $3::bigint ORDER BY r.first_sequence";
  st.params = {tenant, std::to_string(from), std::to_string(to)};
  result_ptr res;
  const read_status status = run(*s, tenant, st, planning::once, &res.r, error);
  give_back(std::move(s));
  if (status != read_status::ok) return status;
  for (int i = 0; i < PQntuples(res.r); ++i) notes.emplace_back(PQgetvalue(res.r, i, 0));
  return read_status::ok;
}

}  // namespace trail
