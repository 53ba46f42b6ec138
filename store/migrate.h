#pragma once
// Versioned SQL migrations (store/migrations/NNNN_name.sql), compiled into the
// binary. `traild migrate` applies the missing ones in order, each in its own
// transaction, under an advisory lock; applying twice changes nothing.

#include <optional>
#include <string>
#include <vector>

namespace trail {

struct migration {
  int version;
  const char* name;
  const char* sql;
};

const std::vector<migration>& embedded_migrations();

struct migrate_result {
  bool ok = false;
  int applied = 0;
  int version = 0;  // schema version afterwards
  std::string error;
};

// `up_to`: stop after this version (tests of a migration over older data).
migrate_result apply_migrations(const std::string& dsn, int up_to = 1 << 30);
// The schema version a database is at (0: not migrated), or -1 if unreachable.
int schema_version(const std::string& dsn, std::string* error = nullptr);
// Creates the daily partitions from today - behind to today + ahead.
// The installation's secret (audit.installation), or nullopt if unreadable.
std::optional<std::string> installation_key(const std::string& dsn, std::string* error = nullptr);
// Why the role of `dsn` cannot write the ledger (row-level security applies
// to it, so COPY would be refused), or nullopt when it can.
std::optional<std::string> ingest_role_problem(const std::string& dsn);
bool ensure_partitions(const std::string& dsn, int behind_days, int ahead_days, std::string* error = nullptr);

}  // namespace trail
