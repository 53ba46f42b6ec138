#pragma once
// Who is asking: bearer tokens of the query API, checked on every request.
//
//  - JWTs (libjwt, OpenSSL underneath) signed HS256 with the configured
//    secret, RS256 or ES256 with the configured public keys. The algorithm in
//    the token's header picks the key, and only a configured one does: `none`,
//    HS384 and friends, or HS256 when no secret is set, are refused before any
//    signature is looked at (so an RS256 public key can never be used as an
//    HMAC secret). Claims: `sub`; `tenant_id` (a string, a list, or "*" for
//    operators); `scope` (space-separated, or a list) of audit:read,
//    audit:write, audit:export, audit:admin; `exp` and `nbf` within a leeway.
//  - Static API keys for service-to-service writes: the key's SHA-256 is
//    looked up in the configured list, each entry bound to one tenant and its
//    scopes.
//
// Nothing here is ever "off": with no key configured, every token is refused.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trail {

enum scope : unsigned {
  scope_read = 1u << 0,
  scope_write = 1u << 1,
  scope_export = 1u << 2,
  scope_admin = 1u << 3,
};
// "audit:read" -> scope_read; 0 for an unknown name.
unsigned scope_of(std::string_view name);
std::string scope_names(unsigned scopes);  // "audit:read audit:write"

struct principal {
  std::string subject;
  std::string kind;  // "jwt" or "api_key"
  bool all_tenants = false;
  std::vector<std::string> tenants;
  unsigned scopes = 0;
  int64_t valid_until_s = 0;  // a JWT's exp plus the leeway; 0 for an API key (no end)
  bool may_access(std::string_view tenant) const;
};

struct api_key {
  std::string name;
  std::string tenant;
  unsigned scopes = 0;
  std::string sha256_hex;  // of the key as sent
};

struct auth_options {
  std::string hs256_secret;           // empty: HS256 refused
  std::string rs256_public_key_pem;   // empty: RS256 refused
  std::string es256_public_key_pem;   // empty: ES256 refused
  int64_t leeway_s = 60;
  std::vector<api_key> api_keys;
};

// Parses an API keys file: one key per line, "<sha256 hex> <tenant> <scopes,comma-separated> <name>";
// blank lines and lines starting with '#' are skipped. False with `error` naming the line.
bool parse_api_keys(std::string_view text, std::vector<api_key>& out, std::string* error);

struct auth_failure {
  std::string message;  // for the log line; clients get a generic 401
};

class authenticator {
 public:
  explicit authenticator(auth_options opt);
  bool configured() const;
  // `authorization`: the header's value ("Bearer <token>"). `now_s`: Unix time.
  std::optional<principal> authenticate(std::string_view authorization, int64_t now_s, auth_failure* why) const;

 private:
  std::optional<principal> from_jwt(std::string_view token, int64_t now_s, auth_failure* why) const;
  std::optional<principal> from_api_key(std::string_view token, auth_failure* why) const;
  auth_options opt_;
};

// An HS256 token for `traild dev-token` and the tests.
std::string issue_hs256_token(const std::string& secret, const std::string& subject, const std::vector<std::string>& tenants,
                              unsigned scopes, int64_t issued_at_s, int64_t ttl_s);

// Lowercase hex SHA-256 of `text` (API keys are configured by this digest).
std::string sha256_hex(std::string_view text);

}  // namespace trail
