#include "api/page_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstring>

namespace trail {
namespace {

constexpr unsigned char kVersion = 1;
constexpr size_t kDigestBytes = 16;
constexpr size_t kMacBytes = 16;
constexpr size_t kBodyBytes = 1 + 1 + 8 + 8 + kDigestBytes;
constexpr size_t kTokenBytes = kBodyBytes + kMacBytes;

void put_be64(unsigned char* p, int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(u >> (56 - 8 * i));
}

int64_t get_be64(const unsigned char* p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];
  return static_cast<int64_t>(u);
}

void mac_of(const std::array<unsigned char, 32>& key, const unsigned char* body, unsigned char* out) {
  unsigned char full[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), body, kBodyBytes, full, &len);
  std::memcpy(out, full, kMacBytes);
}

void filter_digest(std::string_view filters, unsigned char* out) {
  unsigned char full[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(filters.data()), filters.size(), full);
  std::memcpy(out, full, kDigestBytes);
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string in(text);
  for (char& c : in) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (c == '+' || c == '/' || c == '=') return std::nullopt;  // not base64url
  }
  const size_t pad = (4 - in.size() % 4) % 4;
  in.append(pad, '=');
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zero bytes
  return out;
}

page_token_codec::page_token_codec(std::string_view secret) {
  static constexpr std::string_view kLabel = "trail page token v1";
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(kLabel.data()),
       kLabel.size(), key_.data(), &len);
}

std::string page_token_codec::encode(const page_position& p, std::string_view filters) const {
  unsigned char t[kTokenBytes];
  t[0] = kVersion;
  t[1] = static_cast<unsigned char>(p.order);
  put_be64(t + 2, p.occurred_at_us);
  put_be64(t + 10, p.sequence);
  filter_digest(filters, t + 18);
  mac_of(key_, t, t + kBodyBytes);
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(t), sizeof t));
}

std::optional<page_position> page_token_codec::decode(std::string_view token, std::string_view filters) const {
  if (token.size() > 2 * kTokenBytes) return std::nullopt;
  const auto raw = base64url_decode(token);
  if (!raw || raw->size() != kTokenBytes) return std::nullopt;
  const auto* t = reinterpret_cast<const unsigned char*>(raw->data());
  unsigned char mac[kMacBytes];
  mac_of(key_, t, mac);
  if (CRYPTO_memcmp(mac, t + kBodyBytes, kMacBytes) != 0) return std::nullopt;
  unsigned char digest[kDigestBytes];
  filter_digest(filters, digest);
  if (t[0] != kVersion || (t[1] != 'd' && t[1] != 'a') || std::memcmp(digest, t + 18, kDigestBytes) != 0) return std::nullopt;
  return page_position{static_cast<char>(t[1]), get_be64(t + 2), get_be64(t + 10)};
}

}  // namespace trail
