// Synchronous writes: POST /v1/tenants/{t}/events and …/events:batch. The
// same validation as the stream (decode/event_decoder), then the same
// pipeline: the event is published into the AUDIT stream, and the answer
// waits until the writer has committed it (looked up by its identity as the
// trail_reader role). No second write path to the table.
#include "api/http_types.h"
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <strings.h>

#include <algorithm>
#include <thread>

#include "api/http_reply.h"
#include "api/query_routes.h"
#include "common/log.h"
#include "common/record.h"
#include "common/sha256.h"
#include "common/time.h"
#include "common/uuid.h"
#include "decode/json_limits.h"
#include "sinks/event_rows.h"

namespace trail {
namespace {

using Request = http_request;
using Response = http_response;

constexpr size_t kMaxBatchEvents = 1000;

struct submission {
  std::string body;
  header_list headers;
  std::string source, id;
  // Filled once committed.
  int64_t sequence = 0;
  std::string occurred_at;
  bool already_stored = false;
};

struct refusal {
  std::string code;
  std::string message;
};

// Validates one event as the stream would, for `tenant`, and builds what is
// published: the body and headers as sent, or, for a bare event, a structured
// CloudEvent around it whose id is `key` (or a new UUIDv7), so that the
// event's identity is known before it is published.
std::optional<refusal> prepare(std::string_view body, const header_list& headers, const std::string& tenant,
                               const std::string& key, const decoder_limits& limits, submission& out) {
  const int64_t now = now_unix_us();
  event_decoder decoder(limits);
  message_view view{body, &headers, header_wire_size(headers), 0, now};
  decode_outcome d = decoder.decode(view);
  if (d.rejected) return refusal{to_string(d.rejected->code), d.rejected->message};
  if (d.mode == ingest_mode::batch || d.events.size() != 1)
    return refusal{"batch_invalid", "one event per request; POST …/events:batch takes a list"};
  const audit_event& e = d.events.front();
  if (e.get(event_field::tenant_id) != tenant)
    return refusal{"tenant_mismatch", "the event's tenant_id must be the tenant in the path (" + tenant + ")"};
  if (d.mode != ingest_mode::bare) {
    out.body.assign(body);
    out.headers = headers;
    out.source.assign(e.get(event_field::ce_source));
    out.id.assign(e.get(event_field::ce_id));
    return std::nullopt;
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  const std::string id = key.empty() ? uuid_v7_random() : key;
  const std::string when = format_rfc3339_us(now);
  w.StartObject();
  w.Key("specversion");
  w.String("1.0");
  w.Key("id");
  w.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
  w.Key("source");
  w.String("trail:api");
  w.Key("type");
  w.String("trail.audit.v1");
  w.Key("time");
  w.String(when.c_str());
  w.Key("datacontenttype");
  w.String("application/json");
  w.Key("data");
  w.RawValue(body.data(), body.size(), rapidjson::kObjectType);
  w.EndObject();
  out.body.assign(sb.GetString(), sb.GetSize());
  out.headers = {{"Content-Type", "application/cloudevents+json"}};
  out.source = "trail:api";
  out.id = id;
  // The envelope is checked like any other event (an id too long, say).
  event_decoder again(limits);
  message_view wrapped{out.body, &out.headers, header_wire_size(out.headers), 0, now};
  decode_outcome d2 = again.decode(wrapped);
  if (d2.rejected) return refusal{to_string(d2.rejected->code), d2.rejected->message};
  return std::nullopt;
}

// What a request carries for the decoder: Content-Type and the ce-* headers
// of the CloudEvents HTTP binding (binary mode).
header_list event_headers(const Request& req) {
  header_list h;
  for (const auto& [name, value] : req.headers) {
    const bool ce = name.size() > 3 && (name[0] == 'c' || name[0] == 'C') && (name[1] == 'e' || name[1] == 'E') && name[2] == '-';
    if (ce || strcasecmp(name.c_str(), "Content-Type") == 0) h.emplace_back(name, value);
  }
  return h;
}

}  // namespace

// The broker's duplicate window is one per stream, shared by every tenant:
// the id names the tenant too, so that one tenant's write can never be taken
// for a repeat of another's with the same source and id (or key).
std::string write_msg_id(std::string_view tenant, std::string_view source, std::string_view id) {
  std::string fields;
  for (std::string_view f : {tenant, source, id}) {
    fields += std::to_string(f.size());
    fields += ':';
    fields += f;
  }
  const sha256_digest d = sha256(fields);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "api-";
  for (size_t i = 0; i < 16; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  return out;
}

namespace {

void write_result(rapidjson::Writer<rapidjson::StringBuffer>& w, const std::string& tenant, const submission& s) {
  w.Key("tenant_id");
  w.String(tenant.c_str());
  w.Key("sequence");
  w.Int64(s.sequence);
  w.Key("ce_source");
  w.String(s.source.c_str(), static_cast<rapidjson::SizeType>(s.source.size()));
  w.Key("ce_id");
  w.String(s.id.c_str(), static_cast<rapidjson::SizeType>(s.id.size()));
  w.Key("occurred_at");
  w.String(s.occurred_at.c_str());
  w.Key("already_stored");
  w.Bool(s.already_stored);
}

}  // namespace

void query_routes::install_writes(http_router& server) {
  auto limits = [this] {
    decoder_limits l = opt_.limits;
    if (const size_t broker = max_message_bytes_.load()) l.max_message_bytes = broker;
    return l;
  };
  // Publishes what is not stored yet and waits for every one of `subs` to be
  // committed (their sequences filled), or until commit_wait_ms. Returns how
  // many are committed; `failed[i]` names the ones the broker refused.
  auto commit = [this](const std::string& tenant, std::vector<submission*>& subs, std::vector<std::string>& failed,
                       const std::string& request_id) -> size_t {
    failed.assign(subs.size(), {});
    std::vector<bool> done(subs.size(), false);
    size_t committed = 0;
    std::string error;
    for (size_t i = 0; i < subs.size(); ++i) {
      submission& s = *subs[i];
      if (reader_->find_identity(tenant, s.source, s.id, s.sequence, s.occurred_at, &error) == read_status::ok) {
        s.already_stored = done[i] = true;
        ++committed;
        continue;
      }
      const std::string msg_id = write_msg_id(tenant, s.source, s.id);
      if (!publish_ || !publish_(opt_.events_subject, s.body, s.headers, msg_id, &error)) {
        failed[i] = error.empty() ? "no broker connection" : error;
        done[i] = true;
        log::limited(log::level::warn, "api", "a synchronous write could not be handed to the broker",
                     {{"request_id", request_id}, {"error", failed[i]}});
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt_.commit_wait_ms);
    auto pause = std::chrono::milliseconds(2);
    while (true) {
      for (size_t i = 0; i < subs.size(); ++i) {
        if (done[i]) continue;
        submission& s = *subs[i];
        if (reader_->find_identity(tenant, s.source, s.id, s.sequence, s.occurred_at, &error) == read_status::ok) {
          done[i] = true;
          ++committed;
        }
      }
      if (std::find(done.begin(), done.end(), false) == done.end() || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    return committed;
  };

  // What both routes check first: the caller may write to the tenant, the
  // route takes no query parameters, and the Idempotency-Key fits.
  auto admit_write = [this](const Request& req, Response& res, const std::string& tenant, size_t max_key,
                            request_context& ctx, std::string& key) {
    if (!admit(req, res, tenant, scope_write, ctx)) return false;
    if (!req.params.empty()) {
      send_error(res, 400, "unknown_parameter", "this route takes no query parameters");
      return false;
    }
    key = req.get_header_value("Idempotency-Key");
    if (key.size() > max_key) {
      send_error(res, 400, "invalid_idempotency_key", "Idempotency-Key: at most " + std::to_string(max_key) + " bytes");
      return false;
    }
    return true;
  };

  server.Post(R"(/v1/tenants/([^/]+)/events)", [this, commit, limits, admit_write](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    std::string key;
    if (!admit_write(req, res, tenant, 256, ctx, key)) return;
    submission s;
    if (auto r = prepare(req.body, event_headers(req), tenant, key, limits(), s)) {
      send_error(res, 400, r->code.c_str(), r->message);
      return;
    }
    std::vector<submission*> subs{&s};
    std::vector<std::string> failed;
    const size_t committed = commit(tenant, subs, failed, ctx.id);
    if (!failed[0].empty()) {
      send_error(res, 503, "unavailable", "the broker cannot take the event now; retry with the same id");
      return;
    }
    if (committed == 0) {
      send_error(res, 504, "commit_pending",
                 "the broker stored the event, and it was not committed within " + std::to_string(opt_.commit_wait_ms) +
                     " ms; retry with the same id to learn its sequence");
      return;
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    write_result(w, tenant, s);
    w.EndObject();
    res.status = s.already_stored ? 200 : 201;
    res.set_content(sb.GetString(), sb.GetSize(), "application/json");
  });

  server.Post(R"(/v1/tenants/([^/]+)/events:batch)", [this, commit, limits, admit_write](const Request& req, Response& res) {
    request_context ctx;
    const std::string tenant = req.matches[1];
    std::string key;
    // Each bare event's id is "<key>:<index>", at most 256 bytes.
    if (!admit_write(req, res, tenant, 200, ctx, key)) return;
    // The array is only split, never built: each element goes to the
    // decoder as the bytes that were sent, and the whole body costs its
    // size, whatever its shape (decode/json_limits.h).
    std::vector<std::pair<size_t, size_t>> items;
    std::string why;
    const decoder_limits l = limits();
    if (!split_json_array(req.body, json_bounds{std::max<size_t>(l.max_depth, 8) + 1, kMaxBatchEvents * 4096}, kMaxBatchEvents, items, &why)) {
      send_error(res, 400, "batch_invalid", "the body must be a JSON array of events: " + why);
      return;
    }
    if (items.empty()) {
      send_error(res, 400, "batch_invalid", "a batch holds 1 to " + std::to_string(kMaxBatchEvents) + " events");
      return;
    }
    std::vector<submission> subs(items.size());
    std::vector<std::optional<refusal>> refused(items.size());
    std::vector<submission*> valid;
    const header_list none;
    for (size_t i = 0; i < items.size(); ++i) {
      // A bare event's id: "<Idempotency-Key>:<index>" when the batch has a key.
      const std::string item_key = key.empty() ? std::string() : key + ":" + std::to_string(i);
      refused[i] = prepare(std::string_view(req.body).substr(items[i].first, items[i].second), none, tenant, item_key, l, subs[i]);
      if (!refused[i]) valid.push_back(&subs[i]);
    }
    std::vector<std::string> failed;
    if (!valid.empty()) commit(tenant, valid, failed, ctx.id);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("results");
    w.StartArray();
    size_t v = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      w.StartObject();
      w.Key("index");
      w.Uint64(i);
      w.Key("status");
      if (refused[i]) {
        w.Int(400);
        w.Key("code");
        w.String(refused[i]->code.c_str());
        w.Key("message");
        w.String(refused[i]->message.c_str());
      } else if (!failed[v].empty()) {
        w.Int(503);
        w.Key("code");
        w.String("unavailable");
      } else if (subs[i].sequence == 0) {
        w.Int(504);
        w.Key("code");
        w.String("commit_pending");
      } else {
        w.Int(subs[i].already_stored ? 200 : 201);
        write_result(w, tenant, subs[i]);
      }
      if (!refused[i]) ++v;
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    res.status = 200;
    res.set_content(sb.GetString(), sb.GetSize(), "application/json");
  }, http_route_limits{opt_.max_batch_body_bytes});
}

}  // namespace trail
