#pragma once
// The query API's routes (/v1/tenants/{tenant}/…) on traild's HTTP server.
// Each request is authenticated (api/auth.h), confined to the tenant in its
// path, and answered with JSON; errors are {"code", "message"} with the
// matching status, and every response carries X-Request-Id, which the log
// line of a failed or refused request names too. Handlers run on
// the API listener's worker threads and block on PostgreSQL (api/ledger_reader.h).

#include <cstdint>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "api/auth.h"
#include "api/http_types.h"
#include "api/ledger_reader.h"
#include "api/page_token.h"
#include "decode/event_decoder.h"
#include "decode/message.h"
#include "integrity/note.h"


namespace trail {

// Publishes one message into the AUDIT stream and waits until the broker has
// stored it (ingest/event_publisher.h does, on its own connection).
using publish_fn = std::function<bool(const std::string& subject, std::string_view body, const header_list& headers,
                                      const std::string& msg_id, std::string* error)>;

enum class meta_audit_mode { required, best_effort };

// Reads, in order, the bodies of a stream's messages on one subject stored
// since a time (ingest/event_publisher.h's read_subject).
using read_subject_fn = std::function<bool(const std::string& stream, const std::string& subject, int64_t since_us,
                                           const std::function<bool(std::string_view)>& each, std::string* error)>;

// Calls `wake` for each message on `subject` until the handle is released
// (ingest/event_publisher.h's watch); null when it cannot now.
using watch_fn = std::function<std::shared_ptr<void>(const std::string& subject, std::function<void()> wake)>;

// What the integrity routes need (api/integrity_routes.cc).
struct integrity_access {
  std::optional<integrity::verifier_key> key;  // none: checkpoints are neither served nor checked
  std::string checkpoint_stream;               // the broker's copies (against=broker)
  std::string checkpoint_prefix;
  read_subject_fn read_broker;
};

struct route_options {
  decoder_limits limits;               // what a synchronous write may be (the stream's own limits)
  std::string events_subject;          // where synchronous writes and access events are published
  int64_t commit_wait_ms = 0;          // how long a synchronous write waits for its COMMIT
  meta_audit_mode meta_audit = meta_audit_mode::required;
  std::string via;                     // recorded in each access event (metadata.via): "mcp" on the MCP loopback
  std::string committed_prefix;        // live streams wake on <prefix>.<tenant> ("": they poll)
  size_t max_streams = 32;             // live streams (events:stream) open at once
  size_t max_streams_per_tenant = 8;   // of which one tenant may hold
  size_t max_batch_body_bytes = 8u << 20;  // the largest body of POST …/events:batch
  int64_t stream_poll_ms = 1000;       // how often a live stream looks without a wake-up
};

class query_routes {
 public:
  // `clock_s`: Unix seconds (tests move it); `reader` may be null when the
  // read side is not configured (then every route answers 503 saying so).
  query_routes(const authenticator& auth, ledger_reader* reader, publish_fn publish, route_options opt,
               std::function<int64_t()> clock_s = {});
  void install(http_router& server);
  // The installation's key, once read from the database: page tokens are
  // issued and accepted from then on (until then, listings answer 503).
  void set_token_secret(const std::string& secret);
  // The broker's max_payload, once connected: a synchronous write whose
  // committed copy could not fit is refused as the stream would refuse it.
  void set_max_message_bytes(size_t n) { max_message_bytes_ = n; }
  // Before install().
  void set_integrity(integrity_access a) { integrity_ = std::move(a); }
  void set_watch(watch_fn w) { watch_ = std::move(w); }
  // Ends every live stream (shutdown): their workers return to the pool.
  void stop_streams() { streams_stopping_ = true; }

 private:
  struct request_context {
    std::string id;  // X-Request-Id, and the id of the request's access event
    principal who;
  };
  // Authenticates and authorizes one request for `tenant` with `needed`
  // scopes; on refusal, answers and returns false.
  bool admit(const http_request& req, http_response& res, const std::string& tenant, unsigned needed,
             request_context& ctx);
  void install_writes(http_router& server);
  void install_integrity(http_router& server);
  void install_stream(http_router& server);
  // Records a read (or a refusal) in the tenant's trail. False when the access
  // event could not be handed to the broker and api.meta_audit is required.
  enum class record_outcome {
    recorded,     // handed to the broker (or skipped: api.meta_audit = best_effort and the broker is away)
    unavailable,  // required, and the broker cannot take it now
    unstorable,   // the record itself would be refused by the pipeline (checked before it is published)
  };
  record_outcome record_access(const request_context& ctx, const std::string& tenant, const std::string& path,
                               const std::string& query, const char* action, int64_t rows, bool denied);
  // A read recorded before its data leaves; when api.meta_audit is required
  // and the record cannot be made, answers 503 and returns false.
  bool recorded(const http_request& req, http_response& res, const request_context& ctx,
                const std::string& tenant, const char* action, int64_t rows);

  const authenticator& auth_;
  ledger_reader* reader_;
  publish_fn publish_;
  const route_options opt_;
  std::atomic<size_t> max_message_bytes_{0};
  integrity_access integrity_;
  watch_fn watch_;
  std::atomic<bool> streams_stopping_{false};
  std::mutex streams_mu_;  // guards the two below
  size_t streams_open_ = 0;
  std::map<std::string, size_t> streams_by_tenant_;
  std::function<int64_t()> clock_s_;
  std::shared_ptr<const page_token_codec> tokens() const;
  mutable std::mutex tokens_mu_;
  std::shared_ptr<const page_token_codec> tokens_;
};

// api/openapi.json, compiled in: served at GET /v1/openapi.json.
std::string_view openapi_document();

// The broker message id of a synchronous write: the event's identity within
// its tenant, so that no two tenants' writes share one.
std::string write_msg_id(std::string_view tenant, std::string_view source, std::string_view id);


}  // namespace trail
