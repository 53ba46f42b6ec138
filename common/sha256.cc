#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <memory>

namespace trail {
namespace {

const EVP_MD* algorithm() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!md) std::abort();  // OpenSSL without SHA-256: nothing Trail can do
  return md;
}

struct ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

sha256_digest sha256(std::string_view data) {
  thread_local std::unique_ptr<EVP_MD_CTX, ctx_free> ctx(EVP_MD_CTX_new());
  sha256_digest out;
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex2(ctx.get(), algorithm(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 || EVP_DigestFinal_ex(ctx.get(), out.data(), &n) != 1)
    std::abort();
  return out;
}

}  // namespace trail
