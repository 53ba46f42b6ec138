#pragma once
// An event's canonical bytes: the one serialization of a stored row that its
// hash covers (docs/INTEGRITY.md defines it precisely enough to re-implement).
// The writer computes them from the typed event it is about to store; a
// verifier computes them from the row PostgreSQL gives back. Both must agree
// byte for byte, although PostgreSQL re-renders what it stores: jsonb orders
// keys its own way, drops insignificant whitespace and prints numbers as its
// numeric type does ("1e3" comes back as "1000"), and inet prints addresses
// in its own form. So every JSON value is put in one canonical form (sorted
// keys, PostgreSQL's number text) and every address in PostgreSQL's form.
//
// Pure; used by writer threads and by verifiers.

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "decode/audit_event.h"

namespace trail {

// The first bytes of every event's canonical bytes: the format and its version.
inline constexpr std::string_view kCanonicalEventPrefix = "trail.event.v1\n";

// Appends `json` (one JSON value) in canonical form: no whitespace; object
// members sorted by the bytes of their UTF-8 keys, of duplicate keys only the
// last; strings with only `"`, `\` and control characters escaped (\b \f \n
// \r \t, others \u00xx); numbers as numeric_text() prints them. False, with
// `out` as it was, when `json` is not one JSON value.
bool append_canonical_json(std::string_view json, std::string& out);

// The canonical form of a JSON object with its top-level members named in
// `drop` left out; `removed[i]` receives the canonical value of `drop[i]`
// (empty when absent). False when `json` is not one JSON object.
bool append_canonical_json_without(std::string_view json, const std::vector<std::string_view>& drop, std::string& out,
                                   std::vector<std::string>& removed);

// A SAX handler (RapidJSON's interface: `value.Accept(writer)`) that writes
// canonical JSON into `out`, as append_canonical_json would write the JSON
// RapidJSON's Writer prints for the same events (numbers as the Writer
// prints them, then as numeric_text). One at a time per thread.
class canonical_json_writer {
 public:
  explicit canonical_json_writer(std::string& out);
  ~canonical_json_writer();
  canonical_json_writer(const canonical_json_writer&) = delete;
  canonical_json_writer& operator=(const canonical_json_writer&) = delete;
  bool Null();
  bool Bool(bool b);
  bool Int(int i);
  bool Uint(unsigned u);
  bool Int64(int64_t i);
  bool Uint64(uint64_t u);
  bool Double(double d);
  bool RawNumber(const char* s, unsigned n, bool copy = false);
  bool String(const char* s, unsigned n, bool copy = false);
  bool StartObject();
  bool Key(const char* s, unsigned n, bool copy = false);
  bool EndObject(unsigned members);
  bool StartArray();
  bool EndArray(unsigned elements);

 private:
  struct impl;
  impl* impl_;
};

// A JSON number as PostgreSQL's numeric type prints it: no exponent, no sign
// on zero, no leading zeros, the fraction digits the input had less the
// exponent ("1e3" → "1000", "1.50" → "1.50", "15e-1" → "1.5", "-0.0" →
// "0.0"). `number` must match JSON's number grammar.
std::string numeric_text(std::string_view number);

// An IPv4 or IPv6 address as PostgreSQL's inet prints a host address
// (IPv6 in lower case with its longest run of zero groups compressed). The
// text as given when it is neither.
std::string canonical_ip(std::string_view ip);

// Appends the event's canonical bytes: kCanonicalEventPrefix, then one
// canonical JSON object holding every column of its audit.events row (absent
// optional columns as null; JSON columns as canonical JSON values; times as
// RFC 3339 UTC with six fraction digits). False when a JSON column is not JSON.
// `extra_at`, when given, receives where in `out` the canonical value of the
// `extra` column was written (offset and length; length 0 when it is null),
// so that a writer can store that text rather than render it again.
bool append_canonical_event(const audit_event& e, int64_t sequence, int64_t recorded_at_us, std::string& out,
                            std::pair<size_t, size_t>* extra_at = nullptr);

// ---- the hash chain (docs/INTEGRITY.md, "The chain") ----

// One link of a tenant's chain: SHA-256 of the previous link followed by the
// event's canonical bytes. A tenant's first event chains from 32 zero bytes.
using chain_hash = std::array<uint8_t, 32>;
inline constexpr chain_hash kChainGenesis{};

// SHA-256(prev || canonical).
chain_hash chain_next(const chain_hash& prev, std::string_view canonical);

// The event's link, computed in `scratch` (reused between calls). False when
// append_canonical_event fails.
bool chain_event(const chain_hash& prev, const audit_event& e, int64_t sequence, int64_t recorded_at_us,
                 std::string& scratch, chain_hash& out, std::pair<size_t, size_t>* extra_at = nullptr);

// 64 lower-case hex digits, and back (nullopt unless exactly 64 hex digits).
std::string to_hex(const chain_hash& h);
std::optional<chain_hash> chain_hash_from_hex(std::string_view hex);

}  // namespace trail
