#include "integrity/note.h"

#include <openssl/sha.h>
#include <sodium.h>

#include <charconv>
#include <vector>

#include "common/time.h"

namespace trail::integrity {
namespace {

constexpr uint8_t kEd25519 = 0x01;                 // signed-note's signature type of Ed25519
constexpr std::string_view kDash = "\xe2\x80\x94 ";  // U+2014 EM DASH, then a space

bool sodium_ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

std::string base64(const uint8_t* data, size_t n) {
  std::string out(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), data, n, sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<std::vector<uint8_t>> unbase64(std::string_view text) {
  std::vector<uint8_t> out(text.size());
  size_t n = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &n, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size())
    return std::nullopt;
  out.resize(n);
  return out;
}

uint32_t key_id(std::string_view name, const std::array<uint8_t, 32>& public_key) {
  std::string input(name);
  input.push_back('\n');
  input.push_back(static_cast<char>(kEd25519));
  input.append(reinterpret_cast<const char*>(public_key.data()), public_key.size());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return static_cast<uint32_t>(digest[0]) << 24 | static_cast<uint32_t>(digest[1]) << 16 |
         static_cast<uint32_t>(digest[2]) << 8 | digest[3];
}

std::string hex8(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

std::optional<uint32_t> parse_hex8(std::string_view s) {
  uint32_t v = 0;
  if (s.size() != 8) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "<name>+<id>+<base64(0x01 || 32 bytes)>" → name, id, the 32 bytes.
bool parse_key_text(std::string_view text, std::string& name, uint32_t& id, std::array<uint8_t, 32>& bytes,
                    std::string* error) {
  // A name has no '+', the base64 of the key may: split at the first two.
  const size_t mid = text.find('+');
  const size_t last = mid == std::string_view::npos ? mid : text.find('+', mid + 1);
  if (last == std::string_view::npos) {
    if (error) *error = "not a key: expected <name>+<key id>+<key>";
    return false;
  }
  name.assign(text.substr(0, mid));
  const auto parsed_id = parse_hex8(text.substr(mid + 1, last - mid - 1));
  const auto raw = unbase64(text.substr(last + 1));
  if (!valid_key_name(name) || !parsed_id || !raw || raw->size() != 33 || (*raw)[0] != kEd25519) {
    if (error) *error = "not an Ed25519 key of the signed-note format";
    return false;
  }
  id = *parsed_id;
  std::copy(raw->begin() + 1, raw->end(), bytes.begin());
  return true;
}

bool parse_decimal(std::string_view s, int64_t& v) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v >= 0;
}

std::string checkpoint_text(const checkpoint& c) {
  std::string text = c.origin + "\n" + std::to_string(c.size) + "\n" + base64(c.root.data(), c.root.size()) + "\n";
  text += "time " + format_rfc3339_us(c.time_us) + "\n";
  return text;
}

}  // namespace

bool valid_key_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c == '+' || c == 0x7f) return false;
  return true;
}

std::optional<signing_key> generate_key(std::string_view name, std::string* error) {
  if (!sodium_ready()) {
    if (error) *error = "libsodium cannot be initialized";
    return std::nullopt;
  }
  if (!valid_key_name(name)) {
    if (error) *error = "a key name is non-empty, without spaces or '+'";
    return std::nullopt;
  }
  signing_key k;
  k.name.assign(name);
  randombytes_buf(k.seed.data(), k.seed.size());
  crypto_sign_seed_keypair(k.public_key.data(), k.secret.data(), k.seed.data());
  k.id = key_id(k.name, k.public_key);
  return k;
}

std::string encode(const signing_key& k) {
  uint8_t raw[33];
  raw[0] = kEd25519;
  std::copy(k.seed.begin(), k.seed.end(), raw + 1);
  std::string out = "PRIVATE+KEY+" + k.name + "+" + hex8(k.id) + "+" + base64(raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
  return out;
}

std::string encode(const verifier_key& k) {
  uint8_t raw[33];
  raw[0] = kEd25519;
  std::copy(k.public_key.begin(), k.public_key.end(), raw + 1);
  return k.name + "+" + hex8(k.id) + "+" + base64(raw, sizeof raw);
}

std::optional<signing_key> parse_signing_key(std::string_view text, std::string* error) {
  if (!sodium_ready()) {
    if (error) *error = "libsodium cannot be initialized";
    return std::nullopt;
  }
  text = trim(text);
  constexpr std::string_view kPrefix = "PRIVATE+KEY+";
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    if (error) *error = "not a signing key: it starts with PRIVATE+KEY+ (traild keygen writes one)";
    return std::nullopt;
  }
  signing_key k;
  if (!parse_key_text(text.substr(kPrefix.size()), k.name, k.id, k.seed, error)) return std::nullopt;
  crypto_sign_seed_keypair(k.public_key.data(), k.secret.data(), k.seed.data());
  if (key_id(k.name, k.public_key) != k.id) {
    if (error) *error = "the signing key's id does not match its name and key";
    return std::nullopt;
  }
  return k;
}

std::optional<verifier_key> parse_verifier_key(std::string_view text, std::string* error) {
  verifier_key k;
  if (!parse_key_text(trim(text), k.name, k.id, k.public_key, error)) return std::nullopt;
  if (key_id(k.name, k.public_key) != k.id) {
    if (error) *error = "the public key's id does not match its name and key";
    return std::nullopt;
  }
  return k;
}

std::string checkpoint_origin(std::string_view key_name, std::string_view tenant) {
  return std::string(key_name) + "/" + std::string(tenant);
}

std::string sign_note(std::string_view text, const signing_key& key) {
  sodium_ready();
  uint8_t sig[4 + crypto_sign_BYTES];
  sig[0] = static_cast<uint8_t>(key.id >> 24);
  sig[1] = static_cast<uint8_t>(key.id >> 16);
  sig[2] = static_cast<uint8_t>(key.id >> 8);
  sig[3] = static_cast<uint8_t>(key.id);
  crypto_sign_detached(sig + 4, nullptr, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                       key.secret.data());
  return std::string(text) + "\n" + std::string(kDash) + key.name + " " + base64(sig, sizeof sig) + "\n";
}

std::string sign_checkpoint(const checkpoint& c, const signing_key& key) { return sign_note(checkpoint_text(c), key); }

const char* to_string(note_status s) {
  switch (s) {
    case note_status::ok: return "ok";
    case note_status::malformed: return "malformed";
    case note_status::unsigned_by_key: return "not signed by this key";
    case note_status::bad_signature: return "bad signature";
  }
  return "?";
}

note_status open_note(std::string_view note, const verifier_key& key, std::string_view& text, std::string* error) {
  sodium_ready();
  auto fail = [&](note_status s, const std::string& why) {
    if (error) *error = why;
    return s;
  };
  // The text ends at the last blank line; the signature lines follow.
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos || note.empty() || note.back() != '\n')
    return fail(note_status::malformed, "not a signed note (no blank line before the signatures)");
  text = note.substr(0, split + 1);
  std::string_view sigs = note.substr(split + 2);
  for (unsigned char c : note)
    if (c < 0x20 && c != '\n') return fail(note_status::malformed, "a signed note has no control characters");
  // Of the signatures, the one by this key (name and id) must verify; others are ignored.
  bool seen = false;
  while (!sigs.empty()) {
    const size_t nl = sigs.find('\n');
    if (nl == std::string_view::npos) return fail(note_status::malformed, "a signature line does not end");
    std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (line.substr(0, kDash.size()) != kDash) return fail(note_status::malformed, "a signature line starts with an em dash");
    line.remove_prefix(kDash.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return fail(note_status::malformed, "a signature line is name and signature");
    const auto raw = unbase64(line.substr(space + 1));
    if (!raw || raw->size() < 4) return fail(note_status::malformed, "a signature is base64 of at least 4 bytes");
    const uint32_t id = static_cast<uint32_t>((*raw)[0]) << 24 | static_cast<uint32_t>((*raw)[1]) << 16 |
                        static_cast<uint32_t>((*raw)[2]) << 8 | (*raw)[3];
    if (line.substr(0, space) != key.name || id != key.id) continue;
    seen = true;
    if (raw->size() != 4 + crypto_sign_BYTES ||
        crypto_sign_verify_detached(raw->data() + 4, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                                    key.public_key.data()) != 0)
      return fail(note_status::bad_signature, "the signature of " + key.name + " does not verify");
  }
  if (!seen) return fail(note_status::unsigned_by_key, "no signature of " + key.name);
  return note_status::ok;
}

note_status open_checkpoint(std::string_view note, const verifier_key& key, checkpoint& out, std::string* error) {
  std::string_view text;
  const note_status signature = open_note(note, key, text, error);
  if (signature == note_status::malformed) return signature;
  auto fail = [&](const std::string& why) {
    if (error) *error = why;
    return note_status::malformed;
  };
  // The checkpoint text: origin, size, root hash, extension lines.
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  if (lines.size() < 3) return fail("a checkpoint has at least three lines");
  out = checkpoint();
  out.origin.assign(lines[0]);
  const auto root = unbase64(lines[2]);
  if (out.origin.empty() || !parse_decimal(lines[1], out.size) || !root || root->size() != out.root.size())
    return fail("not a checkpoint (origin, size, 32-byte root hash)");
  std::copy(root->begin(), root->end(), out.root.begin());
  for (size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) return fail("an extension line is empty");
    if (lines[i].substr(0, 5) == "time ") {
      const auto t = parse_rfc3339_us(lines[i].substr(5));
      if (!t) return fail("the time line is not an RFC 3339 time");
      out.time_us = *t;
    }
  }
  return signature;
}

}  // namespace trail::integrity
