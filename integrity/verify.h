#pragma once
// Verifying a tenant's chain (docs/INTEGRITY.md, "Verifying"): rows in
// sequence order, each link recomputed from the row's canonical bytes and
// compared with what is stored, and with the signed checkpoints it must meet.
// The same code serves the online check (GET /v1/tenants/{t}/verify, rows
// from PostgreSQL) and the offline one (`traild verify`, rows from a ledger
// export or an archive), so both name a broken link in the same words.
//
// Also the ledger line: one stored row as a line of NDJSON that carries its
// canonical object and its two links (the `ledger` export format and the
// retention archives), from which a verifier recomputes the row's hash
// without PostgreSQL.
//
// Pure; one verifier per tenant and thread.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "decode/canonical.h"
#include "integrity/note.h"

namespace trail::integrity {

struct chain_break {
  int64_t sequence = 0;
  std::string reason;  // "sequence 1234: stored hash differs from recomputed", …
};

class chain_verifier {
 public:
  // Rows are expected from `from_sequence` on. `start`: the link the first
  // row must continue (its prev_hash); nullopt takes the first row's stored
  // prev_hash on trust, except at sequence 1, which continues the genesis link.
  explicit chain_verifier(int64_t from_sequence, std::optional<chain_hash> start = std::nullopt);

  // A link the chain must have at `sequence` (a signed checkpoint's root);
  // `what` names it in a reason ("checkpoint at sequence 2000").
  void expect(int64_t sequence, const chain_hash& root, std::string what);

  // An archived run (retention): sequences first..last are no longer stored
  // but were, chaining from `prev` to `last_hash` (a signed run note says so).
  // Where a row is missing, the chain crosses a run starting there.
  void archived(int64_t first, int64_t last, const chain_hash& prev, const chain_hash& last_hash);

  // The next stored row. False once the chain is broken (the first break is kept).
  bool add(int64_t sequence, const chain_hash& prev, const chain_hash& hash, std::string_view canonical_bytes);

  // No more rows: every sequence up to `to_sequence` must have been seen.
  bool finish(int64_t to_sequence);

  // Records a break found elsewhere (a checkpoint whose signature fails, …).
  // Of all breaks, the one at the lowest sequence is kept (the first broken
  // link); rows stop being checked only at a break among the rows.
  void fail(int64_t sequence, std::string reason);

  const std::optional<chain_break>& broken() const { return broken_; }
  int64_t checked() const { return checked_; }
  int64_t checkpoints_met() const { return met_; }
  int64_t archived_crossed() const { return crossed_; }
  int64_t next_sequence() const { return next_; }
  const chain_hash& head() const { return link_; }

 private:
  bool break_at(int64_t sequence, std::string reason);
  // Crosses the archived run starting at next_, if any; false when none.
  bool cross();
  struct run {
    int64_t last;
    chain_hash prev, last_hash;
  };
  std::map<int64_t, run> runs_;
  int64_t crossed_ = 0;

  bool stopped_ = false;  // a row broke the chain: the rows after it prove nothing
  int64_t next_;
  std::optional<chain_hash> start_;
  chain_hash link_{};
  bool started_ = false;
  int64_t checked_ = 0, met_ = 0;
  std::map<int64_t, std::pair<chain_hash, std::string>> expected_;
  std::optional<chain_break> broken_;
};

// A checkpoint as the database keeps it: its row's copies of the sequence and
// head hash, and the signed note, which is what counts.
struct stored_checkpoint {
  int64_t sequence = 0;
  chain_hash head_hash{};
  std::string note;
};

// A run of a tenant's sequences that retention archived, as its signed note
// says (integrity/note.h, sign_archived_run).
struct archived_run_note {
  std::string origin;  // "<key name>/<tenant>"
  int64_t first = 0, last = 0;
  chain_hash prev{}, last_hash{};
  std::string partition, file_sha256;
};
std::string sign_archived_run(const archived_run_note& r, const signing_key& key);
note_status open_archived_run(std::string_view note, const verifier_key& key, archived_run_note& out, std::string* error);

struct checkpoint_summary {
  int64_t stored = 0;   // stored checkpoints in the range whose signature verified
  int64_t broker = 0;   // broker copies in the range whose signature verified
  int64_t latest_sequence = 0, latest_time_us = 0;  // the newest verified checkpoint in the range
};

// Checks the checkpoints of `tenant` in [from, to] and makes the verifier
// meet each one: a stored note must verify with `key`, name the tenant's
// origin (`key`'s name, "/", tenant) and agree with its row; with
// `broker_notes` (the copies on the checkpoint stream), each copy must verify
// too, and a stored checkpoint and the broker's copy at the same sequence must
// name the same link. A broker copy without a stored row is met like a stored
// one (the checkpointer stores a row only after the broker has its copy, so
// a missing row may be a crash between the two, or a deletion).
void add_checkpoints(chain_verifier& v, const verifier_key& key, const std::string& tenant,
                     const std::vector<stored_checkpoint>& stored, const std::vector<std::string>* broker_notes,
                     int64_t from, int64_t to, checkpoint_summary& out);

// One ledger line (no newline): the row's canonical object with two more
// members, "hash" and "prev_hash", as 64 lower-case hex digits each.
void append_ledger_line(std::string_view canonical_bytes, const chain_hash& prev, const chain_hash& hash,
                        std::string& out);

struct ledger_row {
  std::string tenant;
  int64_t sequence = 0;
  chain_hash prev{}, hash{};
  std::string canonical;  // the row's canonical bytes, recomputed from the line
};
// False (with `error`) when the line is not a ledger line.
bool parse_ledger_line(std::string_view line, ledger_row& out, std::string* error);

}  // namespace trail::integrity
