#pragma once
// Retention (docs/COMPLIANCE.md, "Retention"): each daily partition of
// audit.events older than its retention is archived, verified, recorded and
// only then dropped. One pass, run by traild's retention thread every
// retention.interval_s and by `traild retention run`:
//   for each partition events_YYYYMMDD whose day ended retention.days ago
//   (or longer ago, when a tenant in it has a longer retention.tenant_days):
//     skip it when a legal hold covers one of its tenants (or all);
//     write its rows, by tenant and sequence, as zstd-compressed ledger lines
//       to retention.archive_dir (a new file, fsynced, renamed, directory
//       fsynced), each tenant's runs of sequences signed as notes;
//     write the signed manifest beside it (fsynced);
//     re-read the file and verify it against the manifest (every link, every
//       run, the file's SHA-256);
//     record archive and runs in PostgreSQL;
//     drop the partition (audit.drop_archived_partition, which checks the
//       record and the holds again under the owner's rights).
// A partition whose archive was recorded but not dropped (a crash between
// the two) is re-verified from its file and dropped at the next pass. The
// DEFAULT partition (days without a partition of their own) is never dropped.
//
// Runs on the calling thread with a connection of its own, as the
// trail_maintenance role.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "integrity/note.h"
#include "sinks/pg_session.h"

namespace trail {

struct retention_options {
  std::string pg_dsn;  // the trail_maintenance role
  pg_timeouts timeouts;
  std::string archive_dir;
  int64_t days = 0;                            // 0: keep forever
  std::map<std::string, int64_t> tenant_days;  // longer retention of some tenants
};

struct retention_report {
  int64_t archived = 0;  // partitions archived and dropped by this pass
  int64_t rows = 0;      // rows they held
  int64_t emptied = 0;   // partitions past retention that held no rows, dropped (no archive file)
  std::vector<std::string> held;  // partitions kept for a legal hold (with the tenant)
  std::vector<std::string> kept;  // partitions kept for a tenant's longer retention
  std::string error;              // the pass stopped here
  bool ok() const { return error.empty(); }
};

retention_report run_retention(const retention_options& opt, const integrity::signing_key& key, int64_t now_us);

// Legal holds (audit.legal_holds): `tenant` "*" holds every tenant.
bool place_legal_hold(const std::string& dsn, const std::string& tenant, const std::string& reason, std::string* error);
bool release_legal_hold(const std::string& dsn, const std::string& tenant, std::string* error);
// "tenant<TAB>reason<TAB>placed_by<TAB>placed_at" lines.
bool list_legal_holds(const std::string& dsn, std::vector<std::string>& out, std::string* error);

}  // namespace trail
