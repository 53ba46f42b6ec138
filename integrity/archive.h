#pragma once
// Retention archives (docs/INTEGRITY.md, "Archives"): a dropped daily
// partition's rows as zstd-compressed ledger lines, ordered by tenant and
// sequence, and a signed manifest beside it. The writer (store/retention.cc)
// and the offline check (`traild verify --archive`) share the format here.
//
// The manifest is a signed note whose text is two lines: "trail.archive.v1
// manifest" and one line of JSON:
//   {"partition", "from", "to", "file", "file_sha256", "rows",
//    "tenants": [{"tenant", "rows", "runs": [<archived-run note>, …],
//                 "checkpoints": [<checkpoint note>, …]}]}
// Each run note (integrity/verify.h) names one run of consecutive sequences
// of one tenant with the links it starts from and ends with; the checkpoints
// are the tenant's stored ones inside its runs and the first one after.
//
// Pure but for file I/O; one call per thread.

#include <cstdint>
#include <string>
#include <vector>

#include "integrity/note.h"
#include "integrity/verify.h"

namespace trail::integrity {

inline constexpr std::string_view kManifestHeader = "trail.archive.v1 manifest";

// Writes an archive: ledger lines in, zstd out, the file's SHA-256 kept as it
// is written; runs of each tenant tracked from the rows' sequences.
class archive_writer {
 public:
  struct tenant_runs {
    std::string tenant;
    int64_t rows = 0;
    struct run {
      int64_t first = 0, last = 0;
      chain_hash prev{}, last_hash{};
    };
    std::vector<run> runs;
  };

  archive_writer();
  ~archive_writer();
  // Creates `path` (not existing yet). False with `error`.
  bool open(const std::string& path, std::string* error);
  // One row, in (tenant, sequence) order.
  bool add(const std::string& tenant, int64_t sequence, const chain_hash& prev, const chain_hash& hash,
           std::string_view canonical_bytes, std::string* error);
  // Ends the stream, fsyncs the file; then `sha256_hex` and `tenants` hold.
  bool close(std::string* error);

  const std::string& sha256_hex() const { return sha256_hex_; }
  const std::vector<tenant_runs>& tenants() const { return tenants_; }
  int64_t rows() const { return rows_; }

 private:
  bool write(const char* data, size_t n, std::string* error);
  bool flush(int mode, std::string* error);
  struct impl;
  impl* impl_;
  std::string line_, sha256_hex_;
  std::vector<tenant_runs> tenants_;
  int64_t rows_ = 0;
};

// Checks an archive against its manifest with `key`: the manifest's
// signature, the file's SHA-256, every row's link recomputed, each tenant's
// runs as their signed notes say, the checkpoints inside the runs met, the
// row counts. "" when it holds, else the first problem in words.
std::string verify_archive(const std::string& path, std::string_view manifest_note, const verifier_key& key,
                           int64_t* rows = nullptr);

// The manifest's JSON (the second line of its note's text), "" when malformed.
std::string manifest_json(std::string_view manifest_note);

}  // namespace trail::integrity
