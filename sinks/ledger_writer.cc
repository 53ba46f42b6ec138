#include "sinks/ledger_writer.h"

#include <algorithm>
#include <chrono>

#include "common/failpoint.h"
#include "common/log.h"
#include "sinks/writer_metrics.h"
#include "sinks/event_rows.h"

namespace trail {

// ---- the plan ----

write_plan write_plan::start(const std::vector<audit_record>& records) {
  write_plan p;
  const size_t n = records.size();
  for (const auto& r : records) p.tenants.emplace_back(r.tenant_id());
  std::sort(p.tenants.begin(), p.tenants.end());
  p.tenants.erase(std::unique(p.tenants.begin(), p.tenants.end()), p.tenants.end());
  p.same_as.assign(n, -1);
  p.stored_seq.assign(n, 0);
  p.stored_at.assign(n, 0);
  p.collided.assign(n, false);
  p.seq.assign(n, 0);
  p.prev_hash.assign(n, kChainGenesis);
  p.hash.assign(n, kChainGenesis);
  // Identity: (tenant, source, id). The separator cannot occur in a tenant id.
  std::unordered_map<std::string, int> seen;
  std::string key;
  for (size_t i = 0; i < n; ++i) {
    const auto& r = records[i];
    key.assign(r.tenant_id()).push_back('\x1f');
    key.append(r.ce_source()).push_back('\x1f');
    key.append(r.ce_id());
    auto [it, inserted] = seen.emplace(key, static_cast<int>(i));
    if (!inserted) p.same_as[i] = it->second;
  }
  return p;
}

std::vector<identity_key> write_plan::lookup_keys(const std::vector<audit_record>& records) const {
  std::vector<identity_key> keys;
  for (size_t i = 0; i < records.size(); ++i)
    if (same_as[i] < 0) keys.push_back({i, records[i].tenant_id(), records[i].ce_source(), records[i].ce_id()});
  return keys;
}

void write_plan::apply_stored(const std::vector<stored_identity>& found) {
  for (const auto& f : found) {
    if (!f.same_event) {
      collided[f.index] = true;
      continue;
    }
    stored_seq[f.index] = f.sequence;
    stored_at[f.index] = f.recorded_at_us;
  }
  for (size_t i = 0; i < same_as.size(); ++i)
    if (same_as[i] >= 0) collided[i] = collided[static_cast<size_t>(same_as[i])];
}

long write_plan::assign(const std::vector<audit_record>& records, tenant_heads& heads, int64_t now_us,
                        std::string* events_copy, std::string* ids_copy) {
  rows = 0;
  thread_local std::string scratch;
  const tenant_heads before = heads;
  if (events_copy) events_copy->clear();
  if (ids_copy) ids_copy->clear();
  for (size_t i = 0; i < records.size(); ++i) {
    seq[i] = 0;
    if (same_as[i] >= 0 || stored_seq[i] > 0 || collided[i]) continue;
    tenant_head& head = heads[std::string(records[i].tenant_id())];
    seq[i] = ++head.sequence;
    prev_hash[i] = head.hash;
    std::pair<size_t, size_t> extra_at{0, 0};
    if (!chain_event(head.hash, records[i].event, seq[i], now_us, scratch, hash[i], &extra_at)) {
      heads = before;
      std::fill(seq.begin(), seq.end(), 0);
      rows = 0;
      if (events_copy) events_copy->clear();
      if (ids_copy) ids_copy->clear();
      return static_cast<long>(i);
    }
    head.hash = hash[i];
    ++rows;
    if (events_copy && ids_copy)
      render_rows(records[i].event, seq[i], prev_hash[i], hash[i], *events_copy, *ids_copy,
                  std::string_view(scratch).substr(extra_at.first, extra_at.second));
  }
  return -1;
}

outbox_ranges write_plan::ranges(const std::vector<audit_record>& records) const {
  outbox_ranges out;
  std::unordered_map<std::string_view, size_t> at;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!inserts(i)) continue;
    auto [it, fresh] = at.emplace(records[i].tenant_id(), out.tenants.size());
    if (fresh) {
      out.tenants.emplace_back(records[i].tenant_id());
      out.first.push_back(seq[i]);
      out.last.push_back(seq[i]);
      continue;
    }
    out.first[it->second] = std::min(out.first[it->second], seq[i]);
    out.last[it->second] = std::max(out.last[it->second], seq[i]);
  }
  return out;
}

void write_plan::settle(std::vector<audit_record>& records, int64_t now_us, bool uncertain, int64_t outbox_id) const {
  for (size_t i = 0; i < records.size(); ++i) {
    auto& r = records[i];
    r.recorded_at_us = now_us;
    r.duplicate = false;
    r.outbox_id = inserts(i) ? outbox_id : 0;
    if (stored_seq[i] > 0) {
      r.sequence = stored_seq[i];
      r.duplicate = true;
      if (stored_at[i] > 0) r.recorded_at_us = stored_at[i];
    } else if (same_as[i] >= 0) {
      const auto first = static_cast<size_t>(same_as[i]);
      r.sequence = stored_seq[first] > 0 ? stored_seq[first] : seq[first];
      if (stored_at[first] > 0) r.recorded_at_us = stored_at[first];
      r.duplicate = true;
    } else {
      r.sequence = seq[i];
    }
    // A duplicate is republished only when it may be the event whose first
    // republish was lost: a JetStream redelivery of its message, or a retry
    // of this very write after a commit of unknown outcome. A publisher's
    // re-send (delivered once, perhaps with other content) was republished
    // when first stored and is not sent again; nor is a repeat inside the batch.
    r.republish = !r.duplicate || uncertain || (r.origin && r.origin->delivered > 1);
    if (r.duplicate && same_as[i] >= 0) r.republish = false;
  }
}


// ---- the writer ----

ledger_writer::ledger_writer(ledger_session& session, commit_observer& observer, hooks h, size_t known_tenants_max,
                             bool outbox)
    : session_(session), observer_(observer), hooks_(std::move(h)), known_tenants_max_(known_tenants_max), outbox_(outbox) {}

void ledger_writer::remember_tenants(const std::vector<std::string>& fresh) {
  if (known_tenants_.size() + fresh.size() > known_tenants_max_) known_tenants_.clear();
  for (const auto& t : fresh) {
    if (known_tenants_.size() >= known_tenants_max_) break;  // a miss only costs an INSERT … ON CONFLICT
    known_tenants_.insert(t);
  }
}

db_result ledger_writer::try_write(std::vector<audit_record>& records, bool dedupe, bool uncertain) {
  if (auto r = session_.begin(); !r.ok()) return r;
  plan_ = write_plan::start(records);
  auto& plan = plan_;
  std::vector<std::string> fresh;
  for (const auto& t : plan.tenants)
    if (!known_tenants_.count(t)) fresh.push_back(t);
  if (!fresh.empty())
    if (auto r = session_.create_heads(fresh); !r.ok()) return r;
  tenant_heads heads;
  int64_t now_us = 0, outbox_id = 0;
  if (auto r = session_.lock_heads(plan.tenants, heads, now_us); !r.ok()) return r;
  if (heads.size() != plan.tenants.size()) {
    std::string missing;
    for (const auto& t : plan.tenants)
      if (!heads.count(t)) missing += (missing.empty() ? "" : ",") + t;
    for (const auto& t : plan.tenants) known_tenants_.erase(t);
    db_result r;
    r.kind = result_kind::unavailable;
    r.sqlstate = kLedgerInvariant;
    r.message = "tenant(s) " + missing + " have stored events but no row in audit.tenant_heads; "
                "new sequences would repeat old ones";
    return r;
  }
  if (dedupe) {
    std::vector<stored_identity> found;
    if (auto r = session_.find_stored(plan.lookup_keys(records), found); !r.ok()) return r;
    plan.apply_stored(found);
  }
  if (const long bad = plan.assign(records, heads, now_us, &events_buf_, &ids_buf_); bad >= 0) {
    // The decoder admits only valid JSON, so this is a defect, never data to
    // store unhashed: the event is refused alone (bisecting) with the reason.
    db_result r;
    r.kind = result_kind::bad_data;
    r.sqlstate = "22P02";
    r.message = "the canonical bytes of event " + std::string(records[static_cast<size_t>(bad)].ce_id()) +
                " cannot be computed: a JSON column is not valid JSON";
    return r;
  }
  if (plan.rows > 0) {
    if (auto r = session_.insert(ids_buf_, events_buf_); !r.ok()) {
      if (r.constraint == "event_ids_sequence") {  // a sequence is taken: the head is behind the table
        for (const auto& t : plan.tenants) known_tenants_.erase(t);
        r.kind = result_kind::unavailable;
        r.message = "a sequence about to be assigned is already stored (audit.tenant_heads is behind): " + r.message;
        r.sqlstate = kLedgerInvariant;
      }
      return r;
    }
    if (auto r = session_.advance_heads(heads); !r.ok()) return r;
    if (outbox_)
      if (auto r = session_.record_outbox(plan.ranges(records), outbox_id); !r.ok()) return r;
  }
  failpoint::before_commit();
  const auto commit_started = std::chrono::steady_clock::now();
  if (auto r = session_.commit(); !r.ok()) return r;
  auto& m = writer_metrics::get();
  m.commit_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count());
  failpoint::after_commit();

  remember_tenants(fresh);
  plan.settle(records, now_us, uncertain, outbox_id);
  size_t dups = 0;
  for (const auto& r : records) dups += r.duplicate;
  m.committed.Increment(static_cast<double>(plan.rows));
  if (auto* top = metrics::tenants()) {
    // One add per run of a tenant's records (the batcher hands whole tenant batches).
    for (size_t i = 0; i < records.size();) {
      size_t j = i;
      uint64_t stored = 0;
      while (j < records.size() && records[j].tenant_id() == records[i].tenant_id()) stored += !records[j++].duplicate;
      if (stored) top->add(std::string(records[i].tenant_id()), stored);
      i = j;
    }
  }
  if (dups) m.duplicates.Increment(static_cast<double>(dups));
  m.commits.Increment();
  m.batch_events.Observe(static_cast<double>(records.size()));
  m.batch_bytes.Observe(static_cast<double>(events_buf_.size()));
  return {};
}

void ledger_writer::write(std::vector<audit_record>&& records, bool dedupe) {
  // Busy while this call runs (bisecting recurses: count the outermost call only).
  struct busy_mark {
    bool outer;
    explicit busy_mark(int& depth) : outer(depth++ == 0), depth_(depth) {
      if (outer) writer_metrics::get().pg_connections_busy.Increment();
    }
    ~busy_mark() {
      if (outer) writer_metrics::get().pg_connections_busy.Decrement();
      --depth_;
    }
    int& depth_;
  } mark(depth_);
  for (const auto& r : records)
    if (r.origin && r.origin->delivered > 1) dedupe = true;  // a redelivery may already be stored
  bool uncertain = false;  // an earlier attempt of this write may have committed
  while (true) {
    if (hooks_.abandoned()) return;  // shutdown deadline: the messages stay un-acked and are redelivered
    if (!hooks_.ensure_connected()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    db_result r = try_write(records, dedupe, uncertain);
    if (r.ok()) {
      hooks_.blocked(false);
      writer_metrics::get().flush_seconds.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (std::find(plan_.collided.begin(), plan_.collided.end(), true) != plan_.collided.end()) {
        // Never stored and never taken for a duplicate: refused loudly.
        std::vector<audit_record> kept;
        for (size_t i = 0; i < records.size(); ++i) {
          if (!plan_.collided[i]) {
            kept.push_back(std::move(records[i]));
            continue;
          }
          const std::string digest = digest_hex(identity_digest(records[i].ce_source(), records[i].ce_id()));
          log::error("writer", "an event's identity digest is already held by a different event; refusing it",
                     {{"tenant", records[i].tenant_id()}, {"ce_source", records[i].ce_source()},
                      {"ce_id", records[i].ce_id()}, {"id_digest", digest}});
          observer_.refused(std::move(records[i]), reason::database_rejected,
                            "identity digest " + digest + " of (source, id) is already held by another stored event "
                            "of this tenant (a SHA-256 collision); the event cannot be stored under this identity");
        }
        records = std::move(kept);
      }
      observer_.committed(std::move(records));
      return;
    }
    if (session_.connected()) session_.rollback();
    switch (r.kind) {
      case result_kind::duplicate_key:
        if (dedupe) {  // cannot happen on the dedupe path unless someone else wrote the key meanwhile
          hooks_.backoff("unique violation on the dedupe path: " + r.message, r.sqlstate);
        }
        dedupe = true;
        continue;
      case result_kind::bad_data:
        writer_metrics::get().db_error(r.sqlstate).Increment();
        if (records.size() == 1) {
          log::limited(log::level::warn, "writer", "PostgreSQL refused an event; it goes to the dead-letter stream",
                       {{"tenant", records[0].tenant_id()}, {"ce_id", records[0].ce_id()}, {"sqlstate", r.sqlstate},
                        {"error", r.message}});
          observer_.refused(std::move(records[0]), reason::database_rejected, r.sqlstate + ": " + r.message);
          return;
        }
        {
          // Bisect: the refused events end up alone, the rest is committed.
          std::vector<audit_record> second(std::make_move_iterator(records.begin() + static_cast<long>(records.size() / 2)),
                                           std::make_move_iterator(records.end()));
          records.resize(records.size() / 2);
          write(std::move(records), dedupe);
          write(std::move(second), dedupe);
          return;
        }
      default:
        if (r.sqlstate == kLedgerInvariant) hooks_.blocked(true);  // not ready until repaired
        // The connection may have dropped during COMMIT, whose outcome is
        // then unknown: retry on the dedupe path, which is right either way.
        if (!session_.connected()) uncertain = true;
        hooks_.backoff(r.sqlstate.empty() ? r.message : r.sqlstate + " " + r.message, r.sqlstate);
        dedupe = true;
        continue;
    }
  }
}

}  // namespace trail
