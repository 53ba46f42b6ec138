#pragma once
// A libpq connection that cannot hang: every round trip has a deadline.
//
// A black-holed PostgreSQL (a frozen server, a dropped route) answers neither
// queries nor TCP resets; a blocking libpq call would then wait forever and
// with it the writer, readiness and shutdown. So connections are opened with
// connect_timeout, TCP keepalives, tcp_user_timeout and a server-side
// statement_timeout, and every statement is sent and awaited in non-blocking
// mode with poll(): past the deadline the call fails and the connection is
// marked broken, to be dropped by its owner.
//
// Owned by one thread at a time (a writer, the dead-letter store).

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sinks/db_result.h"

namespace trail {

struct pg_timeouts {
  int64_t connect_s = 10;
  int64_t statement_s = 60;
};

class pg_session {
 public:
  pg_session(std::string dsn, pg_timeouts t, std::string application_name);
  ~pg_session() { close(); }
  pg_session(const pg_session&) = delete;
  pg_session& operator=(const pg_session&) = delete;

  // Connects if not connected (or broken). False with `error` set on failure.
  bool connect(std::string* error);
  bool connected() const { return conn_ && !broken_ && PQstatus(conn_) == CONNECTION_OK; }
  void close();

  // One statement (text parameters); `keep` receives the tuples on success.
  db_result exec(const char* sql, int nparams = 0, const char* const* params = nullptr, PGresult** keep = nullptr,
                 const int* lengths = nullptr, const int* formats = nullptr);
  // COPY … FROM STDIN with `data` as its whole input.
  db_result copy_in(const std::string& statement, std::string_view data);

  // One step of a pipeline: a statement with text parameters. With `prepared`
  // the statement is prepared once per connection (named, kept until the
  // connection closes) and executed by name from then on, so PostgreSQL
  // parses and plans it once; without, it is parsed and planned every time.
  struct step {
    const std::string* sql = nullptr;
    const std::vector<std::string>* params = nullptr;
    bool prepared = false;
    PGresult** keep = nullptr;  // receives the tuples on success
  };
  // Sends every step in libpq's pipeline mode and then one Sync: a single
  // round trip for all of them. The first failure is returned (the steps
  // after it are skipped by the server); `keep`s are filled only on success.
  db_result exec_pipeline(const std::vector<step>& steps);
  // Whether the server is inside a transaction block (open or failed).
  bool in_transaction_block() const;

  PGconn* raw() const { return conn_; }

 private:
  using clock = std::chrono::steady_clock;
  bool flush_until(clock::time_point deadline);
  bool wait_socket(bool for_write, clock::time_point deadline);
  db_result collect(clock::time_point deadline, PGresult** keep);
  db_result classify(PGresult* res);
  db_result timed_out(const char* what);

  const std::string dsn_;
  const pg_timeouts timeouts_;
  const std::string app_;
  PGconn* conn_ = nullptr;
  bool broken_ = false;
  // Statement text -> name of its prepared statement on this connection.
  std::unordered_map<std::string, std::string> prepared_;
  uint64_t prepared_names_ = 0;  // names given on this connection
};

// PostgreSQL array literals for text parameters ($1::text[], $1::bigint[]).
// Text items are not quoted: only for values that need no quoting (tenant
// ids, which are [A-Za-z0-9_:-]).
std::string text_array(const std::vector<std::string>& items);
std::string bigint_array(const std::vector<int64_t>& items);

// A blocking connect with Trail's timeouts added to `dsn` (connect_timeout,
// keepalives, tcp_user_timeout, statement_timeout, application_name), each
// unless the DSN sets it itself: libpq's defaults for a black-holed server are
// "wait forever". Check PQstatus() of the result; PQfinish it in any case.
PGconn* connect_with_timeouts(const std::string& dsn, pg_timeouts t, const std::string& application_name);

}  // namespace trail
