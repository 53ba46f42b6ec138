#include "store/migrate.h"

#include <libpq-fe.h>

#include <memory>

#include "common/log.h"
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

}  // namespace

migrate_result apply_migrations(const std::string& dsn) {
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
    if (m.version <= version) continue;
    std::string err;
    const std::string record = "INSERT INTO audit.schema_migrations (version, name) VALUES (" +
                               std::to_string(m.version) + ", '" + m.name + "')";
    if (!run(c.get(), "BEGIN", &err) || !run(c.get(), m.sql, &err) || !run(c.get(), record, &err) ||
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
