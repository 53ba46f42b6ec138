#include "store/migrate.h"

#include <libpq-fe.h>

#include <memory>

#include "common/log.h"
#include "decode/canonical.h"
#include "sinks/copy_encoding.h"
#include "sinks/event_reader.h"
#include "sinks/pg_session.h"

namespace trail {
namespace {

using conn_ptr = std::unique_ptr<PGconn, decltype(&PQfinish)>;

// Migrations may run long (a backfill): no statement timeout, but a bounded connect.
conn_ptr connect(const std::string& dsn, std::string* error) {
  conn_ptr c(connect_with_timeouts(dsn, pg_timeouts{10, 0}, "traild-migrate"), &PQfinish);
  if (PQstatus(c.get()) != CONNECTION_OK) {
    if (error) *error = PQerrorMessage(c.get());
    return conn_ptr(nullptr, &PQfinish);
  }
  return c;
}

bool run(PGconn* c, const std::string& sql, std::string* error) {
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok && error) *error = PQresultErrorMessage(r);
  PQclear(r);
  return ok;
}

int current_version(PGconn* c) {
  PGresult* r = PQexec(c,
                       "SELECT CASE WHEN to_regclass('audit.schema_migrations') IS NULL THEN 0 "
                       "ELSE (SELECT coalesce(max(version), 0) FROM audit.schema_migrations) END");
  int v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) v = std::stoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

bool copy_rows(PGconn* c, const char* copy, const std::string& rows, std::string* error) {
  PGresult* r = PQexec(c, copy);
  const bool started = PQresultStatus(r) == PGRES_COPY_IN;
  if (!started && error) *error = PQresultErrorMessage(r);
  PQclear(r);
  if (!started) return false;
  if (PQputCopyData(c, rows.data(), static_cast<int>(rows.size())) != 1 || PQputCopyEnd(c, nullptr) != 1) {
    if (error) *error = PQerrorMessage(c);
    return false;
  }
  bool ok = true;
  while ((r = PQgetResult(c)) != nullptr) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      ok = false;
      if (error) *error = PQresultErrorMessage(r);
    }
    PQclear(r);
  }
  return ok;
}

// Schema 6: the chain links of the events stored before it, computed exactly
// as the writers compute them (tenant by tenant, in sequence order, from the
// genesis link), in the migration's transaction. A tenant whose sequences
// are not 1..N, or whose head is not its last event, fails the migration:
// a chain over a damaged ledger would certify the damage.
bool backfill_chain(PGconn* c, std::string* error) {
  const std::string cursor = std::string("DECLARE trail_backfill NO SCROLL CURSOR FOR SELECT ") + kStoredEventColumns +
                             " FROM audit.events e ORDER BY e.tenant_id, e.sequence";
  if (!run(c, "ALTER TABLE audit.events DISABLE TRIGGER events_append_only", error) ||
      !run(c, "CREATE TEMP TABLE trail_links (tenant_id text, sequence bigint, occurred_at timestamptz, "
              "prev_hash bytea, hash bytea) ON COMMIT DROP", error) ||
      !run(c, cursor, error))
    return false;
  std::string tenant, rows, scratch;
  int64_t expected = 1, total = 0;
  chain_hash prev = kChainGenesis;
  stored_event ev;
  while (true) {
    PGresult* res = PQexec(c, "FETCH 5000 FROM trail_backfill");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      if (error) *error = PQresultErrorMessage(res);
      PQclear(res);
      return false;
    }
    const int n = PQntuples(res);
    rows.clear();
    for (int i = 0; i < n; ++i) {
      if (!read_stored_event(res, i, ev, error)) {
        PQclear(res);
        return false;
      }
      const std::string_view t = ev.event.get(event_field::tenant_id);
      if (t != tenant) {
        tenant.assign(t);
        prev = kChainGenesis;
        expected = 1;
      }
      if (ev.sequence != expected) {
        if (error)
          *error = "tenant " + tenant + ": sequence " + std::to_string(expected) + " is missing (the next stored is " +
                   std::to_string(ev.sequence) + "); the chain cannot be built over a damaged ledger";
        PQclear(res);
        return false;
      }
      chain_hash link;
      if (!chain_event(prev, ev.event, ev.sequence, ev.recorded_at_us, scratch, link)) {
        if (error) *error = "tenant " + tenant + ", sequence " + std::to_string(ev.sequence) + ": a JSON column is not JSON";
        PQclear(res);
        return false;
      }
      copy_text::row_builder row(rows);
      row.text(tenant);
      row.integer(ev.sequence);
      row.text(ev.event.get(event_field::occurred_at));
      row.bytea(prev.data(), prev.size());
      row.bytea(link.data(), link.size());
      row.end_row();
      prev = link;
      ++expected;
    }
    PQclear(res);
    if (n == 0) break;
    total += n;
    if (!copy_rows(c, "COPY trail_links FROM STDIN", rows, error)) return false;
  }
  if (!run(c, "CLOSE trail_backfill", error)) return false;
  // The heads must end where the events do.
  PGresult* res = PQexec(c,
                         "SELECT h.tenant_id, h.last_sequence, coalesce(max(l.sequence), 0) FROM audit.tenant_heads h "
                         "LEFT JOIN trail_links l USING (tenant_id) GROUP BY h.tenant_id, h.last_sequence "
                         "HAVING h.last_sequence <> coalesce(max(l.sequence), 0) LIMIT 1");
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) > 0) {
    if (error)
      *error = PQresultStatus(res) != PGRES_TUPLES_OK
                   ? std::string(PQresultErrorMessage(res))
                   : std::string("tenant ") + PQgetvalue(res, 0, 0) + ": audit.tenant_heads says sequence " +
                         PQgetvalue(res, 0, 1) + " but the last stored event is " + PQgetvalue(res, 0, 2) +
                         "; repair the head (docs/RELIABILITY.md, \"Recovery\") before migrating";
    PQclear(res);
    return false;
  }
  PQclear(res);
  if (!run(c, "UPDATE audit.events e SET prev_hash = l.prev_hash, hash = l.hash FROM trail_links l "
              "WHERE e.tenant_id = l.tenant_id AND e.occurred_at = l.occurred_at AND e.sequence = l.sequence", error) ||
      !run(c, "UPDATE audit.tenant_heads h SET head_hash = l.hash FROM trail_links l "
              "WHERE h.tenant_id = l.tenant_id AND h.last_sequence = l.sequence", error) ||
      !run(c, "ALTER TABLE audit.events ENABLE TRIGGER events_append_only", error) ||
      !run(c, "ALTER TABLE audit.events ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL", error))
    return false;
  if (total > 0) log::info("migrate", "chain links computed for the events stored before schema 6", {{"events", total}});
  return true;
}

}  // namespace

migrate_result apply_migrations(const std::string& dsn, int up_to) {
  migrate_result out;
  auto c = connect(dsn, &out.error);
  if (!c) return out;
  if (!run(c.get(), "SET client_min_messages = warning", &out.error) ||
      !run(c.get(), "SELECT pg_advisory_lock(hashtext('trail.migrate'))", &out.error) ||
      !run(c.get(),
           "CREATE SCHEMA IF NOT EXISTS audit; "
           "CREATE TABLE IF NOT EXISTS audit.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
           "applied_at timestamptz NOT NULL DEFAULT now())",
           &out.error))
    return out;
  int version = current_version(c.get());
  for (const auto& m : embedded_migrations()) {
    if (m.version <= version || m.version > up_to) continue;
    std::string err;
    const std::string record = "INSERT INTO audit.schema_migrations (version, name) VALUES (" +
                               std::to_string(m.version) + ", '" + m.name + "')";
    if (!run(c.get(), "BEGIN", &err) || !run(c.get(), m.sql, &err) ||
        (m.version == 6 && !backfill_chain(c.get(), &err)) || !run(c.get(), record, &err) ||
        !run(c.get(), "COMMIT", &err)) {
      run(c.get(), "ROLLBACK", nullptr);
      out.error = std::string("migration ") + m.name + " failed: " + err;
      return out;
    }
    log::info("migrate", "applied migration", {{"version", m.version}, {"name", m.name}});
    ++out.applied;
    version = m.version;
  }
  run(c.get(), "SELECT pg_advisory_unlock(hashtext('trail.migrate'))", nullptr);
  out.version = version;
  out.ok = true;
  return out;
}

// traild's own calls while running: bounded in every step (pg_session).
int schema_version(const std::string& dsn, std::string* error) {
  pg_session s(dsn, pg_timeouts{10, 30}, "traild");
  if (!s.connect(error)) return -1;
  PGresult* res = nullptr;
  db_result r = s.exec(
      "SELECT CASE WHEN to_regclass('audit.schema_migrations') IS NULL THEN 0 "
      "ELSE (SELECT coalesce(max(version), 0) FROM audit.schema_migrations) END",
      0, nullptr, &res);
  if (!r.ok()) {
    if (error) *error = r.message;
    return -1;
  }
  const int v = std::stoi(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

std::optional<std::string> installation_key(const std::string& dsn, std::string* error) {
  pg_session s(dsn, pg_timeouts{10, 30}, "traild");
  if (!s.connect(error)) return std::nullopt;
  PGresult* res = nullptr;
  db_result r = s.exec("SELECT dead_letter_key FROM audit.installation", 0, nullptr, &res);
  if (!r.ok() || PQntuples(res) != 1) {
    if (error) *error = r.ok() ? "audit.installation has no row" : r.message;
    if (res) PQclear(res);
    return std::nullopt;
  }
  std::string key = PQgetvalue(res, 0, 0);
  PQclear(res);
  return key;
}

std::optional<std::string> ingest_role_problem(const std::string& dsn) {
  pg_session s(dsn, pg_timeouts{10, 30}, "traild");
  std::string error;
  if (!s.connect(&error)) return "cannot connect: " + error;
  PGresult* res = nullptr;
  // COPY FROM refuses a table whose row-level security applies to the role.
  db_result r = s.exec(
      "SELECT current_user, row_security_active('audit.events'::regclass) OR row_security_active('audit.event_ids'::regclass)",
      0, nullptr, &res);
  if (!r.ok() || PQntuples(res) != 1) {
    if (res) PQclear(res);
    return "cannot check the role: " + r.message;
  }
  const std::string role = PQgetvalue(res, 0, 0);
  const bool limited = std::string(PQgetvalue(res, 0, 1)) == "t";
  PQclear(res);
  if (!limited) return std::nullopt;
  return "row-level security applies to the role '" + role +
         "', so COPY into audit.events is refused; give it BYPASSRLS (as a superuser: ALTER ROLE " + role +
         " BYPASSRLS) or connect pg.dsn as trail_ingest";
}

bool ensure_partitions(const std::string& dsn, int behind_days, int ahead_days, std::string* error) {
  pg_session s(dsn, pg_timeouts{10, 60}, "traild-partitions");
  if (!s.connect(error)) return false;
  const std::string sql = "SELECT audit.ensure_partitions((now() AT TIME ZONE 'UTC')::date - " +
                          std::to_string(behind_days) + ", (now() AT TIME ZONE 'UTC')::date + " +
                          std::to_string(ahead_days) + ")";
  db_result r = s.exec(sql.c_str());
  if (!r.ok() && error) *error = r.message;
  return r.ok();
}

}  // namespace trail
