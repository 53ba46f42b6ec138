#pragma once
// The read side's way into PostgreSQL: a small pool of sessions as the
// `trail_reader` role (api.pg_dsn), each statement in a READ ONLY
// transaction that first sets `trail.tenant`, so row-level security (store/
// migrations/0005) confines it to the requested tenant even if a statement
// forgot its tenant predicate. The transaction, the setting and the statement
// go in one round trip. Used by the HTTP worker threads; a session is held
// for one request's statements and returned.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/event_query.h"
#include "api/export_format.h"
#include "sinks/event_reader.h"
#include "sinks/pg_session.h"

namespace trail {

struct reader_options {
  std::string dsn;
  pg_timeouts timeouts;
  size_t connections = 4;
};

enum class read_status { ok, not_found, unavailable, invalid };

struct page_of_events {
  std::string events_json;  // the array's elements, comma-separated committed CloudEvents
  size_t count = 0;
  std::optional<page_position> last;  // position of the last row, when a next page exists
  // Each event's sequence and its [begin, end) in events_json (a live stream sends them one by one).
  struct span {
    int64_t sequence;
    size_t begin, end;
  };
  std::vector<span> spans;
};

class ledger_reader;

// An export in progress: one session held, one statement streaming its rows
// in single-row mode (the server sends as fast as the client reads, so
// memory stays flat whatever the row count). Destroying it before the end
// (the client went away) drops the connection, which ends the statement.
class export_cursor {
 public:
  ~export_cursor();
  // Sends rows to `sink` in chunks of about 64 KiB until the end (true) or
  // until `sink` returns false or the database fails (false; `error` says
  // which). Call once.
  bool stream(const std::function<bool(std::string_view)>& sink, std::string* error);
  // Or row by row (a cursor of open_chain): false at the end (`error` empty)
  // or on a failure (`error` says which).
  bool next(stored_event& ev, std::string* error);
  size_t rows() const { return rows_; }

 private:
  friend class ledger_reader;
  export_cursor(ledger_reader& owner, std::unique_ptr<pg_session> s, export_format f);
  ledger_reader& owner_;
  std::unique_ptr<pg_session> session_;
  export_format format_;
  PGresult* first_ = nullptr;  // the first row (or the end), read before any byte is sent
  bool copy_ = false;          // CSV: PostgreSQL's COPY … TO, passed through
  bool finished_ = false;
  size_t rows_ = 0;
};

class ledger_reader {
 public:
  explicit ledger_reader(reader_options opt);
  ~ledger_reader();

  // Checks that the role cannot bypass row-level security (not a superuser,
  // not BYPASSRLS, not the owner of audit.events). False with `error` when it
  // can, or when PostgreSQL cannot be reached.
  bool check_role(std::string* error);

  read_status list(const event_query& q, page_of_events& out, std::string* error);
  // Starts an export of every event matching `q`'s filters, oldest first.
  // Errors (the database unavailable, a refused statement) surface here,
  // before the response has begun.
  read_status open_export(const event_query& q, export_format f, std::unique_ptr<export_cursor>& out, std::string* error);

  // Every stored event of the tenant with a sequence in [from, to], in
  // sequence order, with its chain links: read from audit.events alone (not
  // through audit.event_ids, which someone tampering with the events may
  // have left alone). `f`: ledger (stream()) or ndjson (next()).
  read_status open_chain(const std::string& tenant, int64_t from, int64_t to, export_format f,
                         std::unique_ptr<export_cursor>& out, std::string* error);
  // The tenant's signed checkpoints with a sequence in [from, to], oldest
  // first, at most `limit`.
  struct checkpoint_row {
    int64_t sequence = 0;
    std::string head_hash_hex, signed_at, note;
  };
  read_status checkpoints(const std::string& tenant, int64_t from, int64_t to, size_t limit,
                          std::vector<checkpoint_row>& out, std::string* error);
  // The signed notes of the tenant's archived runs (retention) that touch [from, to].
  read_status archived_runs(const std::string& tenant, int64_t from, int64_t to, std::vector<std::string>& notes,
                            std::string* error);
  // The last sequence of the tenant's identities and of its checkpoints (0: none).
  read_status chain_extent(const std::string& tenant, int64_t& last_event, int64_t& last_checkpoint, std::string* error);

  // Whether the tenant holds the event (source, id): its sequence and
  // occurred_at (RFC 3339) when it does (ok), not_found when not yet.
  read_status find_identity(const std::string& tenant, const std::string& source, const std::string& id, int64_t& sequence,
                            std::string& occurred_at, std::string* error);

  // One event, typed.
  read_status read(const std::string& tenant, int64_t sequence, stored_event& out, std::string* error);
  // One event as its committed CloudEvent.
  read_status get(const std::string& tenant, int64_t sequence, std::string& json, std::string* error);

 private:
  friend class export_cursor;
  std::unique_ptr<pg_session> take(std::chrono::milliseconds wait);
  // A cursor's session, in a READ ONLY transaction confined to `tenant`,
  // with an hour's statement timeout; then its statement started in
  // single-row mode (`out` gets the cursor once the first row or the end is in).
  read_status begin_cursor(const std::string& tenant, export_format f, std::unique_ptr<export_cursor>& cur,
                           std::string* error);
  read_status stream_rows(std::unique_ptr<export_cursor>& cur, const sql_statement& st,
                          std::unique_ptr<export_cursor>& out, std::string* error);
  void give_back(std::unique_ptr<pg_session> s);
  // How a statement is planned. `each_time`: PostgreSQL plans it with the
  // request's values, which lets it drop partitions from `= ANY(array)`
  // conditions while planning. `once`: prepared on the connection and run
  // with a generic plan (partitions are then dropped when it starts, by the
  // values of its time bounds), so a listing does not pay for planning up to
  // 40 partitions times five indexes on every request; sorts are discouraged
  // so that the plan walks the time-ordered indexes and stops at the page's
  // end whatever the values.
  enum class planning { each_time, once };
  // One statement in one round trip: BEGIN READ ONLY, `trail.tenant` set for
  // row-level security, the statement, ROLLBACK (libpq pipeline mode);
  // `keep` gets the rows.
  read_status run(pg_session& s, const std::string& tenant, const sql_statement& statement, planning p, PGresult** keep,
                  std::string* error);

  const reader_options opt_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pg_session>> idle_;
};

}  // namespace trail
