#include "api/query_routes.h"

#include "api/http_types.h"
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <chrono>
#include <limits>

#include "api/access_event.h"
#include "api/change_diff.h"
#include "api/http_reply.h"
#include "decode/event_json.h"
#include "common/log.h"
#include "common/record.h"
#include "common/time.h"
#include "common/uuid.h"

namespace trail {

using Request = http_request;
using Response = http_response;


query_routes::query_routes(const authenticator& auth, ledger_reader* reader, publish_fn publish, route_options opt,
                           std::function<int64_t()> clock_s)
    : auth_(auth), reader_(reader), publish_(std::move(publish)), opt_(std::move(opt)), clock_s_(std::move(clock_s)) {
  if (!clock_s_) clock_s_ = [] { return now_unix_us() / 1000000; };
}

query_routes::record_outcome query_routes::record_access(const request_context& ctx, const std::string& tenant,
                                                         const std::string& path, const std::string& query,
                                                         const char* action, int64_t rows, bool denied) {
  access_record r;
  r.request_id = ctx.id;
  r.tenant = tenant;
  r.subject = ctx.who.subject;
  r.api_key = ctx.who.kind == "api_key";
  r.action = action;
  r.denied = denied;
  r.path = path;
  r.query = query;
  r.rows = rows;
  r.via = opt_.via;
  r.time_us = now_unix_us();
  std::string error = "no broker connection";
  static const header_list kHeaders = {{"Content-Type", "application/cloudevents+json"}};
  const std::string event = render_access_event(r);
  // The record goes through the same decoder as every event: one the
  // pipeline would refuse (dead-letter) must be known now, before any data
  // leaves, not found later in the dead-letter stream.
  {
    decoder_limits limits = opt_.limits;
    if (const size_t broker = max_message_bytes_.load()) limits.max_message_bytes = broker;
    event_decoder decoder(limits);
    const message_view view{event, &kHeaders, header_wire_size(kHeaders), 0, now_unix_us()};
    const decode_outcome d = decoder.decode(view);
    if (d.rejected) {
      log::limited(log::level::warn, "api", "a request's access event would not be storable; the request is refused",
                   {{"request_id", ctx.id}, {"tenant_id", tenant}, {"reason", d.rejected->message}});
      return record_outcome::unstorable;
    }
  }
  const bool ok = publish_ && publish_(opt_.events_subject, event, kHeaders, "access-" + ctx.id, &error);
  if (ok) return record_outcome::recorded;
  log::limited(log::level::warn, "api", "an access event could not be handed to the broker",
               {{"request_id", ctx.id}, {"tenant_id", tenant}, {"error", error},
                {"meta_audit", opt_.meta_audit == meta_audit_mode::required ? "required" : "best_effort"}});
  return opt_.meta_audit == meta_audit_mode::best_effort ? record_outcome::recorded : record_outcome::unavailable;
}

void query_routes::set_token_secret(const std::string& secret) {
  auto codec = std::make_shared<const page_token_codec>(secret);
  std::lock_guard<std::mutex> lock(tokens_mu_);
  tokens_ = std::move(codec);
}

std::shared_ptr<const page_token_codec> query_routes::tokens() const {
  std::lock_guard<std::mutex> lock(tokens_mu_);
  return tokens_;
}

// Authenticates and authorizes one request for `tenant` with `needed`
// scopes; on refusal, answers and returns false. A refusal of an
// authenticated caller is recorded in the tenant's trail (best effort: the
// answer is 403 either way).
bool query_routes::admit(const Request& req, Response& res, const std::string& tenant, unsigned needed,
                         request_context& ctx) {
  ctx.id = uuid_v7_random();
  res.set_header("X-Request-Id", ctx.id);
  auth_failure why;
  auto who = auth_.authenticate(req.get_header_value("Authorization"), clock_s_(), &why);
  if (!who) {
    log::limited(log::level::info, "api", "request refused: not authenticated",
                 {{"request_id", ctx.id}, {"path", req.path}, {"reason", why.message}});
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "unauthenticated", "a valid bearer token is required");
    return false;
  }
  ctx.who = std::move(*who);
  if (!valid_tenant_id(tenant)) {
    send_error(res, 400, "invalid_tenant", "a tenant id is 1-128 characters of [A-Za-z0-9_:-]");
    return false;
  }
  if (!ctx.who.may_access(tenant) || (ctx.who.scopes & needed) != needed) {
    // Says nothing about whether the tenant or the event exists.
    log::limited(log::level::info, "api", "request refused: forbidden",
                 {{"request_id", ctx.id}, {"path", req.path}, {"subject", ctx.who.subject}, {"needed", scope_names(needed)}});
    send_error(res, 403, "forbidden", "this token may not " + scope_names(needed) + " this tenant");
    record_access(ctx, tenant, req.path, query_of(req), "audit.access.denied", -1, true);
    return false;
  }
  if (!reader_) {
    send_error(res, 503, "read_side_unavailable", "the query API is not configured on this traild (api.pg_dsn)");
    return false;
  }
  return true;
}

// The read is recorded before its data leaves; when api.meta_audit is
// required and the record cannot be made, the data does not leave.
bool query_routes::recorded(const Request& req, Response& res, const request_context& ctx, const std::string& tenant,
                            const char* action, int64_t rows) {
  switch (record_access(ctx, tenant, req.path, query_of(req), action, rows, false)) {
    case record_outcome::recorded:
      return true;
    case record_outcome::unstorable:
      send_error(res, 400, "unrecordable_request",
                 "this read cannot be recorded in the tenant's trail as sent (see the log line of its request id); "
                 "nothing was read");
      return false;
    case record_outcome::unavailable:
      break;
  }
  send_error(res, 503, "meta_audit_unavailable", "this read cannot be recorded in the tenant's trail right now; retry later");
  return false;
}

void query_routes::install(http_router& server) {
  install_writes(server);
  install_integrity(server);
  install_stream(server);
  // Who the token is: the viewer shows it and picks the tenant from it.
  // No tenant is read, so nothing is recorded.
  server.Get("/v1/me", [this](const Request& req, Response& res) {
    res.set_header("X-Request-Id", uuid_v7_random());
    auth_failure why;
    const auto who = auth_.authenticate(req.get_header_value("Authorization"), clock_s_(), &why);
    if (!who) {
      res.set_header("WWW-Authenticate", "Bearer");
      return send_error(res, 401, "unauthenticated", "a valid bearer token is required");
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("subject");
    w.String(who->subject.c_str(), static_cast<rapidjson::SizeType>(who->subject.size()));
    w.Key("kind");
    w.String(who->kind.c_str());
    w.Key("all_tenants");
    w.Bool(who->all_tenants);
    w.Key("tenants");
    w.StartArray();
    for (const auto& t : who->tenants) w.String(t.c_str(), static_cast<rapidjson::SizeType>(t.size()));
    w.EndArray();
    w.Key("scopes");
    w.StartArray();
    const std::string names = scope_names(who->scopes);
    for (size_t start = 0; start < names.size();) {
      size_t end = names.find(' ', start);
      if (end == std::string::npos) end = names.size();
      if (end > start) w.String(names.c_str() + start, static_cast<rapidjson::SizeType>(end - start));
      start = end + 1;
    }
    w.EndArray();
    w.EndObject();
    res.set_content(sb.GetString(), sb.GetSize(), "application/json");
  });
  server.Get("/v1/openapi.json", [](const Request&, Response& res) {
    const std::string_view doc = openapi_document();
    res.set_content(doc.data(), doc.size(), "application/json");
  });
  auto unavailable = [](Response& res, const request_context& ctx, const std::string& error) {
    log::limited(log::level::warn, "api", "query failed", {{"request_id", ctx.id}, {"error", error}});
    send_error(res, 503, "unavailable", "the ledger cannot be read right now; retry later");
  };

  server.Get(R"(/v1/tenants/([^/]+)/events)", [=, this](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    if (!this->admit(req, res, tenant, scope_read, ctx)) return;
    event_query q;
    if (auto err = parse_event_query(req.params, tenant, now_unix_us(), q)) {
      send_error(res, 400, err->code.c_str(), err->message);
      return;
    }
    const auto codec = tokens();
    if (!codec) {
      send_error(res, 503, "starting", "traild is starting; retry in a moment");
      return;
    }
    const std::string fingerprint = filter_fingerprint(q);
    if (!q.page_token.empty()) {
      q.after = codec->decode(q.page_token, fingerprint);
      if (!q.after || (q.after->order == 'a') != q.by_sequence) {
        send_error(res, 400, "invalid_page_token", "the page token is malformed, forged, or was issued for other filters");
        return;
      }
    }
    page_of_events page;
    std::string error;
    switch (reader_->list(q, page, &error)) {
      case read_status::ok: break;
      case read_status::invalid: send_error(res, 400, "invalid_parameter", error); return;
      default: unavailable(res, ctx, error); return;
    }
    if (!recorded(req, res, ctx, tenant, q.by_sequence ? "audit.events.catch_up" : "audit.events.list",
                  static_cast<int64_t>(page.count)))
      return;
    std::string body;
    body.reserve(page.events_json.size() + 128);
    body += "{\"events\":[";
    body += page.events_json;
    body += "],\"next_page_token\":";
    if (page.last) body += "\"" + codec->encode(*page.last, fingerprint) + "\"";
    else body += "null";
    body += "}";
    res.status = 200;
    res.set_content(body, "application/json");
  });

  // Every matching event, streamed (chunked) from a single-row-mode statement:
  // constant memory whatever the count. Oldest first.
  server.Get(R"(/v1/tenants/([^/]+)/export)", [=, this](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    if (!this->admit(req, res, tenant, scope_export, ctx)) return;
    auto params = req.params;
    const auto fmt = params.find("format");
    if (fmt == params.end() || (fmt->second != "csv" && fmt->second != "ndjson" && fmt->second != "ledger") ||
        params.count("format") > 1) {
      send_error(res, 400, "invalid_parameter", "format: csv, ndjson or ledger");
      return;
    }
    const export_format format = fmt->second == "csv"      ? export_format::csv
                                 : fmt->second == "ledger" ? export_format::ledger
                                                           : export_format::ndjson;
    params.erase(fmt);
    std::unique_ptr<export_cursor> opened;
    std::string error;
    if (format == export_format::ledger) {
      // The rows as hashed, in sequence order, for offline verification: a
      // range of sequences, no filters (a filtered chain has gaps).
      int64_t from = 1, to = std::numeric_limits<int64_t>::max();
      for (const auto& [k, v] : params) {
        int64_t x = 0;
        const auto r = std::from_chars(v.data(), v.data() + v.size(), x);
        if ((k != "from_sequence" && k != "to_sequence") || r.ec != std::errc() || r.ptr != v.data() + v.size() || x < 1) {
          send_error(res, 400, "invalid_parameter",
                     "a ledger export takes from_sequence and to_sequence (integers from 1) and no filters: " + k);
          return;
        }
        (k == "from_sequence" ? from : to) = x;
      }
      switch (reader_->open_chain(tenant, from, to, export_format::ledger, opened, &error)) {
        case read_status::ok: break;
        case read_status::invalid: send_error(res, 400, "invalid_parameter", error); return;
        default: unavailable(res, ctx, error); return;
      }
    }
    for (const char* paging : {"page_size", "page_token", "after_sequence", "order"})
      if (params.count(paging)) {
        send_error(res, 400, "invalid_parameter", std::string(paging) + ": an export has no pages; it streams every match");
        return;
      }
    event_query q;
    if (format != export_format::ledger) {
      if (auto err = parse_event_query(params, tenant, now_unix_us(), q)) {
        send_error(res, 400, err->code.c_str(), err->message);
        return;
      }
      switch (reader_->open_export(q, format, opened, &error)) {
        case read_status::ok: break;
        case read_status::invalid: send_error(res, 400, "invalid_parameter", error); return;
        default: unavailable(res, ctx, error); return;
      }
    }
    if (!recorded(req, res, ctx, tenant, "audit.events.export", -1)) return;
    std::shared_ptr<export_cursor> cursor(std::move(opened));
    const std::string name = tenant + (format == export_format::ledger ? "-ledger.ndjson"
                                       : format == export_format::csv  ? "-events.csv"
                                                                       : "-events.ndjson");
    res.set_header("Content-Disposition", "attachment; filename=\"" + name + "\"");
    res.status = 200;
    const std::string id = ctx.id;
    res.set_chunked_content_provider(
        format == export_format::csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
        [cursor, id](size_t, http_sink& sink) {
          std::string why;
          const bool whole = cursor->stream(
              [&sink](std::string_view chunk) { return sink.is_writable() && sink.write(chunk.data(), chunk.size()); }, &why);
          if (!whole) {
            // The response ends without its last chunk: the client sees a cut transfer, never a short file.
            log::limited(log::level::warn, "api", "export ended early", {{"request_id", id}, {"rows", static_cast<int64_t>(cursor->rows())}, {"error", why}});
            return false;
          }
          sink.done();
          return true;
        });
  });

  // One event (`diff`: its ChangeSet): admitted, its sequence parsed.
  auto one_event = [=, this](const Request& req, Response& res, bool diff) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    if (!this->admit(req, res, tenant, scope_read, ctx)) return;
    if (!req.params.empty()) {
      send_error(res, 400, "unknown_parameter", "this route takes no query parameters");
      return;
    }
    int64_t sequence = 0;
    const std::string text = req.matches[2];
    const auto r = std::from_chars(text.data(), text.data() + text.size(), sequence);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size() || sequence < 1) {
      send_error(res, 400, "invalid_sequence", "an event is named by its sequence, an integer from 1");
      return;
    }
    stored_event ev;
    std::string error;
    switch (reader_->read(tenant, sequence, ev, &error)) {
      case read_status::ok: break;
      case read_status::not_found: send_error(res, 404, "not_found", "no event " + text + " in tenant " + tenant); return;
      case read_status::invalid: send_error(res, 400, "invalid_parameter", error); return;
      default: unavailable(res, ctx, error); return;
    }
    if (!recorded(req, res, ctx, tenant, diff ? "audit.events.diff" : "audit.events.get", 1)) return;
    std::string body;
    if (diff) {
      const auto changes = ev.event.opt(event_field::changes);
      if (!render_change_diff(tenant, ev.sequence, changes ? *changes : std::string_view(), body)) {
        unavailable(res, ctx, "the stored changes of event " + text + " are not a JSON object");
        return;
      }
    } else {
      render_committed_event(ev.event, padded_sequence(ev.sequence), format_rfc3339_us(ev.recorded_at_us), body);
    }
    res.status = 200;
    res.set_content(body, "application/json");
  };
  server.Get(R"(/v1/tenants/([^/]+)/events/([^/]+))",
             [one_event](const Request& req, Response& res) { one_event(req, res, false); });
  server.Get(R"(/v1/tenants/([^/]+)/events/([^/]+)/diff)",
             [one_event](const Request& req, Response& res) { one_event(req, res, true); });
}

}  // namespace trail
