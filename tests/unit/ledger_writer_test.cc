// The writer's decisions (sinks/ledger_writer.h) against an in-memory ledger:
// sequencing, repeats, dedupe, bisecting, a COMMIT of unknown outcome, a lost
// tenant head and identity collisions. The in-memory ledger keeps the same
// constraints as the real tables (identity unique per tenant, sequence unique
// per tenant) and reads back exactly the COPY text the writer renders; the
// integration and fault tests run the same code against PostgreSQL.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <tuple>

#include "common/record.h"
#include "sinks/copy_encoding.h"
#include "sinks/ledger_writer.h"

using namespace trail;

namespace {

std::vector<std::vector<std::string>> rows_of(std::string_view copy) {
  std::vector<std::vector<std::string>> rows;
  size_t start = 0;
  while (start < copy.size()) {
    const size_t end = copy.find('\n', start);
    std::string_view line = copy.substr(start, end - start);
    std::vector<std::string> cols;
    size_t c = 0;
    while (true) {
      const size_t tab = line.find('\t', c);
      cols.push_back(copy_text::decode_field(line.substr(c, tab == std::string_view::npos ? line.size() - c : tab - c)));
      if (tab == std::string_view::npos) break;
      c = tab + 1;
    }
    rows.push_back(std::move(cols));
    start = end + 1;
  }
  return rows;
}

// The ledger's tables, in memory, with their constraints.
struct memory_ledger final : ledger_session {
  struct table {
    std::map<std::string, tenant_head> heads;
    std::map<std::tuple<std::string, std::string, std::string>, std::pair<int64_t, int64_t>> ids;  // -> seq, recorded
    std::set<std::pair<std::string, int64_t>> sequences;
    std::vector<std::vector<std::string>> events;
    std::vector<std::pair<int64_t, outbox_ranges>> outbox;
    int64_t outbox_ids = 0;
  } committed, txn;
  int64_t clock_us = 1000;
  int64_t now = 0;
  bool in_txn = false, up = true;
  bool lose_connection_after_next_commit = false;  // the COMMIT lands, its answer does not
  std::set<std::tuple<std::string, std::string, std::string>> digest_taken;  // held by another event
  int commits = 0;

  db_result begin() override {
    txn = committed;
    in_txn = true;
    now = ++clock_us;
    return {};
  }
  db_result create_heads(const std::vector<std::string>& tenants) override {
    for (const auto& t : tenants) {
      bool has_events = false;
      for (const auto& [k, v] : txn.ids) has_events = has_events || std::get<0>(k) == t;
      if (!has_events) txn.heads.emplace(t, tenant_head{});
    }
    return {};
  }
  db_result lock_heads(const std::vector<std::string>& tenants, tenant_heads& heads, int64_t& now_us) override {
    for (const auto& t : tenants)
      if (auto it = txn.heads.find(t); it != txn.heads.end()) heads[t] = it->second;
    now_us = now;
    return {};
  }
  db_result find_stored(const std::vector<identity_key>& keys, std::vector<stored_identity>& found) override {
    for (const auto& k : keys) {
      const auto key = std::make_tuple(std::string(k.tenant), std::string(k.source), std::string(k.id));
      if (digest_taken.count(key)) found.push_back({k.index, 99, 0, false});
      else if (auto it = txn.ids.find(key); it != txn.ids.end())
        found.push_back({k.index, it->second.first, it->second.second, true});
    }
    return {};
  }
  db_result insert(std::string_view ids_copy, std::string_view events_copy) override {
    for (const auto& r : rows_of(ids_copy)) {  // tenant, digest, source, id, sequence, occurred
      const auto key = std::make_tuple(r[0], r[2], r[3]);
      const int64_t seq = std::stoll(r[4]);
      if (txn.ids.count(key)) return {result_kind::duplicate_key, "23505", "event_ids_pkey", "identity stored"};
      if (!txn.sequences.insert({r[0], seq}).second)
        return {result_kind::duplicate_key, "23505", "event_ids_sequence", "sequence stored"};
      txn.ids[key] = {seq, now};
    }
    for (auto& r : rows_of(events_copy)) {
      if (r[8] == "poison") return {result_kind::bad_data, "22P02", "", "invalid input"};
      txn.events.push_back(std::move(r));
    }
    return {};
  }
  db_result advance_heads(const tenant_heads& heads) override {
    for (const auto& [t, h] : heads)
      if (txn.heads.count(t) && txn.heads[t].sequence < h.sequence) txn.heads[t] = h;
    return {};
  }
  db_result record_outbox(const outbox_ranges& ranges, int64_t& id) override {
    txn.outbox.emplace_back(++txn.outbox_ids, ranges);
    id = txn.outbox_ids;
    return {};
  }
  db_result commit() override {
    committed = txn;
    in_txn = false;
    ++commits;
    if (lose_connection_after_next_commit) {
      lose_connection_after_next_commit = false;
      up = false;
      return {result_kind::unavailable, "", "", "connection lost during COMMIT"};
    }
    return {};
  }
  void rollback() override { in_txn = false; }
  bool connected() const override { return up; }
};

struct observer final : commit_observer {
  std::vector<audit_record> stored;
  std::vector<std::pair<audit_record, dlq_reason>> refused_records;
  void committed(std::vector<audit_record>&& rs) override {
    for (auto& r : rs) stored.push_back(std::move(r));
  }
  void refused(audit_record&& r, dlq_reason code, std::string) override { refused_records.emplace_back(std::move(r), code); }
};

struct fixture {
  memory_ledger db;
  observer obs;
  std::vector<std::unique_ptr<inbound_message>> messages;
  int backoffs = 0;
  std::vector<bool> blocked_calls;
  std::function<void()> on_backoff = [] {};
  ledger_writer writer{db, obs,
                       ledger_writer::hooks{[this] { return db.up = true; },
                                            [this](const std::string&, const std::string&) {
                                              ++backoffs;
                                              on_backoff();
                                            },
                                            [] { return false; }, [this](bool b) { blocked_calls.push_back(b); }},
                       1000, /*outbox=*/true};

  audit_record record(const std::string& tenant, const std::string& id, const std::string& action = "doc.read",
                      uint64_t delivered = 1) {
    messages.push_back(std::make_unique<inbound_message>());
    messages.back()->delivered = delivered;
    audit_record r;
    r.origin = message_ref::unmanaged(messages.back().get());
    using F = event_field;
    r.event.set(F::tenant_id, tenant);
    r.event.set(F::ce_source, "//svc");
    r.event.set(F::ce_id, id);
    r.event.set(F::ce_type, "t");
    r.event.set(F::occurred_at, "2026-11-24T00:00:00.000000Z");
    r.event.set(F::action, action);
    r.event.set(F::category, "CATEGORY_X");
    r.event.set(F::severity, "SEVERITY_INFO");
    r.event.set(F::actor_type, "ACTOR_TYPE_USER");
    r.event.set(F::actor_id, "u");
    r.event.set(F::resource_type, "doc");
    r.event.set(F::resource_id, "d");
    r.event.set(F::source_service, "svc");
    return r;
  }
  void write(std::vector<audit_record> batch) { writer.write(std::move(batch), false); }
  void write_one(const std::string& tenant, const std::string& id) {
    std::vector<audit_record> b;
    b.push_back(record(tenant, id));
    write(std::move(b));
  }
  // The committed rows of `tenant` form its chain: sequences 1..N, each row's
  // prev_hash the previous row's hash (zeros first), each hash recomputed
  // from the event as reported stored (its sequence and recorded time), and
  // the head holding the last link. Returns N.
  size_t check_chain(const std::string& tenant) {
    constexpr size_t kPrev = 30, kHash = 31;
    std::map<int64_t, const std::vector<std::string>*> rows;
    for (const auto& r : db.committed.events)
      if (r[1] == tenant) REQUIRE(rows.emplace(std::stoll(r[0]), &r).second);
    std::string link = "\\x" + to_hex(kChainGenesis), scratch;
    int64_t expected = 1;
    for (const auto& [seq, row] : rows) {
      REQUIRE(seq == expected++);
      REQUIRE(row->size() == kHash + 1);
      CHECK((*row)[kPrev] == link);
      const audit_record* event = nullptr;
      for (const auto& r : obs.stored)
        if (r.tenant_id() == tenant && r.sequence == seq) event = &r;
      REQUIRE(event != nullptr);
      chain_hash prev = *chain_hash_from_hex(link.substr(2)), recomputed;
      REQUIRE(chain_event(prev, event->event, seq, event->recorded_at_us, scratch, recomputed));
      CHECK((*row)[kHash] == "\\x" + to_hex(recomputed));
      link = (*row)[kHash];
    }
    CHECK(db.committed.heads[tenant].sequence == static_cast<int64_t>(rows.size()));
    CHECK("\\x" + to_hex(db.committed.heads[tenant].hash) == link);
    return rows.size();
  }
  const audit_record& stored(const std::string& tenant, const std::string& id, size_t nth = 0) {
    for (const auto& r : obs.stored)
      if (r.tenant_id() == tenant && r.ce_id() == id && nth-- == 0) return r;
    FAIL("not reported: " << tenant << "/" << id);
    throw;
  }
};

}  // namespace

TEST_CASE("ledger writer: new events get gap-free per-tenant sequences in batch order", "[ledger]") {
  fixture f;
  std::vector<audit_record> b;
  for (const char* id : {"a1", "a2", "a3"}) b.push_back(f.record("a", id));
  for (const char* id : {"b1", "b2"}) b.push_back(f.record("b", id));
  f.write(std::move(b));
  f.write_one("a", "a4");
  CHECK(f.stored("a", "a1").sequence == 1);
  CHECK(f.stored("a", "a3").sequence == 3);
  CHECK(f.stored("b", "b2").sequence == 2);
  CHECK(f.stored("a", "a4").sequence == 4);
  CHECK(f.db.committed.heads["a"].sequence == 4);
  CHECK(f.db.committed.heads["b"].sequence == 2);
  CHECK(f.db.committed.events.size() == 6);
  // Two transactions, two tenants: each tenant's chain runs on across them.
  CHECK(f.check_chain("a") == 4);
  CHECK(f.check_chain("b") == 2);
  for (const auto& r : f.obs.stored) {
    CHECK_FALSE(r.duplicate);
    CHECK(r.republish);
    CHECK(r.recorded_at_us > 0);
  }
}

TEST_CASE("ledger writer: a repeat inside one batch is stored once and reported with its first's sequence", "[ledger]") {
  fixture f;
  std::vector<audit_record> b;
  b.push_back(f.record("a", "x"));
  b.push_back(f.record("a", "y"));
  b.push_back(f.record("a", "x"));
  f.write(std::move(b));
  CHECK(f.db.committed.events.size() == 2);
  const auto& again = f.stored("a", "x", 1);
  CHECK(again.duplicate);
  CHECK(again.sequence == f.stored("a", "x").sequence);
  CHECK_FALSE(again.republish);
  CHECK(f.stored("a", "y").sequence == 2);  // no gap where the repeat was
  CHECK(f.check_chain("a") == 2);
}

TEST_CASE("ledger writer: a stored event sent again is a duplicate - republished only when redelivered", "[ledger]") {
  fixture f;
  f.write_one("a", "x");
  const int64_t first_recorded = f.stored("a", "x").recorded_at_us;
  SECTION("a publisher's re-send (first delivery): found by the unique violation, not republished") {
    std::vector<audit_record> b;
    b.push_back(f.record("a", "x"));
    b.push_back(f.record("a", "new"));
    f.write(std::move(b));
    const auto& again = f.stored("a", "x", 1);
    CHECK(again.duplicate);
    CHECK(again.sequence == 1);
    CHECK(again.recorded_at_us == first_recorded);
    CHECK_FALSE(again.republish);
    CHECK(f.stored("a", "new").sequence == 2);
  }
  SECTION("a JetStream redelivery: straight to the dedupe path, republished (its first republish may be lost)") {
    std::vector<audit_record> b;
    b.push_back(f.record("a", "x", "doc.read", 2));
    f.write(std::move(b));
    const auto& again = f.stored("a", "x", 1);
    CHECK(again.duplicate);
    CHECK(again.republish);
  }
  CHECK(f.db.committed.events.size() <= 2);
  CHECK(f.db.committed.ids.size() == f.db.committed.events.size());
  // The duplicate was not hashed again: the chain holds what was stored.
  CHECK(f.check_chain("a") == f.db.committed.events.size());
}

TEST_CASE("ledger writer: refused data is bisected down to the refused events - the rest commits gap-free", "[ledger]") {
  fixture f;
  std::vector<audit_record> b;
  for (int i = 0; i < 8; ++i) b.push_back(f.record("a", "e" + std::to_string(i), i == 2 || i == 5 ? "poison" : "doc.read"));
  f.write(std::move(b));
  REQUIRE(f.obs.refused_records.size() == 2);
  CHECK(f.obs.refused_records[0].first.ce_id() == "e2");
  CHECK(f.obs.refused_records[1].first.ce_id() == "e5");
  CHECK(f.obs.refused_records[0].second == dlq_reason::database_rejected);
  REQUIRE(f.obs.stored.size() == 6);
  std::set<int64_t> seqs;
  for (const auto& r : f.obs.stored) seqs.insert(r.sequence);
  CHECK(seqs == std::set<int64_t>{1, 2, 3, 4, 5, 6});
  // The refused attempts left the head where it was: no fork, no gap.
  CHECK(f.check_chain("a") == 6);
}

TEST_CASE("ledger writer: an event whose canonical bytes cannot be computed is refused alone, never stored unhashed",
          "[ledger]") {
  fixture f;
  std::vector<audit_record> b;
  for (int i = 0; i < 4; ++i) b.push_back(f.record("a", "e" + std::to_string(i)));
  b[1].event.set(event_field::metadata, "{\"unterminated\": ");  // the decoder never lets this through
  f.write(std::move(b));
  REQUIRE(f.obs.refused_records.size() == 1);
  CHECK(f.obs.refused_records[0].first.ce_id() == "e1");
  CHECK(f.obs.refused_records[0].second == dlq_reason::database_rejected);
  CHECK(f.check_chain("a") == 3);
}

TEST_CASE("ledger writer: a COMMIT whose answer is lost is retried on the dedupe path, stored once, republished", "[ledger]") {
  fixture f;
  f.db.lose_connection_after_next_commit = true;
  std::vector<audit_record> b;
  b.push_back(f.record("a", "x"));
  b.push_back(f.record("a", "y"));
  f.write(std::move(b));
  CHECK(f.backoffs == 1);
  CHECK(f.db.commits == 2);
  CHECK(f.db.committed.events.size() == 2);  // exactly once in the table
  REQUIRE(f.obs.stored.size() == 2);
  for (const auto& r : f.obs.stored) {
    CHECK(r.duplicate);  // found stored by the retry
    CHECK(r.republish);  // whose first attempt may not have republished
  }
  CHECK(f.stored("a", "y").sequence == 2);
  CHECK(f.check_chain("a") == 2);  // the retry did not chain the events a second time
}

TEST_CASE("ledger writer: a tenant whose head row is lost is never restarted at 1 - writing resumes after repair", "[ledger]") {
  fixture f;
  f.write_one("a", "x");
  f.db.committed.heads.erase("a");  // a restore without the heads table, say
  f.blocked_calls.clear();
  ledger_writer fresh_cache{f.db, f.obs,
                            ledger_writer::hooks{[&] { return true; },
                                                 [&](const std::string&, const std::string& cls) {
                                                   CHECK(cls == kLedgerInvariant);
                                                   if (++f.backoffs == 3) {  // repaired: the head of its last event
                                                     tenant_head h;
                                                     h.sequence = 1;
                                                     h.hash = *chain_hash_from_hex(f.db.committed.events[0][31].substr(2));
                                                     f.db.committed.heads["a"] = h;
                                                   }
                                                 },
                                                 [] { return false; }, [&](bool b) { f.blocked_calls.push_back(b); }},
                            1000};
  std::vector<audit_record> b;
  b.push_back(f.record("a", "y"));
  fresh_cache.write(std::move(b), false);
  CHECK(f.backoffs == 3);
  REQUIRE_FALSE(f.blocked_calls.empty());
  CHECK(f.blocked_calls.front() == true);
  CHECK(f.blocked_calls.back() == false);
  CHECK(f.stored("a", "y").sequence == 2);
  CHECK(f.db.committed.events.size() == 2);
  CHECK(f.check_chain("a") == 2);
}

TEST_CASE("ledger writer: an identity whose digest another event holds is refused, never taken for a duplicate", "[ledger]") {
  fixture f;
  f.db.digest_taken.insert({"a", "//svc", "clash"});
  std::vector<audit_record> b;
  b.push_back(f.record("a", "ok", "doc.read", 2));  // a redelivery: the dedupe path looks identities up
  b.push_back(f.record("a", "clash", "doc.read", 2));
  f.write(std::move(b));
  REQUIRE(f.obs.refused_records.size() == 1);
  CHECK(f.obs.refused_records[0].first.ce_id() == "clash");
  REQUIRE(f.obs.stored.size() == 1);
  CHECK(f.stored("a", "ok").sequence == 1);
  CHECK(f.db.committed.events.size() == 1);
  CHECK(f.check_chain("a") == 1);
}

TEST_CASE("ledger writer: each transaction names the sequences it assigned in one outbox row, duplicates excluded", "[ledger]") {
  fixture f;
  f.write_one("a", "x");
  std::vector<audit_record> b;
  b.push_back(f.record("b", "1"));
  b.push_back(f.record("a", "y"));
  b.push_back(f.record("a", "x", "doc.read", 2));  // a redelivery: stored already
  b.push_back(f.record("a", "z"));
  b.push_back(f.record("b", "2"));
  f.write(std::move(b));
  REQUIRE(f.db.committed.outbox.size() == 2);
  const auto& [id, row] = f.db.committed.outbox[1];
  REQUIRE(row.tenants.size() == 2);
  for (size_t i = 0; i < row.tenants.size(); ++i) {
    if (row.tenants[i] == "a") {
      CHECK(row.first[i] == 2);
      CHECK(row.last[i] == 3);
    } else {
      CHECK(row.tenants[i] == "b");
      CHECK(row.first[i] == 1);
      CHECK(row.last[i] == 2);
    }
  }
  CHECK(f.stored("a", "z").outbox_id == id);
  CHECK(f.stored("a", "x", 1).outbox_id == 0);  // the duplicate is not in the row
  CHECK(f.check_chain("a") == 3);
  CHECK(f.check_chain("b") == 2);
}
