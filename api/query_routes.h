#pragma once
// The query API's routes (/v1/tenants/{tenant}/…) on traild's HTTP server.
// Each request is authenticated (api/auth.h), confined to the tenant in its
// path, and answered with JSON; errors are {"code", "message"} with the
// matching status, and every response carries X-Request-Id, which the log
// line of a failed or refused request names too. Handlers run on
// cpp-httplib's worker threads and block on PostgreSQL (api/ledger_reader.h).

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "api/auth.h"
#include "api/ledger_reader.h"
#include "api/page_token.h"

namespace httplib {
class Server;
}

namespace trail {

class query_routes {
 public:
  // `clock_s`: Unix seconds (tests move it); `reader` may be null when the
  // read side is not configured (then every route answers 503 saying so).
  query_routes(const authenticator& auth, ledger_reader* reader, std::function<int64_t()> clock_s = {});
  void install(httplib::Server& server);
  // The installation's key, once read from the database: page tokens are
  // issued and accepted from then on (until then, listings answer 503).
  void set_token_secret(const std::string& secret);

 private:
  const authenticator& auth_;
  ledger_reader* reader_;
  std::function<int64_t()> clock_s_;
  std::shared_ptr<const page_token_codec> tokens() const;
  mutable std::mutex tokens_mu_;
  std::shared_ptr<const page_token_codec> tokens_;
};

// [A-Za-z0-9_:-], 1–128 bytes: what the ingest side accepts as a tenant id.
bool valid_tenant_id(const std::string& t);

}  // namespace trail
