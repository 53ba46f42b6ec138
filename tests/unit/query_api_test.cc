// The read side's pure parts: page tokens, query parsing and its SQL, bearer
// tokens and API keys. No server: the routes themselves are exercised by
// tests/integration/query_api_test.cc against a live stack.
#include <catch2/catch.hpp>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <memory>

#include "api/auth.h"
#include "api/change_diff.h"
#include "api/event_query.h"
#include "api/page_token.h"
#include "common/time.h"

using namespace trail;

namespace {

std::multimap<std::string, std::string> params(std::initializer_list<std::pair<const std::string, std::string>> l) {
  return std::multimap<std::string, std::string>(l);
}

const int64_t kNowUs = *parse_rfc3339_us("2026-11-24T12:00:00Z");

// A key pair made with OpenSSL, as PEM text: {private, public}.
std::pair<std::string, std::string> key_pair(bool ec) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(ec ? EVP_PKEY_EC : EVP_PKEY_RSA, nullptr);
  REQUIRE(ctx);
  REQUIRE(EVP_PKEY_keygen_init(ctx) == 1);
  if (ec) REQUIRE(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1);
  else REQUIRE(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048) == 1);
  EVP_PKEY* key = nullptr;
  REQUIRE(EVP_PKEY_keygen(ctx, &key) == 1);
  auto pem = [key](bool priv) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (priv) PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    else PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  };
  auto out = std::make_pair(pem(true), pem(false));
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
  return out;
}

// A token with these claims, signed by libjwt with `alg` and `key`.
std::string sign(jwt_alg_t alg, const std::string& key, const std::string& claims_json) {
  jwt_t* jwt = nullptr;
  REQUIRE(jwt_new(&jwt) == 0);
  REQUIRE(jwt_add_grants_json(jwt, claims_json.c_str()) == 0);
  REQUIRE(jwt_set_alg(jwt, alg, key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                      static_cast<int>(key.size())) == 0);
  char* s = jwt_encode_str(jwt);
  REQUIRE(s);
  std::string out(s);
  free(s);
  jwt_free(jwt);
  return out;
}

std::string claims(int64_t exp, const std::string& tenant = "\"acme\"", const std::string& scope = "\"audit:read\"") {
  return R"({"sub":"alice","tenant_id":)" + tenant + R"(,"scope":)" + scope + R"(,"exp":)" + std::to_string(exp) + "}";
}

constexpr int64_t kNow = 1795000000;

}  // namespace

TEST_CASE("base64url follows RFC 4648's test vectors, without padding", "[api][token]") {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},          {"f", "Zg"},         {"fo", "Zm8"},
                                                         {"foo", "Zm9v"},   {"foob", "Zm9vYg"},  {"fooba", "Zm9vYmE"},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    CHECK(base64url_encode(plain) == encoded);
    CHECK(base64url_decode(encoded) == std::optional<std::string>(plain));
  }
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK(base64url_decode("-_8") == std::optional<std::string>("\xfb\xff"));
  CHECK_FALSE(base64url_decode("+/8"));  // the other alphabet
  CHECK_FALSE(base64url_decode("Zm9vY"));  // 5 characters cannot be base64
}

TEST_CASE("page tokens: round trip, and refused when forged, re-keyed or reused under other filters", "[api][token]") {
  const page_token_codec codec("installation-secret");
  const page_position p{'d', 1763800000123456, 42};
  const std::string token = codec.encode(p, "filters A");
  auto back = codec.decode(token, "filters A");
  REQUIRE(back);
  CHECK(back->order == 'd');
  CHECK(back->occurred_at_us == p.occurred_at_us);
  CHECK(back->sequence == 42);

  CHECK_FALSE(codec.decode(token, "filters B"));
  CHECK_FALSE(page_token_codec("another installation").decode(token, "filters A"));
  for (size_t i = 0; i < token.size(); ++i) {  // any changed character breaks the MAC (or the encoding)
    std::string forged = token;
    forged[i] = forged[i] == 'A' ? 'B' : 'A';
    CHECK_FALSE(codec.decode(forged, "filters A"));
  }
  CHECK_FALSE(codec.decode("", "filters A"));
  CHECK_FALSE(codec.decode("not a token", "filters A"));
  CHECK_FALSE(codec.decode(std::string(5000, 'A'), "filters A"));
}

TEST_CASE("query parsing: unknown, repeated and malformed parameters are named", "[api][query]") {
  event_query q;
  auto err = parse_event_query(params({{"actor", "x"}, {"severity", "high"}}), "acme", kNowUs, q);
  REQUIRE(err);
  CHECK(err->code == "unknown_parameter");
  CHECK_THAT(err->message, Catch::Contains("actor") && Catch::Contains("severity"));

  std::multimap<std::string, std::string> twice{{"actor_id", "a"}, {"actor_id", "b"}};
  err = parse_event_query(twice, "acme", kNowUs, q);
  REQUIRE(err);
  CHECK_THAT(err->message, Catch::StartsWith("actor_id"));

  for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"page_size", "0"}, {"page_size", "1001"}, {"page_size", "ten"}, {"from", "yesterday"}, {"last", "24x"},
           {"outcome", "maybe"}, {"severities", "high"}, {"after_sequence", "-1"}, {"order", "sideways"}, {"severities", ","}, {"ce_source", "svc"}}) {
    err = parse_event_query(params({{name, value}}), "acme", kNowUs, q);
    INFO(name << "=" << value);
    REQUIRE(err);
    CHECK(err->code == "invalid_parameter");
  }
  err = parse_event_query(params({{"from", "2026-11-24T00:00:00Z"}, {"to", "2026-11-23T00:00:00Z"}}), "acme", kNowUs, q);
  REQUIRE(err);
  err = parse_event_query(params({{"after_sequence", "5"}, {"order", "desc"}}), "acme", kNowUs, q);
  REQUIRE(err);
}

TEST_CASE("query parsing: short forms, relative time, catch-up", "[api][query]") {
  event_query q;
  REQUIRE_FALSE(parse_event_query(params({{"severities", "warning,SEVERITY_CRITICAL"},
                                          {"categories", "security"},
                                          {"actor_type", "user"},
                                          {"outcome", "failure"},
                                          {"last", "24h"},
                                          {"page_size", "10"}}),
                                  "acme", kNowUs, q));
  CHECK(q.severities == std::vector<std::string>{"SEVERITY_WARNING", "SEVERITY_CRITICAL"});
  CHECK(q.categories == std::vector<std::string>{"CATEGORY_SECURITY"});
  CHECK(q.equals.at("actor_type") == "ACTOR_TYPE_USER");
  CHECK(q.equals.at("outcome") == "FAILURE");
  CHECK(q.from_us == kNowUs - 24LL * 3600 * 1000000);
  CHECK(q.page_size == 10);
  CHECK_FALSE(q.by_sequence);

  REQUIRE_FALSE(parse_event_query(params({{"after_sequence", "17"}, {"order", "asc"}}), "acme", kNowUs, q));
  CHECK(q.by_sequence);
  CHECK(q.after_sequence == 17);
  CHECK(q.page_size == kDefaultPageSize);
}

TEST_CASE("a page token is bound to the tenant, the order and the filters, not to the page size", "[api][query]") {
  event_query a, b;
  REQUIRE_FALSE(parse_event_query(params({{"actions", "x,y"}, {"page_size", "5"}}), "acme", kNowUs, a));
  REQUIRE_FALSE(parse_event_query(params({{"actions", "y,x"}, {"page_size", "50"}}), "acme", kNowUs, b));
  CHECK(filter_fingerprint(a) == filter_fingerprint(b));
  REQUIRE_FALSE(parse_event_query(params({{"actions", "x,y"}}), "other", kNowUs, b));
  CHECK(filter_fingerprint(a) != filter_fingerprint(b));
  REQUIRE_FALSE(parse_event_query(params({{"actions", "x"}}), "acme", kNowUs, b));
  CHECK(filter_fingerprint(a) != filter_fingerprint(b));
  REQUIRE_FALSE(parse_event_query(params({{"actions", "x,y"}, {"order", "asc"}}), "acme", kNowUs, b));
  CHECK(filter_fingerprint(a) != filter_fingerprint(b));
}

TEST_CASE("listing statements: tenant first, values as parameters, keyset without OFFSET", "[api][query]") {
  event_query q;
  REQUIRE_FALSE(parse_event_query(params({{"actor_id", "bob'; DROP TABLE x"}, {"severities", "error"}}), "acme", kNowUs, q));
  q.after = page_position{'d', 1763800000000000, 9};
  const sql_statement s = listing_sql(q, "e.sequence");
  CHECK_THAT(s.text, Catch::Contains("WHERE e.tenant_id = $1"));
  CHECK_THAT(s.text, Catch::Contains("(e.occurred_at, e.sequence) <"));
  CHECK_THAT(s.text, Catch::Contains("ORDER BY e.occurred_at DESC, e.sequence DESC LIMIT 51"));
  CHECK_THAT(s.text, !Catch::Contains("OFFSET") && !Catch::Contains("bob"));
  CHECK(s.params.front() == "acme");
  CHECK(std::find(s.params.begin(), s.params.end(), "bob'; DROP TABLE x") != s.params.end());

  REQUIRE_FALSE(parse_event_query(params({{"after_sequence", "100"}}), "acme", kNowUs, q));
  const sql_statement c = listing_sql(q, "e.sequence");
  CHECK_THAT(c.text, Catch::Contains("FROM audit.event_ids i JOIN audit.events e"));
  CHECK_THAT(c.text, Catch::Contains("ORDER BY i.sequence LIMIT 51"));
}

TEST_CASE("bearer tokens: HS256 accepted with its claims, and expired, early, re-signed and alg none refused", "[api][auth]") {
  auth_options o;
  o.hs256_secret = "dev-secret-0123456789";
  const authenticator auth(o);
  auth_failure why;

  auto p = auth.authenticate("Bearer " + issue_hs256_token(o.hs256_secret, "alice", {"acme", "beta"}, scope_read | scope_export, kNow, 3600),
                             kNow, &why);
  REQUIRE(p);
  CHECK(p->subject == "alice");
  CHECK(p->kind == "jwt");
  CHECK(p->may_access("acme"));
  CHECK(p->may_access("beta"));
  CHECK_FALSE(p->may_access("gamma"));
  CHECK(p->scopes == (scope_read | scope_export));

  auto op = auth.authenticate("Bearer " + sign(JWT_ALG_HS256, o.hs256_secret, claims(kNow + 60, "\"*\"", "[\"audit:admin\",\"audit:read\"]")), kNow, &why);
  REQUIRE(op);
  CHECK(op->all_tenants);
  CHECK(op->scopes == (scope_admin | scope_read));

  // Expired beyond the leeway, and not yet valid.
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_HS256, o.hs256_secret, claims(kNow - 61)), kNow, &why));
  CHECK_THAT(why.message, Catch::Contains("expired"));
  CHECK(auth.authenticate("Bearer " + sign(JWT_ALG_HS256, o.hs256_secret, claims(kNow - 30)), kNow, &why));  // within the leeway
  const std::string early = R"({"sub":"a","tenant_id":"acme","exp":)" + std::to_string(kNow + 600) +
                            R"(,"nbf":)" + std::to_string(kNow + 300) + "}";
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_HS256, o.hs256_secret, early), kNow, &why));
  // No exp at all.
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_HS256, o.hs256_secret, R"({"sub":"a","tenant_id":"acme"})"), kNow, &why));
  // Another secret.
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_HS256, "another-secret-0123456789", claims(kNow + 60)), kNow, &why));
  CHECK_THAT(why.message, Catch::Contains("signature"));
  // alg none, with and without a signature part.
  const std::string none_header = base64url_encode(R"({"alg":"none","typ":"JWT"})");
  const std::string payload = base64url_encode(claims(kNow + 60));
  CHECK_FALSE(auth.authenticate("Bearer " + none_header + "." + payload + ".", kNow, &why));
  CHECK_THAT(why.message, Catch::Contains("none"));
  CHECK_FALSE(auth.authenticate("Bearer " + none_header + "." + payload, kNow, &why));
  // A signature moved onto other claims.
  const std::string good = sign(JWT_ALG_HS256, o.hs256_secret, claims(kNow + 60));
  const std::string other = sign(JWT_ALG_HS256, o.hs256_secret, claims(kNow + 60, "\"other\""));
  const std::string spliced = good.substr(0, good.find('.')) + other.substr(other.find('.'), other.rfind('.') - other.find('.')) +
                              good.substr(good.rfind('.'));
  CHECK_FALSE(auth.authenticate("Bearer " + spliced, kNow, &why));
  // HS384 is not configured, whatever its key.
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_HS384, o.hs256_secret, claims(kNow + 60)), kNow, &why));
  // Malformed headers.
  CHECK_FALSE(auth.authenticate("", kNow, &why));
  CHECK_FALSE(auth.authenticate("Basic abc", kNow, &why));
  CHECK_FALSE(auth.authenticate("Bearer ", kNow, &why));
  CHECK_FALSE(auth.authenticate("Bearer a.b.c", kNow, &why));
}

TEST_CASE("bearer tokens: RS256 and ES256 by their public keys, and an HS256 token keyed with the public key refused", "[api][auth]") {
  const auto rsa = key_pair(false);
  const auto ec = key_pair(true);
  auth_options o;
  o.rs256_public_key_pem = rsa.second;
  o.es256_public_key_pem = ec.second;
  const authenticator auth(o);
  auth_failure why;
  CHECK(auth.authenticate("Bearer " + sign(JWT_ALG_RS256, rsa.first, claims(kNow + 60)), kNow, &why));
  CHECK(auth.authenticate("Bearer " + sign(JWT_ALG_ES256, ec.first, claims(kNow + 60)), kNow, &why));
  // The classic confusion: HMAC "signed" with the public key the server holds.
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_HS256, rsa.second, claims(kNow + 60)), kNow, &why));
  CHECK_THAT(why.message, Catch::Contains("HS256"));
  // A key pair the server does not know.
  const auto stranger = key_pair(false);
  CHECK_FALSE(auth.authenticate("Bearer " + sign(JWT_ALG_RS256, stranger.first, claims(kNow + 60)), kNow, &why));
  // An ES256 header over an RS256 signature.
  const std::string rs = sign(JWT_ALG_RS256, rsa.first, claims(kNow + 60));
  const std::string relabeled = base64url_encode(R"({"alg":"ES256","typ":"JWT"})") + rs.substr(rs.find('.'));
  CHECK_FALSE(auth.authenticate("Bearer " + relabeled, kNow, &why));
}

TEST_CASE("API keys: looked up by digest, bound to one tenant and its scopes", "[api][auth]") {
  std::vector<api_key> keys;
  std::string error;
  const std::string text = "# service keys\n\n" + sha256_hex("k-billing-123") + " acme audit:write,audit:read billing service\n";
  REQUIRE(parse_api_keys(text, keys, &error));
  REQUIRE(keys.size() == 1);
  CHECK(keys[0].name == "billing service");
  auth_options o;
  o.api_keys = keys;
  const authenticator auth(o);
  auth_failure why;
  auto p = auth.authenticate("Bearer k-billing-123", kNow, &why);
  REQUIRE(p);
  CHECK(p->kind == "api_key");
  CHECK(p->subject == "api-key:billing service");
  CHECK(p->may_access("acme"));
  CHECK_FALSE(p->may_access("other"));
  CHECK(p->scopes == (scope_write | scope_read));
  CHECK_FALSE(auth.authenticate("Bearer k-billing-124", kNow, &why));

  std::vector<api_key> none;
  CHECK_FALSE(parse_api_keys("abc acme audit:read x\n", none, &error));
  CHECK_THAT(error, Catch::Contains("line 1"));
  CHECK_FALSE(parse_api_keys(sha256_hex("x") + " acme audit:everything x\n", none, &error));
  CHECK_THAT(error, Catch::Contains("audit:everything"));
  CHECK_FALSE(parse_api_keys(sha256_hex("x") + " acme audit:read\n", none, &error));
}

TEST_CASE("with nothing configured, every token is refused", "[api][auth]") {
  const authenticator auth{auth_options{}};
  CHECK_FALSE(auth.configured());
  auth_failure why;
  CHECK_FALSE(auth.authenticate("Bearer " + issue_hs256_token("s", "a", {"acme"}, scope_read, kNow, 60), kNow, &why));
  CHECK_FALSE(auth.authenticate("Bearer some-key", kNow, &why));
}

namespace {
rapidjson::Document diff_of(const std::string& changes) {
  std::string out;
  REQUIRE(render_change_diff("acme", 7, changes, out));
  rapidjson::Document d;
  d.Parse(out.c_str());
  REQUIRE(d.IsObject());
  return d;
}
std::string text_of(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return sb.GetString();
}
}  // namespace

TEST_CASE("diffs: nested objects down to their leaves by JSON pointer, arrays whole, absent sides omitted", "[api][diff]") {
  auto d = diff_of(R"({"old_value":{"plan":"basic","billing":{"card":"visa","limit":10,"tags":["a"]},"a/b":1,"gone":true},)"
                   R"("new_value":{"plan":"pro","billing":{"card":"visa","limit":20,"tags":["a","b"]},"a/b":2,"new~x":null},)"
                   R"("changed_fields":["a/b","billing","gone","new~x","plan"]})");
  CHECK(d["has_changes"].GetBool());
  CHECK(d["sequence"].GetInt64() == 7);
  CHECK(text_of(d["changed_fields"]) == R"(["a/b","billing","gone","new~x","plan"])");
  CHECK(text_of(d["fields"]) ==
        R"([{"field":"/a~1b","old":1,"new":2},)"
        R"({"field":"/billing/limit","old":10,"new":20},)"
        R"({"field":"/billing/tags","old":["a"],"new":["a","b"]},)"
        R"({"field":"/gone","old":true},)"
        R"({"field":"/new~0x","new":null},)"
        R"({"field":"/plan","old":"basic","new":"pro"}])");
}

TEST_CASE("diffs: a created object lists its leaves, an event without changes says so", "[api][diff]") {
  auto created = diff_of(R"({"new_value":{"role":"admin","scope":{"org":"o1"}},"changed_fields":["role","scope"]})");
  CHECK(created["old_value"].IsNull());
  CHECK(text_of(created["fields"]) == R"([{"field":"/role","new":"admin"},{"field":"/scope/org","new":"o1"}])");
  auto scalar = diff_of(R"({"old_value":"on","new_value":"off"})");
  CHECK(text_of(scalar["fields"]) == R"([{"field":"","old":"on","new":"off"}])");
  auto none = diff_of("");
  CHECK_FALSE(none["has_changes"].GetBool());
  CHECK(none["old_value"].IsNull());
  CHECK(none["fields"].Empty());
  std::string out;
  CHECK_FALSE(render_change_diff("acme", 1, "[1,2]", out));
}

#include "api/export_format.h"

TEST_CASE("CSV export: LF record ends become CRLF, line breaks inside quoted fields stay", "[api][export]") {
  crlf_records crlf;
  std::string out;
  // A quoted field spanning two chunks, with a doubled quote and a line break inside.
  crlf.convert("sequence,description\n1,\"said \"\"hi\"\"\nthen", out);
  crlf.convert(" left\",x\n2,plain\n", out);
  CHECK(out == "sequence,description\r\n1,\"said \"\"hi\"\"\nthen left\",x\r\n2,plain\r\n");
  CHECK(crlf.records() == 3);
}

TEST_CASE("CSV export: the select list names every column under its header name", "[api][export]") {
  const std::string& list = csv_select_list();
  for (const char* name : {"AS sequence", "AS occurred_at", "AS recorded_at", "AS ingest_mode", "AS tenant_id", "AS actor_ip",
                           "AS changes", "AS extra"})
    CHECK_THAT(list, Catch::Contains(name));
  CHECK_THAT(list, Catch::Contains("host(e.actor_ip)"));
  event_query q;
  REQUIRE_FALSE(parse_event_query(params({{"actor_id", "it's $1"}}), "acme", kNowUs, q));
  const sql_statement s = csv_copy_sql(q, list);
  CHECK_THAT(s.text, Catch::StartsWith("COPY (SELECT ") && Catch::EndsWith("TO STDOUT WITH (FORMAT csv, HEADER)"));
  CHECK(s.params == std::vector<std::string>{"acme", "it's $1"});  // values stay parameters until the connection escapes them
}
