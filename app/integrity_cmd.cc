#include "app/integrity_cmd.h"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "common/time.h"
#include "integrity/archive.h"
#include "integrity/note.h"
#include "integrity/verify.h"

namespace trail {
namespace {

bool read_all(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

bool write_new(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "traild: %s\n", message.c_str());
  return 2;
}

}  // namespace

int keygen_command(const std::string& name, const std::string& out) {
  std::string error;
  const auto key = integrity::generate_key(name, &error);
  if (!key) return fail("keygen: " + error);
  const std::string verifier = integrity::encode(key->verifier());
  if (!write_new(out, integrity::encode(*key) + "\n", 0600))
    return fail("keygen: cannot create " + out + " (an existing key is never overwritten)");
  if (!write_new(out + ".pub", verifier + "\n", 0644)) return fail("keygen: cannot create " + out + ".pub");
  std::printf("%s\n", verifier.c_str());
  return 0;
}

namespace {

// The verifier key: its text, or the JSON of GET /v1/integrity/public-key.
std::optional<integrity::verifier_key> load_verifier(const std::string& path) {
  std::string text, error;
  if (!read_all(path, text)) return fail("verify: cannot read " + path), std::nullopt;
  if (text.find('{') != std::string::npos) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("key") || !d["key"].IsString())
      return fail("verify: " + path + " is neither a verifier key nor {\"key\": …}"), std::nullopt;
    text = d["key"].GetString();
  }
  auto key = integrity::parse_verifier_key(text, &error);
  if (!key) fail("verify: " + path + ": " + error);
  return key;
}

}  // namespace

int verify_archive_command(const std::string& archive_path, const std::string& public_key_path) {
  const auto key = load_verifier(public_key_path);
  if (!key) return 2;
  std::string manifest;
  if (!read_all(archive_path + ".manifest", manifest)) return fail("verify: cannot read " + archive_path + ".manifest");
  int64_t rows = 0;
  const std::string problem = integrity::verify_archive(archive_path, manifest, *key, &rows);
  if (!problem.empty()) {
    std::printf("archive %s: BROKEN: %s\n", archive_path.c_str(), problem.c_str());
    return 1;
  }
  std::printf("archive %s: verified: %lld events, every link, run and count as its signed manifest says\n",
              archive_path.c_str(), static_cast<long long>(rows));
  return 0;
}

int verify_command(const std::string& export_path, const std::string& checkpoints_path,
                   const std::string& public_key_path) {
  const auto key = load_verifier(public_key_path);
  if (!key) return 2;
  std::string text, error;

  // The checkpoints: the JSON of GET …/checkpoints, or NDJSON lines with "note".
  // A checkpoint's "sequence" and "head_hash", when given, are the stored
  // row's (checked against its note, as online); else the note's own.
  std::vector<integrity::stored_checkpoint> stored;
  if (!checkpoints_path.empty()) {
    if (!read_all(checkpoints_path, text)) return fail("verify: cannot read " + checkpoints_path);
    rapidjson::Document d;
    d.Parse(text.c_str());
    auto take = [&stored, &error, &key](const rapidjson::Value& v) {
      if (!v.IsObject() || !v.HasMember("note") || !v["note"].IsString()) return;
      integrity::stored_checkpoint s;
      s.note = v["note"].GetString();
      integrity::checkpoint c;
      integrity::open_checkpoint(s.note, *key, c, &error);
      s.sequence = v.HasMember("sequence") && v["sequence"].IsInt64() ? v["sequence"].GetInt64() : c.size;
      const auto h = v.HasMember("head_hash") && v["head_hash"].IsString()
                         ? chain_hash_from_hex(v["head_hash"].GetString())
                         : std::optional<chain_hash>(c.root);
      s.head_hash = h.value_or(chain_hash{});
      stored.push_back(std::move(s));
    };
    if (!d.HasParseError() && d.IsObject() && d.HasMember("checkpoints") && d["checkpoints"].IsArray()) {
      for (const auto& c : d["checkpoints"].GetArray()) take(c);
    } else {
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) {
        if (line.empty()) continue;
        rapidjson::Document l;
        l.Parse(line.c_str());
        if (l.HasParseError()) return fail("verify: " + checkpoints_path + " is neither a checkpoints document nor NDJSON");
        take(l);
      }
    }
  }

  // The rows.
  std::ifstream in(export_path, std::ios::binary);
  if (!in) return fail("verify: cannot read " + export_path);
  std::vector<integrity::ledger_row> rows;
  std::string tenant;
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    integrity::ledger_row r;
    if (!integrity::parse_ledger_line(line, r, &error))
      return fail("verify: " + export_path + ":" + std::to_string(line_no) + ": not a ledger line (" + error +
                  "); export with format=ledger");
    if (tenant.empty()) tenant = r.tenant;
    if (r.tenant != tenant)
      return fail("verify: " + export_path + " holds tenants " + tenant + " and " + r.tenant + "; verify one at a time");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) return fail("verify: " + export_path + " holds no rows");

  // Checkpoints as signed, met where the chain passes them.
  int64_t to = rows.back().sequence;
  const int64_t from = rows.front().sequence;
  std::optional<chain_hash> start;
  for (const auto& s : stored) {
    to = std::max(to, s.sequence);
    integrity::checkpoint c;
    if (s.sequence == from - 1 && integrity::open_checkpoint(s.note, *key, c, &error) == integrity::note_status::ok &&
        c.size == s.sequence && c.origin == integrity::checkpoint_origin(key->name, tenant))
      start = c.root;
  }
  integrity::chain_verifier v(from, start);
  integrity::checkpoint_summary summary;
  integrity::add_checkpoints(v, *key, tenant, stored, nullptr, from, to, summary);
  for (const auto& r : rows)
    if (!v.add(r.sequence, r.prev, r.hash, r.canonical)) break;
  v.finish(to);
  if (const auto& b = v.broken()) {
    std::printf("tenant %s: BROKEN at sequence %lld: %s\n", tenant.c_str(), static_cast<long long>(b->sequence),
                b->reason.c_str());
    return 1;
  }
  std::printf("tenant %s: sequences %lld..%lld verified: %lld events, %lld signed checkpoints", tenant.c_str(),
              static_cast<long long>(from), static_cast<long long>(to), static_cast<long long>(v.checked()),
              static_cast<long long>(summary.stored));
  if (summary.latest_sequence > 0)
    std::printf(" (the newest at sequence %lld, signed %s)", static_cast<long long>(summary.latest_sequence),
                format_rfc3339_us(summary.latest_time_us).c_str());
  std::printf("\n");
  if (summary.stored == 0)
    std::printf("warning: no checkpoint was given: the chain is self-consistent, which alone does not prove it "
                "unaltered (docs/INTEGRITY.md)\n");
  return 0;
}

}  // namespace trail
