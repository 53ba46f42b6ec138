#pragma once
// `traild keygen` and `traild verify`: the integrity commands that need
// neither a database nor a broker (docs/INTEGRITY.md).

#include <string>

namespace trail {

// Writes a new Ed25519 signing key named `name` to `out` (created, mode 0600;
// never overwritten) and its verifier key to `out`.pub; prints the verifier key.
int keygen_command(const std::string& name, const std::string& out);

// Verifies a ledger export (`GET …/export?format=ledger`) against the
// checkpoints (`GET …/checkpoints`, or notes one per "note" line of NDJSON)
// with the verifier key (`GET /v1/integrity/public-key`, or its "key" text).
// Prints what it checked or the first broken link; 0 verified, 1 broken,
// 2 unusable input.
int verify_command(const std::string& export_path, const std::string& checkpoints_path,
                   const std::string& public_key_path);

// Verifies a retention archive against its manifest (FILE.manifest) offline.
int verify_archive_command(const std::string& archive_path, const std::string& public_key_path);

}  // namespace trail
