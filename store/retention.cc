#include "store/retention.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "common/log.h"
#include "common/time.h"
#include "decode/canonical.h"
#include "integrity/archive.h"
#include "integrity/verify.h"
#include "sinks/event_reader.h"

namespace trail {
namespace {

constexpr int64_t kDayUs = 86400LL * 1000000;

struct result_ptr {
  PGresult* r = nullptr;
  ~result_ptr() { PQclear(r); }
};

bool fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

bool write_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  return ok;
}

// "events_20261110" → the day's first µs (UTC); nullopt when not a daily partition.
std::optional<int64_t> partition_day(const std::string& name) {
  if (name.size() != 15 || name.rfind("events_", 0) != 0) return std::nullopt;
  const std::string d = name.substr(7);
  return parse_rfc3339_us(d.substr(0, 4) + "-" + d.substr(4, 2) + "-" + d.substr(6, 2) + "T00:00:00Z");
}

class pass {
 public:
  pass(const retention_options& opt, const integrity::signing_key& key, int64_t now_us, retention_report& out)
      : opt_(opt), key_(key), now_us_(now_us), out_(out), s_(opt.pg_dsn, opt.timeouts, "traild-retention") {}

  void run() {
    std::string error;
    if (!s_.connect(&error)) return fail("cannot connect to PostgreSQL (retention.pg_dsn): " + error);
    // Archived but not dropped yet: re-verify from the file, then drop.
    result_ptr pending;
    if (!query("SELECT partition, file_name, manifest, rows FROM audit.archives WHERE dropped_at IS NULL ORDER BY partition",
               {}, pending))
      return;
    for (int i = 0; i < PQntuples(pending.r); ++i) {
      const std::string part = PQgetvalue(pending.r, i, 0);
      const bool empty = std::string(PQgetvalue(pending.r, i, 3)) == "0" && PQgetlength(pending.r, i, 1) == 0;
      const std::string problem =
          empty ? "" : integrity::verify_archive(PQgetvalue(pending.r, i, 1), PQgetvalue(pending.r, i, 2), key_.verifier());
      if (!problem.empty()) return fail("the recorded archive of " + part + " does not verify: " + problem);
      if (!drop(part)) return;
    }
    result_ptr parts;
    if (!query("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
               "WHERE i.inhparent = 'audit.events'::regclass AND c.relname ~ '^events_[0-9]{8}$' ORDER BY c.relname",
               {}, parts))
      return;
    for (int i = 0; i < PQntuples(parts.r); ++i)
      if (!partition(PQgetvalue(parts.r, i, 0))) return;
  }

 private:
  void fail(const std::string& why) {
    out_.error = why;
    if (s_.connected() && s_.in_transaction_block()) s_.exec("ROLLBACK");
  }

  bool query(const char* sql, const std::vector<std::string>& params, result_ptr& res) {
    std::vector<const char*> p;
    for (const auto& x : params) p.push_back(x.c_str());
    const db_result r = s_.exec(sql, static_cast<int>(p.size()), p.data(), &res.r);
    if (!r.ok()) fail(r.message);
    return r.ok();
  }

  bool drop(const std::string& part) {
    result_ptr r;
    if (!query("SELECT audit.drop_archived_partition($1)", {part}, r)) return false;
    log::info("retention", "partition archived and dropped", {{"partition", part}});
    return true;
  }

  // One partition: past retention? held? then archive, verify, record, drop.
  bool partition(const std::string& part) {
    const auto day = partition_day(part);
    if (!day) return true;
    const int64_t from = *day, to = *day + kDayUs;
    if (opt_.days <= 0 || to > now_us_ - opt_.days * kDayUs) return true;
    const std::string from_text = format_rfc3339_us(from), to_text = format_rfc3339_us(to);
    result_ptr tenants;
    if (!query("SELECT DISTINCT tenant_id FROM audit.events WHERE occurred_at >= $1 AND occurred_at < $2 ORDER BY 1",
               {from_text, to_text}, tenants))
      return false;
    std::vector<std::string> names;
    int64_t longest = opt_.days;
    for (int i = 0; i < PQntuples(tenants.r); ++i) {
      names.emplace_back(PQgetvalue(tenants.r, i, 0));
      if (auto it = opt_.tenant_days.find(names.back()); it != opt_.tenant_days.end())
        longest = std::max(longest, it->second);
    }
    if (to > now_us_ - longest * kDayUs) {
      out_.kept.push_back(part);
      return true;
    }
    result_ptr holds;
    if (!query("SELECT tenant_id FROM audit.legal_holds WHERE tenant_id = '*' OR tenant_id = ANY($1::text[]) "
               "ORDER BY tenant_id LIMIT 1",
               {text_array(names)}, holds))
      return false;
    if (PQntuples(holds.r) > 0) {
      out_.held.push_back(part + " (" + PQgetvalue(holds.r, 0, 0) + ")");
      log::info("retention", "partition past retention kept under legal hold",
                {{"partition", part}, {"hold", PQgetvalue(holds.r, 0, 0)}});
      return true;
    }
    if (names.empty()) return drop_empty(part, from_text, to_text);
    return archive(part, from_text, to_text);
  }

  // A partition without rows past retention: nothing to archive; its record
  // (a signed manifest of no rows, no file) lets the drop function drop it.
  bool drop_empty(const std::string& part, const std::string& from_text, const std::string& to_text) {
    const std::string manifest = integrity::sign_note(std::string(integrity::kManifestHeader) + "\n{\"partition\":\"" +
                                                          part + "\",\"from\":\"" + from_text + "\",\"to\":\"" + to_text +
                                                          "\",\"file\":\"\",\"file_sha256\":\"\",\"rows\":0,\"tenants\":[]}\n",
                                                      key_);
    result_ptr id;
    if (!query("INSERT INTO audit.archives (partition, file_name, file_sha256, rows, manifest) VALUES ($1, '', '', 0, $2) "
               "RETURNING id",
               {part, manifest}, id))
      return false;
    if (!drop(part)) return false;
    ++out_.emptied;
    return true;
  }

  bool archive(const std::string& part, const std::string& from_text, const std::string& to_text) {
    const std::string final_path = opt_.archive_dir + "/" + part + ".ledger.ndjson.zst";
    const std::string tmp = final_path + ".tmp";
    std::remove(tmp.c_str());  // left by an attempt that never got recorded
    integrity::archive_writer w;
    std::string error;
    if (!w.open(tmp, &error)) return fail(error), false;
    // The rows, by tenant and sequence, through a cursor (bounded memory).
    if (!s_.exec("BEGIN READ ONLY").ok()) return fail("cannot begin"), false;
    const std::string cursor = std::string("DECLARE trail_archive NO SCROLL CURSOR FOR SELECT ") +
                               kStoredEventWithLinksColumns +
                               " FROM audit.events e WHERE e.occurred_at >= '" + from_text + "' AND e.occurred_at < '" +
                               to_text + "' ORDER BY e.tenant_id, e.sequence";
    if (const db_result r = s_.exec(cursor.c_str()); !r.ok()) return fail(r.message), false;
    std::string canonical;
    while (true) {
      result_ptr rows;
      if (!query("FETCH 5000 FROM trail_archive", {}, rows)) return false;
      const int n = PQntuples(rows.r);
      for (int i = 0; i < n; ++i) {
        stored_event ev;
        if (!read_stored_event(rows.r, i, ev, &error)) return fail(part + ": " + error), false;
        canonical.clear();
        if (!append_canonical_event(ev.event, ev.sequence, ev.recorded_at_us, canonical))
          return fail(part + ": sequence " + std::to_string(ev.sequence) + " has a JSON column that is not JSON"), false;
        if (!w.add(std::string(ev.event.get(event_field::tenant_id)), ev.sequence, ev.prev_hash, ev.hash, canonical,
                   &error))
          return fail(error), false;
      }
      if (n == 0) break;
    }
    s_.exec("ROLLBACK");
    if (!w.close(&error)) return fail(error), false;
    if (std::rename(tmp.c_str(), final_path.c_str()) != 0 || !fsync_dir(opt_.archive_dir))
      return fail("cannot move the archive into " + opt_.archive_dir), false;

    // Each tenant's runs signed, its covering checkpoints, the manifest signed.
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> j(sb);
    j.StartObject();
    j.Key("partition");
    j.String(part.c_str());
    j.Key("from");
    j.String(from_text.c_str());
    j.Key("to");
    j.String(to_text.c_str());
    j.Key("file");
    const std::string file_name = final_path.substr(final_path.rfind('/') + 1);
    j.String(file_name.c_str());
    j.Key("file_sha256");
    j.String(w.sha256_hex().c_str());
    j.Key("rows");
    j.Int64(w.rows());
    j.Key("archived_at");
    j.String(format_rfc3339_us(now_unix_us()).c_str());
    j.Key("tenants");
    j.StartArray();
    std::vector<std::string> run_tenants, run_notes;
    std::vector<int64_t> run_first, run_last, run_rows;
    for (const auto& t : w.tenants()) {
      j.StartObject();
      j.Key("tenant");
      j.String(t.tenant.c_str());
      j.Key("rows");
      j.Int64(t.rows);
      j.Key("runs");
      j.StartArray();
      for (const auto& r : t.runs) {
        integrity::archived_run_note note{integrity::checkpoint_origin(key_.name, t.tenant), r.first, r.last, r.prev,
                                          r.last_hash, part, w.sha256_hex()};
        const std::string signed_note = integrity::sign_archived_run(note, key_);
        j.String(signed_note.c_str());
        run_tenants.push_back(t.tenant);
        run_first.push_back(r.first);
        run_last.push_back(r.last);
        run_rows.push_back(r.last - r.first + 1);
        run_notes.push_back(signed_note);
      }
      j.EndArray();
      j.Key("checkpoints");
      j.StartArray();
      const int64_t lo = t.runs.front().first, hi = t.runs.back().last;
      result_ptr cps;
      if (!query("(SELECT sequence, note FROM audit.checkpoints WHERE tenant_id = $1 AND sequence BETWEEN $2::bigint AND "
                 "$3::bigint) UNION ALL (SELECT sequence, note FROM audit.checkpoints WHERE tenant_id = $1 AND "
                 "sequence > $3::bigint ORDER BY sequence LIMIT 1) ORDER BY 1",
                 {t.tenant, std::to_string(lo), std::to_string(hi)}, cps))
        return false;
      for (int i = 0; i < PQntuples(cps.r); ++i) {
        const int64_t seq = std::stoll(PQgetvalue(cps.r, i, 0));
        bool inside = seq > hi;  // the first after covers the runs
        for (const auto& r : t.runs) inside = inside || (seq >= r.first && seq <= r.last);
        if (inside) j.String(PQgetvalue(cps.r, i, 1));
      }
      j.EndArray();
      j.EndObject();
    }
    j.EndArray();
    j.EndObject();
    const std::string manifest = integrity::sign_note(
        std::string(integrity::kManifestHeader) + "\n" + std::string(sb.GetString(), sb.GetSize()) + "\n", key_);
    if (!write_file(final_path + ".manifest", manifest) || !fsync_dir(opt_.archive_dir))
      return fail("cannot write the manifest into " + opt_.archive_dir), false;

    // Re-read what is on disk before anything is dropped.
    int64_t verified_rows = 0;
    const std::string problem = integrity::verify_archive(final_path, manifest, key_.verifier(), &verified_rows);
    if (!problem.empty()) return fail("the archive of " + part + " does not verify after writing: " + problem), false;
    if (verified_rows != w.rows()) return fail("the archive of " + part + " re-read a different row count"), false;

    // Recorded, then dropped.
    if (!s_.exec("BEGIN").ok()) return fail("cannot begin"), false;
    result_ptr id;
    if (!query("INSERT INTO audit.archives (partition, file_name, file_sha256, rows, manifest) VALUES ($1, $2, $3, $4, $5) "
               "RETURNING id",
               {part, final_path, w.sha256_hex(), std::to_string(w.rows()), manifest}, id))
      return false;
    const std::string archive_id = PQgetvalue(id.r, 0, 0);
    result_ptr runs;
    if (!run_tenants.empty() &&
        !query("INSERT INTO audit.archived_runs (tenant_id, first_sequence, last_sequence, rows, archive_id, note) "
               "SELECT t, f, l, n, $5::bigint, x FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], "
               "$6::text[]) AS v(t, f, l, n, x)",
               {text_array(run_tenants), bigint_array(run_first), bigint_array(run_last), bigint_array(run_rows),
                archive_id, text_array(run_notes)},
               runs))
      return false;
    if (!s_.exec("COMMIT").ok()) return fail("cannot record the archive of " + part), false;
    if (!drop(part)) return false;
    ++out_.archived;
    out_.rows += w.rows();
    return true;
  }

  const retention_options& opt_;
  const integrity::signing_key& key_;
  const int64_t now_us_;
  retention_report& out_;
  pg_session s_;
};

bool exec_simple(const std::string& dsn, const char* sql, const std::vector<std::string>& params, std::string* error,
                 PGresult** keep = nullptr) {
  pg_session s(dsn, pg_timeouts{10, 30}, "traild-legal-hold");
  if (!s.connect(error)) return false;
  std::vector<const char*> p;
  for (const auto& x : params) p.push_back(x.c_str());
  const db_result r = s.exec(sql, static_cast<int>(p.size()), p.data(), keep);
  if (!r.ok() && error) *error = r.message;
  return r.ok();
}

}  // namespace

retention_report run_retention(const retention_options& opt, const integrity::signing_key& key, int64_t now_us) {
  retention_report out;
  pass(opt, key, now_us, out).run();
  if (!out.ok()) log::error("retention", "retention pass stopped; nothing was dropped unverified", {{"error", out.error}});
  return out;
}

bool place_legal_hold(const std::string& dsn, const std::string& tenant, const std::string& reason, std::string* error) {
  return exec_simple(dsn,
                     "INSERT INTO audit.legal_holds (tenant_id, reason) VALUES ($1, $2) "
                     "ON CONFLICT (tenant_id) DO UPDATE SET reason = excluded.reason",
                     {tenant, reason}, error);
}

bool release_legal_hold(const std::string& dsn, const std::string& tenant, std::string* error) {
  return exec_simple(dsn, "DELETE FROM audit.legal_holds WHERE tenant_id = $1", {tenant}, error);
}

bool list_legal_holds(const std::string& dsn, std::vector<std::string>& out, std::string* error) {
  PGresult* res = nullptr;
  if (!exec_simple(dsn,
                   "SELECT tenant_id, reason, placed_by, to_char(placed_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM audit.legal_holds ORDER BY tenant_id",
                   {}, error, &res))
    return false;
  for (int i = 0; i < PQntuples(res); ++i)
    out.push_back(std::string(PQgetvalue(res, i, 0)) + "\t" + PQgetvalue(res, i, 1) + "\t" + PQgetvalue(res, i, 2) +
                  "\t" + PQgetvalue(res, i, 3));
  PQclear(res);
  return true;
}

}  // namespace trail
