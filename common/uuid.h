#pragma once
#include <cstdint>
#include <string>

namespace trail {

// A UUIDv7 (RFC 9562) string. `unix_ms` fills the timestamp; the 74 "random"
// bits come from `entropy`, so the same inputs give the same id. Trail derives
// ids of bare events from their JetStream stream position: a redelivery of the
// same stored message must map to the same identity, or it would be stored twice.
std::string uuid_v7(uint64_t unix_ms, uint64_t entropy_hi, uint64_t entropy_lo);

// A UUIDv7 with fresh random bits (for ids nobody has to reproduce).
std::string uuid_v7_random();

uint64_t mix64(uint64_t x);  // splitmix64 finalizer

}  // namespace trail
