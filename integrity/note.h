#pragma once
// Signed checkpoints of a tenant's chain, as C2SP signed notes
// (c2sp.org/signed-note, c2sp.org/tlog-checkpoint) with Ed25519 keys
// (libsodium). docs/INTEGRITY.md, "Checkpoints", defines the text and says
// where Trail departs from the checkpoint spec (the "root hash" is the head
// of a hash chain, not of a Merkle tree; one extension line carries the time).
//
// Key texts follow the encodings the signed-note ecosystem uses:
//   signing key   PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || 32-byte seed)>
//   verifier key  <name>+<key id, 8 hex>+<base64(0x01 || 32-byte public key)>
// with key id = the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key).
//
// Pure and thread-safe.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "decode/canonical.h"

namespace trail::integrity {

struct verifier_key {
  std::string name;
  uint32_t id = 0;
  std::array<uint8_t, 32> public_key{};
};

struct signing_key {
  std::string name;
  uint32_t id = 0;
  std::array<uint8_t, 32> seed{};
  std::array<uint8_t, 32> public_key{};
  std::array<uint8_t, 64> secret{};  // libsodium's expanded form (seed || public key)
  verifier_key verifier() const { return {name, id, public_key}; }
};

// A key name is non-empty UTF-8 without spaces, '+' or control characters.
bool valid_key_name(std::string_view name);

// A fresh key from the system's random source.
std::optional<signing_key> generate_key(std::string_view name, std::string* error);
std::string encode(const signing_key& k);
std::string encode(const verifier_key& k);
// Surrounding whitespace is ignored. nullopt (with `error`) when malformed.
std::optional<signing_key> parse_signing_key(std::string_view text, std::string* error);
std::optional<verifier_key> parse_verifier_key(std::string_view text, std::string* error);

// A checkpoint of one tenant's chain.
struct checkpoint {
  std::string origin;        // "<key name>/<tenant>" for Trail's checkpoints
  int64_t size = 0;          // the tenant's last sequence
  chain_hash root{};         // the link at that sequence
  int64_t time_us = 0;       // when it was signed (the "time" extension line)
};

// The origin of a tenant's checkpoints.
std::string checkpoint_origin(std::string_view key_name, std::string_view tenant);

// A signed note: `text` (ending in a newline), a blank line, one signature line.
std::string sign_note(std::string_view text, const signing_key& key);
// The checkpoint's signed note.
std::string sign_checkpoint(const checkpoint& c, const signing_key& key);

enum class note_status {
  ok,
  malformed,      // not a signed note, or its text not a checkpoint
  unsigned_by_key,  // no signature line of this key (name and id)
  bad_signature,    // the key's signature does not verify
};
const char* to_string(note_status s);

// Verifies `note` with `key`: ok when a signature line of this key (name
// and id) verifies; `text` is the note's text whenever it is not malformed.
note_status open_note(std::string_view note, const verifier_key& key, std::string_view& text, std::string* error);

// Parses and verifies `note` with `key`; fills `out` when the text parses
// (also for a bad signature, so the caller can name the sequence).
note_status open_checkpoint(std::string_view note, const verifier_key& key, checkpoint& out, std::string* error);

}  // namespace trail::integrity
