#pragma once
// SHA-256 through OpenSSL with the algorithm fetched once and a context kept
// per thread. OpenSSL 3's one-shot SHA256() looks the algorithm up on every
// call, which cost as much as hashing a 1 KB event; the writers hash every
// event they store (its identity digest and its chain link).

#include <array>
#include <cstdint>
#include <string_view>

namespace trail {

using sha256_digest = std::array<uint8_t, 32>;

sha256_digest sha256(std::string_view data);

}  // namespace trail
