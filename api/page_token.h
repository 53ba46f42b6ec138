#pragma once
// Page tokens of the query API: opaque to clients, integrity-protected by
// HMAC-SHA256 (OpenSSL), so a client can neither forge a position nor reuse a
// token under other filters. A token carries the last row's keyset position
// (occurred_at in µs and the per-tenant sequence, which breaks ties) and a
// digest of the request's tenant and filters; `decode` refuses a token whose
// MAC, version, order or filter digest does not match.
//
// Layout (version 1, then base64url without padding):
//   version(1) order(1: 'd' newest first, 'a' by sequence) occurred_at_us(8, big endian)
//   sequence(8, big endian) filter_digest(16) mac(16: HMAC-SHA256 of the above, truncated)

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trail {

struct page_position {
  char order = 'd';
  int64_t occurred_at_us = 0;
  int64_t sequence = 0;
};

class page_token_codec {
 public:
  // `secret`: the installation's key (shared by every replica, so that any of
  // them accepts a token another one issued); the MAC key is derived from it.
  explicit page_token_codec(std::string_view secret);

  // `filters`: a canonical text of the tenant and every filter of the request.
  std::string encode(const page_position& p, std::string_view filters) const;
  // nullopt when the token is malformed, forged, or was issued for other filters.
  std::optional<page_position> decode(std::string_view token, std::string_view filters) const;

 private:
  std::array<unsigned char, 32> key_{};
};

// base64url without padding (RFC 4648 §5), through OpenSSL's base64.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace trail
