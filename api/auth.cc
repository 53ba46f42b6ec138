#include "api/auth.h"

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdlib>
#include <memory>

#include "api/event_query.h"
#include "api/page_token.h"
#include "decode/json_limits.h"

namespace trail {
namespace {

struct jwt_deleter {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;
struct c_string_deleter {
  void operator()(char* p) const { std::free(p); }
};
using c_string = std::unique_ptr<char, c_string_deleter>;

constexpr std::pair<const char*, unsigned> kScopes[] = {
    {"audit:read", scope_read}, {"audit:write", scope_write}, {"audit:export", scope_export}, {"audit:admin", scope_admin}};

// A token is at most 16 KiB: its header and claims are small, flat objects.
constexpr json_bounds kTokenBounds{16, 4096};

std::nullopt_t deny(auth_failure* why, std::string message) {
  if (why) why->message = std::move(message);
  return std::nullopt;
}

// The `alg` of a compact JWS's header, read before anything else.
std::optional<std::string> header_alg(std::string_view token) {
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto header = base64url_decode(token.substr(0, dot));
  if (!header) return std::nullopt;
  rapidjson::Document d;
  if (!parse_json_bounded(d, *header, kTokenBounds, nullptr) || !d.IsObject()) return std::nullopt;
  auto it = d.FindMember("alg");
  if (it == d.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

bool split_words(const rapidjson::Value& v, std::vector<std::string>& out) {
  if (v.IsString()) {
    std::string_view s(v.GetString(), v.GetStringLength());
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find(' ', start);
      if (end == std::string_view::npos) end = s.size();
      if (end > start) out.emplace_back(s.substr(start, end - start));
      start = end + 1;
    }
    return true;
  }
  if (v.IsArray()) {
    for (const auto& x : v.GetArray()) {
      if (!x.IsString()) return false;
      out.emplace_back(x.GetString(), x.GetStringLength());
    }
    return true;
  }
  return false;
}

}  // namespace

unsigned scope_of(std::string_view name) {
  for (const auto& [n, s] : kScopes)
    if (name == n) return s;
  return 0;
}

std::string scope_names(unsigned scopes) {
  std::string out;
  for (const auto& [n, s] : kScopes)
    if (scopes & s) out += (out.empty() ? "" : " ") + std::string(n);
  return out;
}

bool principal::may_access(std::string_view tenant) const {
  if (all_tenants) return true;
  for (const auto& t : tenants)
    if (t == tenant) return true;
  return false;
}

std::string sha256_hex(std::string_view text) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool parse_api_keys(std::string_view text, std::vector<api_key>& out, std::string* error) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    std::vector<std::string> f;
    size_t start = 0;
    while (start < line.size() && f.size() < 3) {
      size_t end = line.find_first_of(" \t", start);
      if (end == std::string_view::npos) end = line.size();
      if (end > start) f.emplace_back(line.substr(start, end - start));
      start = end + 1;
    }
    std::string name = start < line.size() ? std::string(line.substr(start)) : std::string();
    auto bad = [&](const std::string& why) {
      if (error) *error = "line " + std::to_string(line_no) + ": " + why;
      return false;
    };
    if (f.size() < 3 || name.empty()) return bad("expected \"<sha256 hex> <tenant> <scopes> <name>\"");
    if (f[0].size() != 64 || f[0].find_first_not_of("0123456789abcdef") != std::string::npos)
      return bad("the key's SHA-256 must be 64 lowercase hex digits");
    api_key k{name, f[1], 0, f[0]};
    size_t s = 0;
    while (s <= f[2].size()) {
      size_t e = f[2].find(',', s);
      if (e == std::string::npos) e = f[2].size();
      const std::string one = f[2].substr(s, e - s);
      const unsigned bit = scope_of(one);
      if (!bit) return bad("unknown scope '" + one + "' (audit:read, audit:write, audit:export, audit:admin)");
      k.scopes |= bit;
      s = e + 1;
    }
    out.push_back(std::move(k));
  }
  return true;
}

authenticator::authenticator(auth_options opt) : opt_(std::move(opt)) {}

bool authenticator::configured() const {
  return !opt_.hs256_secret.empty() || !opt_.rs256_public_key_pem.empty() || !opt_.es256_public_key_pem.empty() ||
         !opt_.api_keys.empty();
}

std::optional<principal> authenticator::authenticate(std::string_view authorization, int64_t now_s, auth_failure* why) const {
  static constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty()) return deny(why, "no Authorization header");
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer)
    return deny(why, "the Authorization header is not \"Bearer <token>\"");
  const std::string_view token = authorization.substr(kBearer.size());
  if (token.size() > 16384) return deny(why, "the token is too long");
  // A JWT has two dots; an API key has none.
  if (token.find('.') != std::string_view::npos) return from_jwt(token, now_s, why);
  return from_api_key(token, why);
}

std::optional<principal> authenticator::from_api_key(std::string_view token, auth_failure* why) const {
  const std::string digest = sha256_hex(token);
  for (const auto& k : opt_.api_keys) {
    if (CRYPTO_memcmp(k.sha256_hex.data(), digest.data(), digest.size()) != 0) continue;
    principal p;
    p.subject = "api-key:" + k.name;
    p.kind = "api_key";
    p.tenants = {k.tenant};
    p.scopes = k.scopes;
    return p;
  }
  return deny(why, "unknown API key");
}

std::optional<principal> authenticator::from_jwt(std::string_view token, int64_t now_s, auth_failure* why) const {
  const auto alg = header_alg(token);
  if (!alg) return deny(why, "the token's header is not a JSON object with an alg");
  const std::string* key = nullptr;
  jwt_alg_t expected = JWT_ALG_NONE;
  if (*alg == "HS256" && !opt_.hs256_secret.empty()) key = &opt_.hs256_secret, expected = JWT_ALG_HS256;
  else if (*alg == "RS256" && !opt_.rs256_public_key_pem.empty()) key = &opt_.rs256_public_key_pem, expected = JWT_ALG_RS256;
  else if (*alg == "ES256" && !opt_.es256_public_key_pem.empty()) key = &opt_.es256_public_key_pem, expected = JWT_ALG_ES256;
  if (!key) return deny(why, "the token's alg '" + *alg + "' is not one this server accepts");
  const std::string text(token);
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(key->data()), static_cast<int>(key->size())) != 0 || !raw)
    return deny(why, "the token's signature does not verify");
  jwt_ptr jwt(raw);
  if (jwt_get_alg(jwt.get()) != expected) return deny(why, "the token's alg changed while decoding");
  c_string claims_text(jwt_get_grants_json(jwt.get(), nullptr));
  if (!claims_text) return deny(why, "the token has no claims");
  rapidjson::Document claims;
  if (!parse_json_bounded(claims, claims_text.get(), kTokenBounds, nullptr) || !claims.IsObject())
    return deny(why, "the token's claims are not a JSON object");
  auto member = [&claims](const char* name) -> const rapidjson::Value* {
    auto it = claims.FindMember(name);
    return it == claims.MemberEnd() ? nullptr : &it->value;
  };
  const auto* exp = member("exp");
  if (!exp || !exp->IsNumber()) return deny(why, "the token has no exp");
  if (static_cast<int64_t>(exp->GetDouble()) + opt_.leeway_s < now_s) return deny(why, "the token has expired");
  if (const auto* nbf = member("nbf")) {
    if (!nbf->IsNumber()) return deny(why, "the token's nbf is not a number");
    if (static_cast<int64_t>(nbf->GetDouble()) - opt_.leeway_s > now_s) return deny(why, "the token is not valid yet");
  }
  principal p;
  p.kind = "jwt";
  const auto* sub = member("sub");
  if (!sub || !sub->IsString() || sub->GetStringLength() == 0) return deny(why, "the token has no sub");
  p.subject.assign(sub->GetString(), sub->GetStringLength());
  p.valid_until_s = static_cast<int64_t>(exp->GetDouble()) + opt_.leeway_s;
  // tenant_id is one tenant id (or "*"), or a list of them. A string is never
  // split: "acme *" is malformed, not a grant of every tenant.
  const auto* tenant = member("tenant_id");
  std::vector<std::string> tenants;
  if (tenant && tenant->IsString()) tenants.emplace_back(tenant->GetString(), tenant->GetStringLength());
  else if (tenant && tenant->IsArray())
    for (const auto& t : tenant->GetArray()) {
      if (!t.IsString()) return deny(why, "the token's tenant_id list holds something other than strings");
      tenants.emplace_back(t.GetString(), t.GetStringLength());
    }
  if (tenants.empty()) return deny(why, "the token's tenant_id is missing, empty, or not a string or list of strings");
  for (auto& t : tenants) {
    if (t == "*") p.all_tenants = true;
    else if (valid_tenant_id(t)) p.tenants.push_back(std::move(t));
    else return deny(why, "the token's tenant_id holds a malformed tenant id");
  }
  std::vector<std::string> scopes;
  if (const auto* sc = member("scope"); sc && !split_words(*sc, scopes))
    return deny(why, "the token's scope is not a string or list of strings");
  for (const auto& s : scopes) p.scopes |= scope_of(s);  // scopes of other services are ignored
  return p;
}

std::string issue_hs256_token(const std::string& secret, const std::string& subject, const std::vector<std::string>& tenants,
                              unsigned scopes, int64_t issued_at_s, int64_t ttl_s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("sub");
  w.String(subject.c_str());
  w.Key("tenant_id");
  if (tenants.size() == 1) {
    w.String(tenants[0].c_str());
  } else {
    w.StartArray();
    for (const auto& t : tenants) w.String(t.c_str());
    w.EndArray();
  }
  w.Key("scope");
  w.String(scope_names(scopes).c_str());
  w.Key("iat");
  w.Int64(issued_at_s);
  w.Key("exp");
  w.Int64(issued_at_s + ttl_s);
  w.EndObject();
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return {};
  jwt_ptr jwt(raw);
  if (jwt_add_grants_json(jwt.get(), sb.GetString()) != 0) return {};
  if (jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 0)
    return {};
  c_string out(jwt_encode_str(jwt.get()));
  return out ? std::string(out.get()) : std::string();
}

}  // namespace trail
