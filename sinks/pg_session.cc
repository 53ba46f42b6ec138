#include "sinks/pg_session.h"

#include <poll.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace trail {

PGconn* connect_with_timeouts(const std::string& dsn, pg_timeouts t, const std::string& application_name) {
  std::set<std::string> given;
  char* err = nullptr;
  if (PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err)) {
    for (const PQconninfoOption* o = opts; o->keyword; ++o)
      if (o->val && *o->val) given.insert(o->keyword);
    PQconninfoFree(opts);
  } else if (err) {
    PQfreemem(err);  // PQconnectdbParams reports the same error
  }
  std::vector<std::string> values;
  values.reserve(16);  // c_str() pointers below must stay valid
  std::vector<const char*> keys{"dbname"}, vals{dsn.c_str()};
  auto add = [&](const char* key, std::string value) {
    if (given.count(key)) return;
    values.push_back(std::move(value));
    keys.push_back(key);
    vals.push_back(values.back().c_str());
  };
  add("connect_timeout", std::to_string(t.connect_s));
  add("keepalives", "1");
  add("keepalives_idle", "10");
  add("keepalives_interval", "5");
  add("keepalives_count", "3");
  // Unacknowledged data is given up after this long (the kernel's default is ~15 min).
  add("tcp_user_timeout", std::to_string(std::min<int64_t>(t.statement_s, 30) * 1000));
  add("options", "-c statement_timeout=" + std::to_string(t.statement_s) + "s");
  if (!application_name.empty()) add("application_name", application_name);
  keys.push_back(nullptr);
  vals.push_back(nullptr);
  return PQconnectdbParams(keys.data(), vals.data(), 1);
}

pg_session::pg_session(std::string dsn, pg_timeouts t, std::string application_name)
    : dsn_(std::move(dsn)), timeouts_(t), app_(std::move(application_name)) {}

void pg_session::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  broken_ = false;
  prepared_.clear();
  prepared_names_ = 0;
}

bool pg_session::in_transaction_block() const {
  if (!conn_) return false;
  const PGTransactionStatusType t = PQtransactionStatus(conn_);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

db_result pg_session::exec_pipeline(const std::vector<step>& steps) {
  if (!connected()) return timed_out("(no connection)");
  // A bounded cache: statements are built from a small set of shapes, but a
  // caller varying a literal must not grow a connection without end.
  constexpr size_t kMaxPrepared = 256;
  const auto deadline = clock::now() + std::chrono::seconds(timeouts_.statement_s);
  if (!PQenterPipelineMode(conn_)) return classify(nullptr);
  std::vector<PGresult**> keeps;  // one per query sent, in order (nullptr for PREPAREs)
  std::vector<std::string> fresh;  // statements prepared by this pipeline
  bool sent = true;
  for (const step& st : steps) {
    std::vector<const char*> params;
    if (st.params)
      for (const auto& p : *st.params) params.push_back(p.c_str());
    const int n = static_cast<int>(params.size());
    if (st.keep) *st.keep = nullptr;
    const std::string* name = nullptr;
    if (st.prepared) {
      auto it = prepared_.find(*st.sql);
      if (it == prepared_.end() && prepared_.size() < kMaxPrepared) {
        // Names are never reused on a connection: a statement forgotten
        // after its pipeline failed may still exist on the server.
        it = prepared_.emplace(*st.sql, "trail_" + std::to_string(++prepared_names_)).first;
        fresh.push_back(*st.sql);
        sent = sent && PQsendPrepare(conn_, it->second.c_str(), st.sql->c_str(), n, nullptr);
        keeps.push_back(nullptr);
      }
      if (it != prepared_.end()) name = &it->second;
    }
    sent = sent && (name ? PQsendQueryPrepared(conn_, name->c_str(), n, params.data(), nullptr, nullptr, 0)
                         : PQsendQueryParams(conn_, st.sql->c_str(), n, nullptr, params.data(), nullptr, nullptr, 0));
    keeps.push_back(st.keep);
  }
  auto forget_fresh = [&] {
    for (const auto& sql : fresh) prepared_.erase(sql);
  };
  if (!sent || !PQpipelineSync(conn_)) {
    forget_fresh();
    broken_ = true;  // the pipeline's state is unknown
    return classify(nullptr);
  }
  if (!flush_until(deadline)) return forget_fresh(), timed_out("a pipeline");
  db_result out;
  bool failed = false;
  size_t query = 0;
  while (true) {
    while (PQisBusy(conn_)) {
      if (!wait_socket(false, deadline)) return forget_fresh(), timed_out("a pipeline");
      if (!PQconsumeInput(conn_)) {
        forget_fresh();
        return failed ? out : classify(nullptr);
      }
    }
    PGresult* res = PQgetResult(conn_);
    if (!res) {  // the end of one query's results
      ++query;
      continue;
    }
    const auto st = PQresultStatus(res);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      break;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      PGresult** keep = query < keeps.size() ? keeps[query] : nullptr;
      if (keep && !*keep) *keep = res;
      else PQclear(res);
    } else if (st == PGRES_PIPELINE_ABORTED) {
      PQclear(res);  // skipped after an earlier failure
    } else {
      if (!failed) out = classify(res);
      failed = true;
      PQclear(res);
    }
  }
  if (!PQexitPipelineMode(conn_)) broken_ = true;
  if (failed) {
    // A PREPARE that failed or was skipped left no statement behind.
    forget_fresh();
    for (PGresult** keep : keeps)
      if (keep && *keep) PQclear(std::exchange(*keep, nullptr));
  }
  return out;
}

bool pg_session::connect(std::string* error) {
  if (connected()) return true;
  close();
  conn_ = connect_with_timeouts(dsn_, timeouts_, app_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    if (error) {
      *error = PQerrorMessage(conn_);
      while (!error->empty() && (error->back() == '\n' || error->back() == ' ')) error->pop_back();
    }
    close();
    return false;
  }
  PQsetnonblocking(conn_, 1);
  return true;
}

bool pg_session::wait_socket(bool for_write, clock::time_point deadline) {
  const int fd = PQsocket(conn_);
  if (fd < 0) return false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

bool pg_session::flush_until(clock::time_point deadline) {
  while (true) {
    const int r = PQflush(conn_);
    if (r == 0) return true;
    if (r < 0) return false;
    if (!wait_socket(true, deadline)) return false;
  }
}

db_result pg_session::timed_out(const char* what) {
  broken_ = true;  // the protocol state is unknown: the connection is dropped
  db_result r;
  r.kind = result_kind::unavailable;
  r.message = std::string("PostgreSQL did not answer ") + what + " within " + std::to_string(timeouts_.statement_s) +
              " s (pg.statement_timeout_s); dropping the connection";
  return r;
}

db_result pg_session::classify(PGresult* res) {
  db_result r;
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const char* constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : nullptr;
  r.sqlstate = state ? state : "";
  r.constraint = constraint ? constraint : "";
  r.message = res ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
  while (!r.message.empty() && (r.message.back() == '\n' || r.message.back() == ' ')) r.message.pop_back();
  if (PQstatus(conn_) != CONNECTION_OK || r.sqlstate.empty()) {
    r.kind = result_kind::unavailable;
    broken_ = true;
  } else if (r.sqlstate == "23505") {
    r.kind = result_kind::duplicate_key;
  } else if (r.sqlstate.compare(0, 2, "22") == 0 || r.sqlstate.compare(0, 2, "23") == 0 ||
             r.sqlstate.compare(0, 2, "54") == 0) {
    r.kind = result_kind::bad_data;
  } else {
    r.kind = result_kind::unavailable;
  }
  return r;
}

// Reads every result of the statement sent last; the first failure wins.
db_result pg_session::collect(clock::time_point deadline, PGresult** keep) {
  db_result out;
  bool failed = false;
  while (true) {
    while (PQisBusy(conn_)) {
      if (!wait_socket(false, deadline)) return timed_out("a statement");
      if (!PQconsumeInput(conn_)) {
        if (!failed) out = classify(nullptr);
        return out;
      }
    }
    PGresult* res = PQgetResult(conn_);
    if (!res) break;
    const auto st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      if (keep && !failed && !*keep) *keep = res;
      else PQclear(res);
    } else if (st == PGRES_COPY_IN) {
      // A COPY belongs to copy_in(); here the protocol state is unusable.
      PQclear(res);
      broken_ = true;
      out.kind = result_kind::unavailable;
      out.message = "a COPY was started through exec(); dropping the connection";
      return out;
    } else {
      if (!failed) out = classify(res);
      failed = true;
      PQclear(res);
    }
  }
  if (failed && keep && *keep) {
    PQclear(*keep);
    *keep = nullptr;
  }
  return out;
}

db_result pg_session::exec(const char* sql, int nparams, const char* const* params, PGresult** keep,
                           const int* lengths, const int* formats) {
  if (!connected()) return timed_out("(no connection)");
  const auto deadline = clock::now() + std::chrono::seconds(timeouts_.statement_s);
  if (keep) *keep = nullptr;
  const int sent = nparams ? PQsendQueryParams(conn_, sql, nparams, nullptr, params, lengths, formats, 0)
                           : PQsendQuery(conn_, sql);
  if (!sent) return classify(nullptr);
  if (!flush_until(deadline)) return timed_out("a statement");
  return collect(deadline, keep);
}

db_result pg_session::copy_in(const std::string& statement, std::string_view data) {
  if (!connected()) return timed_out("(no connection)");
  const auto deadline = clock::now() + std::chrono::seconds(timeouts_.statement_s);
  if (!PQsendQuery(conn_, statement.c_str())) return classify(nullptr);
  if (!flush_until(deadline)) return timed_out("COPY");
  // Wait for the server to enter COPY IN (or refuse the statement).
  while (PQisBusy(conn_)) {
    if (!wait_socket(false, deadline)) return timed_out("COPY");
    if (!PQconsumeInput(conn_)) return classify(nullptr);
  }
  PGresult* res = PQgetResult(conn_);
  if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
    db_result r = classify(res);
    PQclear(res);
    while ((res = PQgetResult(conn_)) != nullptr) PQclear(res);
    return r;
  }
  PQclear(res);
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size();) {
    const size_t n = std::min(kChunk, data.size() - off);
    const int r = PQputCopyData(conn_, data.data() + off, static_cast<int>(n));
    if (r < 0) return classify(nullptr);
    if (r == 0) {  // the output buffer is full: wait until the socket takes more
      if (!wait_socket(true, deadline) || PQflush(conn_) < 0) return timed_out("COPY data");
      continue;
    }
    off += n;
  }
  while (true) {
    const int r = PQputCopyEnd(conn_, nullptr);
    if (r < 0) return classify(nullptr);
    if (r == 1) break;
    if (!wait_socket(true, deadline)) return timed_out("the end of COPY");
  }
  if (!flush_until(deadline)) return timed_out("the end of COPY");
  return collect(deadline, nullptr);
}

std::string text_array(const std::vector<std::string>& items) {
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

std::string bigint_array(const std::vector<int64_t>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out += std::to_string(items[i]);
  }
  out.push_back('}');
  return out;
}

}  // namespace trail
