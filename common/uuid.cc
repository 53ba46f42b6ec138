#include "common/uuid.h"

#include <sys/random.h>

#include <chrono>
#include <cstdio>

namespace trail {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string uuid_v7(uint64_t unix_ms, uint64_t hi, uint64_t lo) {
  unsigned char b[16];
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(unix_ms >> (8 * (5 - i)));
  b[6] = static_cast<unsigned char>(0x70 | ((hi >> 8) & 0x0f));
  b[7] = static_cast<unsigned char>(hi);
  b[8] = static_cast<unsigned char>(0x80 | ((lo >> 56) & 0x3f));
  for (int i = 9; i < 16; ++i) b[i] = static_cast<unsigned char>(lo >> (8 * (15 - i)));
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string uuid_v7_random() {
  uint64_t r[2] = {0, 0};
  if (getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
    r[0] = mix64(reinterpret_cast<uintptr_t>(&r));
    r[1] = mix64(r[0]);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return uuid_v7(static_cast<uint64_t>(ms), r[0], r[1]);
}

}  // namespace trail
