// The integrity routes (docs/INTEGRITY.md, "Verifying"):
//   GET /v1/integrity/public-key            the checkpoints' verifier key
//   GET /v1/tenants/{t}/checkpoints         the tenant's signed checkpoints
//   GET /v1/tenants/{t}/verify              the chain recomputed over a range,
//                                           against the stored checkpoints and,
//                                           with against=broker, the broker's copies
// On the API listener's worker threads, like the other routes; a verification
// holds one reader connection while it walks the range.
#include "api/http_types.h"
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <limits>

#include "api/http_reply.h"
#include "api/query_routes.h"
#include "common/log.h"
#include "common/time.h"
#include "common/uuid.h"
#include "integrity/verify.h"

namespace trail {

using Request = http_request;
using Response = http_response;

namespace {

// An optional integer parameter in [lo, hi]; false (answered 400) when malformed.
bool int_param(const Request& req, Response& res, const char* name, int64_t lo, int64_t hi, int64_t& out) {
  const auto n = req.params.count(name);
  if (n == 0) return true;
  const std::string v = req.get_param_value(name);
  int64_t x = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (n > 1 || r.ec != std::errc() || r.ptr != v.data() + v.size() || x < lo || x > hi) {
    send_error(res, 400, "invalid_parameter",
               std::string(name) + ": an integer from " + std::to_string(lo) + (hi < std::numeric_limits<int64_t>::max()
                                                                                   ? " to " + std::to_string(hi)
                                                                                   : ""));
    return false;
  }
  out = x;
  return true;
}

bool only_params(const Request& req, Response& res, std::initializer_list<const char*> allowed) {
  for (const auto& [k, v] : req.params) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      send_error(res, 400, "unknown_parameter", "unknown parameter: " + k);
      return false;
    }
  }
  return true;
}

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;
void str(json_writer& w, const char* key, const std::string& v) {
  w.Key(key);
  w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
}

}  // namespace

void query_routes::install_integrity(http_router& server) {
  auto unavailable = [](Response& res, const request_context& ctx, const std::string& error) {
    log::limited(log::level::warn, "api", "integrity read failed", {{"request_id", ctx.id}, {"error", error}});
    send_error(res, 503, "unavailable", "the ledger cannot be read right now; retry later");
  };
  auto not_configured = [](Response& res) {
    send_error(res, 503, "integrity_not_configured",
               "this traild has no checkpoint key (integrity.signing_key_file or integrity.public_key_file)");
  };

  server.Get("/v1/integrity/public-key", [=, this](const Request& req, Response& res) {
    res.set_header("X-Request-Id", uuid_v7_random());
    auth_failure why;
    if (!auth_.authenticate(req.get_header_value("Authorization"), clock_s_(), &why)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, 401, "unauthenticated", "a valid bearer token is required");
      return;
    }
    if (!integrity_.key) return not_configured(res);
    rapidjson::StringBuffer sb;
    json_writer w(sb);
    w.StartObject();
    str(w, "key", integrity::encode(*integrity_.key));
    str(w, "name", integrity_.key->name);
    str(w, "algorithm", "Ed25519");
    str(w, "format", "c2sp.org/signed-note verifier key");
    w.EndObject();
    res.set_content(sb.GetString(), sb.GetSize(), "application/json");
  });

  server.Get(R"(/v1/tenants/([^/]+)/checkpoints)", [=, this](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    if (!this->admit(req, res, tenant, scope_read, ctx)) return;
    int64_t from = 1, to = std::numeric_limits<int64_t>::max(), limit = 1000;
    if (!only_params(req, res, {"from_sequence", "to_sequence", "limit"}) ||
        !int_param(req, res, "from_sequence", 1, std::numeric_limits<int64_t>::max(), from) ||
        !int_param(req, res, "to_sequence", 1, std::numeric_limits<int64_t>::max(), to) ||
        !int_param(req, res, "limit", 1, 10000, limit))
      return;
    std::vector<ledger_reader::checkpoint_row> rows;
    std::string error;
    if (reader_->checkpoints(tenant, from, to, static_cast<size_t>(limit) + 1, rows, &error) != read_status::ok)
      return unavailable(res, ctx, error);
    const bool more = rows.size() > static_cast<size_t>(limit);
    if (more) rows.pop_back();
    if (!recorded(req, res, ctx, tenant, "audit.integrity.checkpoints", static_cast<int64_t>(rows.size()))) return;
    rapidjson::StringBuffer sb;
    json_writer w(sb);
    w.StartObject();
    str(w, "tenant", tenant);
    w.Key("key");
    if (integrity_.key) w.String(integrity::encode(*integrity_.key).c_str());
    else w.Null();
    w.Key("checkpoints");
    w.StartArray();
    for (const auto& r : rows) {
      w.StartObject();
      w.Key("sequence");
      w.Int64(r.sequence);
      str(w, "head_hash", r.head_hash_hex);
      str(w, "signed_at", r.signed_at);
      str(w, "note", r.note);
      w.EndObject();
    }
    w.EndArray();
    w.Key("next_from_sequence");
    if (more) w.Int64(rows.back().sequence + 1);
    else w.Null();
    w.EndObject();
    res.set_content(sb.GetString(), sb.GetSize(), "application/json");
  });

  server.Get(R"(/v1/tenants/([^/]+)/verify)", [=, this](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    if (!this->admit(req, res, tenant, scope_read, ctx)) return;
    int64_t from = 1, to = 0;
    if (!only_params(req, res, {"from_sequence", "to_sequence", "against"}) ||
        !int_param(req, res, "from_sequence", 1, std::numeric_limits<int64_t>::max(), from) ||
        !int_param(req, res, "to_sequence", 1, std::numeric_limits<int64_t>::max(), to))
      return;
    const bool against_broker = req.has_param("against");
    if (against_broker && req.get_param_value("against") != "broker") {
      send_error(res, 400, "invalid_parameter", "against: broker (the checkpoint stream's copies)");
      return;
    }
    if (against_broker && (!integrity_.key || !integrity_.read_broker)) return not_configured(res);
    std::string error;
    // Where the range ends by default: the last event or checkpoint known.
    int64_t last_event = 0, last_checkpoint = 0;
    if (reader_->chain_extent(tenant, last_event, last_checkpoint, &error) != read_status::ok)
      return unavailable(res, ctx, error);
    const bool open_ended = to == 0;
    if (open_ended) to = std::max(last_event, last_checkpoint);

    // The broker's copies: every checkpoint of the tenant, oldest first,
    // until one beyond the range.
    std::vector<std::string> broker_notes;
    if (against_broker) {
      int64_t last_broker = 0;
      const bool ok = integrity_.read_broker(
          integrity_.checkpoint_stream, integrity_.checkpoint_prefix + "." + tenant, 0,
          [&](std::string_view note) {
            integrity::checkpoint c;
            std::string why;
            integrity::open_checkpoint(note, *integrity_.key, c, &why);
            if (!open_ended && c.size > to) return false;  // in sequence order: the rest is beyond too
            last_broker = std::max(last_broker, c.size);
            broker_notes.emplace_back(note);
            return true;
          },
          &error);
      if (!ok) {
        log::limited(log::level::warn, "api", "the checkpoint stream cannot be read", {{"request_id", ctx.id}, {"error", error}});
        send_error(res, 503, "broker_unavailable", "the broker's checkpoint copies cannot be read right now; retry later");
        return;
      }
      if (open_ended) to = std::max(to, last_broker);
    }
    // The stored checkpoints of the range (and the one just before it, whose
    // link the first row must continue).
    std::vector<ledger_reader::checkpoint_row> rows;
    if (to > 0 && reader_->checkpoints(tenant, from > 1 ? from - 1 : 1, to, std::numeric_limits<int32_t>::max(), rows,
                                       &error) != read_status::ok)
      return unavailable(res, ctx, error);
    std::vector<integrity::stored_checkpoint> stored;
    std::optional<chain_hash> start;
    for (const auto& r : rows) {
      integrity::stored_checkpoint s{r.sequence, chain_hash_from_hex(r.head_hash_hex).value_or(chain_hash{}), r.note};
      if (r.sequence == from - 1 && integrity_.key) {
        integrity::checkpoint c;
        std::string why;
        if (integrity::open_checkpoint(r.note, *integrity_.key, c, &why) == integrity::note_status::ok &&
            c.size == r.sequence && c.origin == integrity::checkpoint_origin(integrity_.key->name, tenant))
          start = c.root;  // a signed link to continue from
      }
      stored.push_back(std::move(s));
    }
    integrity::chain_verifier v(from, start);
    integrity::checkpoint_summary summary;
    // Runs that retention archived: crossed on their signed notes' word.
    std::vector<std::string> run_notes;
    if (to > 0 && reader_->archived_runs(tenant, from, to, run_notes, &error) != read_status::ok)
      return unavailable(res, ctx, error);
    for (const auto& note : run_notes) {
      integrity::archived_run_note run;
      std::string why;
      const auto status = integrity_.key ? integrity::open_archived_run(note, *integrity_.key, run, &why)
                                         : integrity::note_status::unsigned_by_key;
      if (status != integrity::note_status::ok || run.origin != integrity::checkpoint_origin(integrity_.key->name, tenant)) {
        v.fail(run.first > 0 ? run.first : from,
               "the archived run at sequence " + std::to_string(run.first) + ": " +
                   (integrity_.key ? "its note does not verify" : "no checkpoint key to check its note"));
        continue;
      }
      v.archived(run.first, run.last, run.prev, run.last_hash);
    }
    if (integrity_.key)
      integrity::add_checkpoints(v, *integrity_.key, tenant, stored, against_broker ? &broker_notes : nullptr, from, to,
                                 summary);
    // The rows, from audit.events itself.
    if (to >= from) {
      std::unique_ptr<export_cursor> cursor;
      if (reader_->open_chain(tenant, from, to, export_format::ndjson, cursor, &error) != read_status::ok)
        return unavailable(res, ctx, error);
      stored_event ev;
      std::string canonical;
      while (cursor->next(ev, &error)) {
        canonical.clear();
        if (!append_canonical_event(ev.event, ev.sequence, ev.recorded_at_us, canonical)) {
          v.fail(ev.sequence, "sequence " + std::to_string(ev.sequence) + ": a JSON column is not JSON");
          break;
        }
        if (!v.add(ev.sequence, ev.prev_hash, ev.hash, canonical)) break;
      }
      if (!error.empty()) return unavailable(res, ctx, error);
    }
    v.finish(to);
    if (!recorded(req, res, ctx, tenant, "audit.integrity.verify", v.checked())) return;
    rapidjson::StringBuffer sb;
    json_writer w(sb);
    w.StartObject();
    str(w, "tenant", tenant);
    w.Key("from_sequence");
    w.Int64(from);
    w.Key("to_sequence");
    w.Int64(to);
    w.Key("verified");
    w.Bool(!v.broken());
    w.Key("events_checked");
    w.Int64(v.checked());
    w.Key("checkpoints_checked");
    w.Int64(summary.stored);
    w.Key("archived_events");
    w.Int64(v.archived_crossed());
    w.Key("broker_checkpoints_checked");
    if (against_broker) w.Int64(summary.broker);
    else w.Null();
    w.Key("latest_checkpoint");
    if (summary.latest_sequence > 0) {
      w.StartObject();
      w.Key("sequence");
      w.Int64(summary.latest_sequence);
      str(w, "signed_at", format_rfc3339_us(summary.latest_time_us));
      w.EndObject();
    } else {
      w.Null();
    }
    w.Key("first_break");
    if (v.broken()) {
      w.StartObject();
      w.Key("sequence");
      w.Int64(v.broken()->sequence);
      str(w, "reason", v.broken()->reason);
      w.EndObject();
    } else {
      w.Null();
    }
    if (!integrity_.key) str(w, "note", "no checkpoint key configured: the chain is checked, checkpoints are not");
    w.EndObject();
    res.set_content(sb.GetString(), sb.GetSize(), "application/json");
  });
}

}  // namespace trail
