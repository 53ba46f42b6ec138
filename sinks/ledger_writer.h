#pragma once
// What a writer does with one batch, apart from the database itself.
//
// A ledger transaction is a plan over a small session seam:
//   begin → create heads for new tenants → lock the heads (tenant order) →
//   [dedupe: look the identities up] → assign sequences → COPY identities and
//   rows → advance the heads → commit.
// The decisions — repeats inside the batch, which events are new, which
// sequences they get, what a stored duplicate reports, what is republished —
// are pure functions here (write_plan), and the retry policy around a
// transaction (dedupe on a unique violation, bisecting refused data down to
// the refused events, waiting out an unavailable database, refusing digest
// collisions) is ledger_writer. Both run in unit tests against an in-memory
// ledger_session; sinks/postgres_writer.cc implements the seam with libpq.
//
// Owned by one writer thread.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/record.h"
#include "decode/canonical.h"
#include "sinks/db_result.h"
#include "sinks/sink.h"

namespace trail {

// An identity to look up: the record's index in its batch and its key.
struct identity_key {
  size_t index;
  std::string_view tenant, source, id;
};
// What the ledger holds under a key's digest.
struct stored_identity {
  size_t index;
  int64_t sequence;
  int64_t recorded_at_us;  // 0 when unknown
  bool same_event;         // source and id match (false: another event holds the digest)
};

// A tenant's head: its last sequence and the link of its chain that ends there
// (kChainGenesis before its first event).
struct tenant_head {
  int64_t sequence = 0;
  chain_hash hash = kChainGenesis;
};
using tenant_heads = std::unordered_map<std::string, tenant_head>;

// The sequences a transaction assigned, per tenant (contiguous by
// construction): one audit.outbox row.
struct outbox_ranges {
  std::vector<std::string> tenants;
  std::vector<int64_t> first, last;
  bool empty() const { return tenants.empty(); }
};

// The database steps of one transaction. Every call may fail; the writer then
// rolls back (rollback()) and decides by the result's kind.
class ledger_session {
 public:
  virtual ~ledger_session() = default;
  virtual db_result begin() = 0;
  // Creates the head row of each tenant that has no stored event (a tenant
  // whose head was lost must not start again at 1).
  virtual db_result create_heads(const std::vector<std::string>& tenants) = 0;
  // Locks the heads of `tenants` (sorted) and reads them, with the
  // transaction's time. A tenant without a head row is absent from `heads`.
  virtual db_result lock_heads(const std::vector<std::string>& tenants, tenant_heads& heads, int64_t& now_us) = 0;
  virtual db_result find_stored(const std::vector<identity_key>& keys, std::vector<stored_identity>& found) = 0;
  // The COPY of the identities (first: a repeat fails there) and of the rows.
  virtual db_result insert(std::string_view ids_copy, std::string_view events_copy) = 0;
  virtual db_result advance_heads(const tenant_heads& heads) = 0;
  // Adds the transaction's audit.outbox row; `id` receives its key.
  virtual db_result record_outbox(const outbox_ranges& ranges, int64_t& id) = 0;
  virtual db_result commit() = 0;
  virtual void rollback() = 0;
  // False when the connection is gone (the outcome of an interrupted COMMIT is then unknown).
  virtual bool connected() const = 0;
};

// The pure steps of a transaction.
struct write_plan {
  std::vector<std::string> tenants;  // sorted, distinct
  std::vector<int> same_as;          // an earlier record of this batch with the same identity, or -1
  std::vector<int64_t> stored_seq;   // > 0: already in the ledger under this sequence
  std::vector<int64_t> stored_at;    // its recorded_at (0: unknown)
  std::vector<bool> collided;        // another event holds this identity's digest
  std::vector<int64_t> seq;          // the sequence assigned now (0: not inserted)
  std::vector<chain_hash> prev_hash, hash;  // the chain links of the records inserted now
  size_t rows = 0;                   // records inserted now

  // Tenants, repeats inside the batch; nothing stored known yet.
  static write_plan start(const std::vector<audit_record>& records);
  // The keys to look up: one per identity (repeats share their first's).
  std::vector<identity_key> lookup_keys(const std::vector<audit_record>& records) const;
  void apply_stored(const std::vector<stored_identity>& found);
  // Sequences and chain links for the records to insert, in batch order (so
  // in sequence order within a tenant), advancing `heads`; `now_us` is the
  // transaction's time, the rows' recorded_at. Returns the index of a record
  // whose canonical bytes cannot be computed (nothing assigned then), or -1.
  // With `events_copy` and `ids_copy`, also renders the COPY rows of what it
  // inserts as it goes (the `extra` column from the text hashing wrote).
  long assign(const std::vector<audit_record>& records, tenant_heads& heads, int64_t now_us,
              std::string* events_copy = nullptr, std::string* ids_copy = nullptr);
  bool inserts(size_t i) const { return seq[i] > 0; }
  outbox_ranges ranges(const std::vector<audit_record>& records) const;
  // After COMMIT: each record's sequence, recorded time, duplicate flag and
  // whether it is republished. `uncertain`: an earlier attempt of this very
  // write may have committed.
  // `outbox_id` goes to the records inserted now.
  void settle(std::vector<audit_record>& records, int64_t now_us, bool uncertain, int64_t outbox_id = 0) const;
};

// The ledger's own invariant failed (a head row missing for a tenant with
// events, or a sequence already taken): never written around, waited out
// loudly until an operator repairs it (docs/RELIABILITY.md, "Recovery").
inline constexpr const char* kLedgerInvariant = "ledger_invariant";

class ledger_writer {
 public:
  struct hooks {
    std::function<bool()> ensure_connected;  // false: not connected now (it waited)
    std::function<void(const std::string& why, const std::string& error_class)> backoff;
    std::function<bool()> abandoned;         // shutdown deadline passed: give up, leave un-acked
    std::function<void(bool)> blocked;       // a ledger invariant failed (true) or holds again (false)
  };
  // `outbox`: record each transaction in audit.outbox (the committed stream is on).
  ledger_writer(ledger_session& session, commit_observer& observer, hooks h, size_t known_tenants_max,
                bool outbox = false);

  // Writes the batch: commits what can be stored, reports duplicates, refuses
  // (observer.refused) what PostgreSQL refuses on its own and identity
  // collisions, waits out everything else. Returns when every record was
  // reported, or when abandoned.
  void write(std::vector<audit_record>&& records, bool dedupe);

  size_t known_tenants() const { return known_tenants_.size(); }
  // Bytes of the last transaction's rows (for the batch-size histogram).
  size_t last_copy_bytes() const { return events_buf_.size(); }

 private:
  db_result try_write(std::vector<audit_record>& records, bool dedupe, bool uncertain);
  void remember_tenants(const std::vector<std::string>& fresh);

  ledger_session& session_;
  commit_observer& observer_;
  hooks hooks_;
  const size_t known_tenants_max_;
  const bool outbox_;
  // Tenants whose head row is known to exist: a cache, cleared at
  // pg.known_tenants_max (a miss only costs an INSERT … ON CONFLICT).
  std::unordered_set<std::string> known_tenants_;
  write_plan plan_;  // of the last try
  std::string events_buf_, ids_buf_;
  int depth_ = 0;
};

}  // namespace trail
