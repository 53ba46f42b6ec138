#include "integrity/archive.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <rapidjson/document.h>
#include <unistd.h>
#include <zstd.h>

#include <cstdio>
#include <map>
#include <set>

namespace trail::integrity {
namespace {

std::string hex(const unsigned char* d, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[d[i] >> 4]);
    out.push_back(kHex[d[i] & 0xf]);
  }
  return out;
}

// SHA-256 over bytes given piece by piece.
class sha256_stream {
 public:
  sha256_stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~sha256_stream() { EVP_MD_CTX_free(ctx_); }
  void update(const void* d, size_t n) { EVP_DigestUpdate(ctx_, d, n); }
  std::string hex_digest() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, out, &n);
    return hex(out, n);
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

struct archive_writer::impl {
  int fd = -1;
  ZSTD_CCtx* cctx = nullptr;
  std::vector<char> out;
  sha256_stream sha;
};

archive_writer::archive_writer() : impl_(new impl) {
  impl_->cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(impl_->cctx, ZSTD_c_compressionLevel, 6);
  ZSTD_CCtx_setParameter(impl_->cctx, ZSTD_c_checksumFlag, 1);
  impl_->out.resize(ZSTD_CStreamOutSize());
}

archive_writer::~archive_writer() {
  if (impl_->fd >= 0) ::close(impl_->fd);
  ZSTD_freeCCtx(impl_->cctx);
  delete impl_;
}

bool archive_writer::open(const std::string& path, std::string* error) {
  impl_->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (impl_->fd < 0 && error) *error = "cannot create " + path;
  return impl_->fd >= 0;
}

bool archive_writer::write(const char* data, size_t n, std::string* error) {
  impl_->sha.update(data, n);
  while (n > 0) {
    const ssize_t w = ::write(impl_->fd, data, n);
    if (w <= 0) {
      if (error) *error = "cannot write the archive";
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool archive_writer::flush(int mode, std::string* error) {
  ZSTD_inBuffer in{line_.data(), line_.size(), 0};
  while (true) {
    ZSTD_outBuffer out{impl_->out.data(), impl_->out.size(), 0};
    const size_t left = ZSTD_compressStream2(impl_->cctx, &out, &in, static_cast<ZSTD_EndDirective>(mode));
    if (ZSTD_isError(left)) {
      if (error) *error = std::string("zstd: ") + ZSTD_getErrorName(left);
      return false;
    }
    if (out.pos > 0 && !write(impl_->out.data(), out.pos, error)) return false;
    const bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
    if (done) break;
  }
  line_.clear();
  return true;
}

bool archive_writer::add(const std::string& tenant, int64_t sequence, const chain_hash& prev, const chain_hash& hash,
                         std::string_view canonical_bytes, std::string* error) {
  if (tenants_.empty() || tenants_.back().tenant != tenant) tenants_.push_back({tenant, 0, {}});
  auto& t = tenants_.back();
  if (t.runs.empty() || sequence != t.runs.back().last + 1) t.runs.push_back({sequence, sequence, prev, hash});
  t.runs.back().last = sequence;
  t.runs.back().last_hash = hash;
  ++t.rows;
  ++rows_;
  append_ledger_line(canonical_bytes, prev, hash, line_);
  line_.push_back('\n');
  return line_.size() < (1 << 20) || flush(ZSTD_e_continue, error);
}

bool archive_writer::close(std::string* error) {
  if (!flush(ZSTD_e_end, error)) return false;
  if (::fsync(impl_->fd) != 0 || ::close(impl_->fd) != 0) {
    impl_->fd = -1;
    if (error) *error = "cannot fsync the archive";
    return false;
  }
  impl_->fd = -1;
  sha256_hex_ = impl_->sha.hex_digest();
  return true;
}

std::string manifest_json(std::string_view manifest_note) {
  const size_t split = manifest_note.rfind("\n\n");
  if (split == std::string_view::npos) return "";
  const std::string_view text = manifest_note.substr(0, split + 1);
  if (text.substr(0, kManifestHeader.size() + 1) != std::string(kManifestHeader) + "\n") return "";
  std::string_view json = text.substr(kManifestHeader.size() + 1);
  if (json.empty() || json.back() != '\n' || json.find('\n') != json.size() - 1) return "";
  json.remove_suffix(1);
  return std::string(json);
}

std::string verify_archive(const std::string& path, std::string_view manifest_note, const verifier_key& key,
                           int64_t* rows_out) {
  std::string error;
  std::string_view text;
  switch (open_note(manifest_note, key, text, &error)) {
    case note_status::ok: break;
    case note_status::bad_signature: return "the manifest: bad signature";
    case note_status::unsigned_by_key: return "the manifest is not signed by the key " + encode(key);
    case note_status::malformed: return "the manifest is not a signed note (" + error + ")";
  }
  const std::string json = manifest_json(manifest_note);
  rapidjson::Document m;
  m.Parse(json.c_str());
  if (json.empty() || m.HasParseError() || !m.IsObject() || !m.HasMember("file_sha256") || !m["file_sha256"].IsString() ||
      !m.HasMember("rows") || !m["rows"].IsInt64() || !m.HasMember("tenants") || !m["tenants"].IsArray() ||
      !m.HasMember("partition") || !m["partition"].IsString())
    return "the manifest's text is not an archive manifest";
  const std::string partition = m["partition"].GetString(), file_sha = m["file_sha256"].GetString();

  // What the manifest promises, per tenant: its runs and checkpoints.
  struct promised {
    int64_t rows = 0;
    std::vector<archived_run_note> runs;
    std::map<int64_t, checkpoint> checkpoints;  // by sequence
    bool seen = false;
  };
  std::map<std::string, promised> tenants;
  for (const auto& t : m["tenants"].GetArray()) {
    if (!t.IsObject() || !t.HasMember("tenant") || !t["tenant"].IsString() || !t.HasMember("runs") || !t["runs"].IsArray())
      return "the manifest's text is not an archive manifest";
    const std::string tenant = t["tenant"].GetString();
    auto& p = tenants[tenant];
    p.rows = t.HasMember("rows") && t["rows"].IsInt64() ? t["rows"].GetInt64() : -1;
    for (const auto& r : t["runs"].GetArray()) {
      archived_run_note run;
      if (!r.IsString() ||
          open_archived_run(std::string_view(r.GetString(), r.GetStringLength()), key, run, &error) != note_status::ok)
        return "tenant " + tenant + ": an archived-run note does not verify";
      if (run.origin != checkpoint_origin(key.name, tenant) || run.partition != partition || run.file_sha256 != file_sha)
        return "tenant " + tenant + ": an archived-run note names another log, partition or file";
      p.runs.push_back(run);
    }
    if (t.HasMember("checkpoints") && t["checkpoints"].IsArray())
      for (const auto& c : t["checkpoints"].GetArray()) {
        checkpoint cp;
        if (!c.IsString() ||
            open_checkpoint(std::string_view(c.GetString(), c.GetStringLength()), key, cp, &error) != note_status::ok ||
            cp.origin != checkpoint_origin(key.name, tenant))
          return "tenant " + tenant + ": a checkpoint in the manifest does not verify";
        p.checkpoints[cp.size] = cp;
      }
  }

  // The file: its SHA-256 over the compressed bytes, then its lines.
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "cannot read " + path;
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  sha256_stream sha;
  std::vector<char> in_buf(ZSTD_DStreamInSize()), out_buf(ZSTD_DStreamOutSize());
  std::string pending, problem, current;
  int64_t rows = 0, line_no = 0;
  chain_hash link{};
  int64_t last_seq = 0;
  size_t run_index = 0;
  promised* p = nullptr;
  auto row = [&](std::string_view line) -> bool {
    ++line_no;
    ledger_row r;
    std::string why;
    if (!parse_ledger_line(line, r, &why)) return problem = "line " + std::to_string(line_no) + ": " + why, false;
    const std::string where = "tenant " + r.tenant + ", sequence " + std::to_string(r.sequence);
    if (chain_next(r.prev, r.canonical) != r.hash) return problem = where + ": stored hash differs from recomputed", false;
    if (r.tenant != current) {
      if (p && run_index != p->runs.size()) return problem = "tenant " + current + ": runs missing from the file", false;
      auto it = tenants.find(r.tenant);
      if (it == tenants.end() || it->second.seen) return problem = where + ": a tenant the manifest does not list here", false;
      current = r.tenant;
      p = &it->second;
      p->seen = true;
      run_index = 0;
      last_seq = 0;
    }
    ++rows;
    --p->rows;
    if (last_seq != 0 && r.sequence == last_seq + 1) {
      if (r.prev != link) return problem = where + ": prev_hash does not link to sequence " + std::to_string(last_seq), false;
    } else {  // a run starts
      if (run_index > 0 && p->runs[run_index - 1].last != last_seq)
        return problem = "tenant " + current + ": a run ends at " + std::to_string(last_seq) + ", not where its note says", false;
      if (run_index >= p->runs.size() || p->runs[run_index].first != r.sequence || p->runs[run_index].prev != r.prev)
        return problem = where + ": a run the manifest's notes do not describe", false;
      ++run_index;
    }
    if (auto c = p->checkpoints.find(r.sequence); c != p->checkpoints.end() && c->second.root != r.hash)
      return problem = "checkpoint at sequence " + std::to_string(r.sequence) + " of tenant " + current +
                       " does not match the archive", false;
    const auto& run = p->runs[run_index - 1];
    if (r.sequence == run.last && r.hash != run.last_hash)
      return problem = where + ": the run's last link differs from its note", false;
    link = r.hash;
    last_seq = r.sequence;
    return true;
  };
  bool ok = true;
  size_t n = 0;
  size_t last_ret = 0;
  while (ok && (n = std::fread(in_buf.data(), 1, in_buf.size(), f)) > 0) {
    sha.update(in_buf.data(), n);
    ZSTD_inBuffer in{in_buf.data(), n, 0};
    while (ok && in.pos < in.size) {
      ZSTD_outBuffer out{out_buf.data(), out_buf.size(), 0};
      last_ret = ZSTD_decompressStream(dctx, &out, &in);
      if (ZSTD_isError(last_ret)) {
        problem = std::string("the archive is not a valid zstd stream: ") + ZSTD_getErrorName(last_ret);
        ok = false;
        break;
      }
      pending.append(out_buf.data(), out.pos);
      size_t start = 0;
      for (size_t nl; ok && (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
        ok = row(std::string_view(pending).substr(start, nl - start));
      pending.erase(0, start);
    }
  }
  std::fclose(f);
  ZSTD_freeDCtx(dctx);
  if (!ok) return problem;
  const std::string digest = sha.hex_digest();
  if (digest != file_sha) return "the archive file's SHA-256 differs from its manifest";
  if (last_ret != 0 || !pending.empty()) return "the archive ends before its last frame or line";
  if (p && run_index != p->runs.size()) return "tenant " + current + ": runs missing from the file";
  if (p && p->runs[run_index - 1].last != last_seq) return "tenant " + current + ": its last run ends early";
  for (const auto& [tenant, t] : tenants) {
    if (!t.seen) return "tenant " + tenant + ": listed in the manifest, absent from the file";
    if (t.rows != 0) return "tenant " + tenant + ": the row count differs from the manifest";
  }
  if (rows != m["rows"].GetInt64()) return "the row count differs from the manifest";
  if (rows_out) *rows_out = rows;
  return "";
}

}  // namespace trail::integrity
