#include "integrity/verify.h"

#include <rapidjson/document.h>

#include <vector>

namespace trail::integrity {

chain_verifier::chain_verifier(int64_t from_sequence, std::optional<chain_hash> start)
    : next_(from_sequence), start_(start) {
  if (!start_ && from_sequence == 1) start_ = kChainGenesis;
}

void chain_verifier::expect(int64_t sequence, const chain_hash& root, std::string what) {
  expected_.emplace(sequence, std::make_pair(root, std::move(what)));
}

bool chain_verifier::break_at(int64_t sequence, std::string reason) {
  if (!broken_ || sequence < broken_->sequence) broken_ = chain_break{sequence, std::move(reason)};
  return false;
}

void chain_verifier::fail(int64_t sequence, std::string reason) { break_at(sequence, std::move(reason)); }

void chain_verifier::archived(int64_t first, int64_t last, const chain_hash& prev, const chain_hash& last_hash) {
  runs_[first] = run{last, prev, last_hash};
}

bool chain_verifier::cross() {
  const auto it = runs_.find(next_);
  if (it == runs_.end()) return false;
  const run r = it->second;
  if (!started_) {
    link_ = start_ ? *start_ : r.prev;
    started_ = true;
  }
  if (r.prev != link_) {
    stopped_ = true;
    return break_at(next_, "sequence " + std::to_string(next_) + ": the archived run " + std::to_string(next_) + ".." +
                               std::to_string(r.last) + " does not continue the chain");
  }
  // The links inside the run are in the archive; the checkpoints there were
  // checked when it was made. One at its last sequence is met here.
  for (auto e = expected_.lower_bound(next_); e != expected_.end() && e->first <= r.last;) {
    if (e->first == r.last && e->second.first != r.last_hash) {
      stopped_ = true;
      return break_at(r.last, e->second.second + " does not match the chain");
    }
    if (e->first == r.last) ++met_;
    e = expected_.erase(e);
  }
  crossed_ += r.last - next_ + 1;
  link_ = r.last_hash;
  next_ = r.last + 1;
  return true;
}

bool chain_verifier::add(int64_t sequence, const chain_hash& prev, const chain_hash& hash,
                         std::string_view canonical_bytes) {
  if (stopped_) return false;
  while (sequence > next_ && cross()) {
  }
  if (stopped_) return false;
  stopped_ = true;  // until this row proves sound
  const std::string seq = std::to_string(sequence);
  if (sequence > next_) return break_at(next_, "sequence " + std::to_string(next_) + " missing");
  if (sequence < next_)
    return break_at(sequence, "sequence " + seq + " found again after sequence " + std::to_string(next_ - 1));
  if (!started_) {
    link_ = start_ ? *start_ : prev;
    started_ = true;
  }
  if (prev != link_)
    return break_at(sequence, sequence == 1 ? "sequence 1: prev_hash is not the genesis link (32 zero bytes)"
                              : checked_ == 0 ? "sequence " + seq + ": prev_hash differs from the trusted link it must continue"
                                              : "sequence " + seq + ": prev_hash does not link to sequence " +
                                                    std::to_string(sequence - 1));
  if (chain_next(prev, canonical_bytes) != hash)
    return break_at(sequence, "sequence " + seq + ": stored hash differs from recomputed");
  link_ = hash;
  ++checked_;
  ++next_;
  if (auto it = expected_.find(sequence); it != expected_.end()) {
    if (it->second.first != hash) return break_at(sequence, it->second.second + " does not match the chain");
    ++met_;
  }
  stopped_ = false;
  return true;
}

bool chain_verifier::finish(int64_t to_sequence) {
  while (!stopped_ && next_ <= to_sequence && cross()) {
  }
  if (!stopped_ && next_ <= to_sequence) break_at(next_, "sequence " + std::to_string(next_) + " missing");
  return !broken_;
}

namespace {
constexpr std::string_view kRunHeader = "trail.archive.v1 run";
}

std::string sign_archived_run(const archived_run_note& r, const signing_key& key) {
  const std::string text = std::string(kRunHeader) + "\n" + r.origin + "\n" + std::to_string(r.first) + " " +
                           std::to_string(r.last) + "\n" + to_hex(r.prev) + " " + to_hex(r.last_hash) + "\n" +
                           r.partition + " " + r.file_sha256 + "\n";
  return sign_note(text, key);
}

note_status open_archived_run(std::string_view note, const verifier_key& key, archived_run_note& out,
                              std::string* error) {
  std::string_view text;
  const note_status s = open_note(note, key, text, error);
  if (s == note_status::malformed) return s;
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  auto pair = [](std::string_view line, std::string_view& a, std::string_view& b) {
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    a = line.substr(0, sp);
    b = line.substr(sp + 1);
    return true;
  };
  std::string_view a, b, c, d, e, f;
  if (lines.size() != 5 || lines[0] != kRunHeader || !pair(lines[2], a, b) || !pair(lines[3], c, d) ||
      !pair(lines[4], e, f)) {
    if (error) *error = "not an archived-run note";
    return note_status::malformed;
  }
  out = archived_run_note();
  out.origin.assign(lines[1]);
  const auto prev = chain_hash_from_hex(c), last = chain_hash_from_hex(d);
  try {
    out.first = std::stoll(std::string(a));
    out.last = std::stoll(std::string(b));
  } catch (...) {
    out.first = out.last = 0;
  }
  if (!prev || !last || out.first < 1 || out.last < out.first) {
    if (error) *error = "not an archived-run note";
    return note_status::malformed;
  }
  out.prev = *prev;
  out.last_hash = *last;
  out.partition.assign(e);
  out.file_sha256.assign(f);
  return s;
}

void add_checkpoints(chain_verifier& v, const verifier_key& key, const std::string& tenant,
                     const std::vector<stored_checkpoint>& stored, const std::vector<std::string>* broker_notes,
                     int64_t from, int64_t to, checkpoint_summary& out) {
  const std::string origin = checkpoint_origin(key.name, tenant);
  auto seen = [&](int64_t sequence, int64_t time_us) {
    if (sequence >= out.latest_sequence) {
      out.latest_sequence = sequence;
      out.latest_time_us = time_us;
    }
  };
  // Opens one note; the reason it fails, or "" when it holds.
  auto open = [&](const std::string& note, const std::string& what, checkpoint& c) -> std::string {
    std::string why;
    switch (open_checkpoint(note, key, c, &why)) {
      case note_status::ok: break;
      case note_status::bad_signature: return what + ": bad signature";
      case note_status::unsigned_by_key: return what + ": not signed by the key " + encode(key);
      case note_status::malformed: return what + ": not a checkpoint (" + why + ")";
    }
    if (c.origin != origin) return what + ": signed for another log (" + c.origin + ")";
    return "";
  };
  std::map<int64_t, chain_hash> stored_roots;
  for (const auto& s : stored) {
    if (s.sequence < from || s.sequence > to) continue;
    const std::string what = "checkpoint at sequence " + std::to_string(s.sequence);
    checkpoint c;
    if (auto why = open(s.note, what, c); !why.empty()) {
      v.fail(s.sequence, why);
      continue;
    }
    if (c.size != s.sequence || c.root != s.head_hash) {
      v.fail(s.sequence, what + ": the row differs from its signed note (sequence " + std::to_string(c.size) + ")");
      continue;
    }
    ++out.stored;
    seen(c.size, c.time_us);
    stored_roots[c.size] = c.root;
    v.expect(c.size, c.root, what);
  }
  if (!broker_notes) return;
  for (const auto& note : *broker_notes) {
    checkpoint c;
    // The size is needed to name a failure: parse it even when the signature fails.
    const std::string why = open(note, "the broker's checkpoint", c);
    if (c.size < from || c.size > to) continue;
    const std::string what = "the broker's checkpoint at sequence " + std::to_string(c.size);
    if (!why.empty()) {
      v.fail(c.size, what + why.substr(std::string("the broker's checkpoint").size()));
      continue;
    }
    ++out.broker;
    seen(c.size, c.time_us);
    if (auto it = stored_roots.find(c.size); it != stored_roots.end()) {
      if (it->second != c.root)
        v.fail(c.size, "checkpoint at sequence " + std::to_string(c.size) + " does not match the broker's copy");
      continue;  // met through the stored one
    }
    v.expect(c.size, c.root, what);
  }
}

void append_ledger_line(std::string_view canonical_bytes, const chain_hash& prev, const chain_hash& hash,
                        std::string& out) {
  // The object without the format prefix, its closing brace replaced by the links.
  std::string_view object = canonical_bytes.substr(kCanonicalEventPrefix.size());
  object.remove_suffix(1);
  out.append(object);
  out += ",\"hash\":\"";
  out += to_hex(hash);
  out += "\",\"prev_hash\":\"";
  out += to_hex(prev);
  out += "\"}";
}

bool parse_ledger_line(std::string_view line, ledger_row& out, std::string* error) {
  static const std::vector<std::string_view> kLinks = {"hash", "prev_hash"};
  thread_local std::vector<std::string> links;
  out.canonical.assign(kCanonicalEventPrefix);
  if (!append_canonical_json_without(line, kLinks, out.canonical, links)) {
    if (error) *error = "not a JSON object";
    return false;
  }
  auto link = [&](const std::string& quoted, chain_hash& h) {
    if (quoted.size() != 66) return false;
    const auto parsed = chain_hash_from_hex(std::string_view(quoted).substr(1, 64));
    if (parsed) h = *parsed;
    return parsed.has_value();
  };
  if (!link(links[0], out.hash) || !link(links[1], out.prev)) {
    if (error) *error = "\"hash\" and \"prev_hash\" must be 64 hex digits";
    return false;
  }
  rapidjson::Document d;
  d.Parse(line.data(), line.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("sequence") || !d["sequence"].IsInt64() ||
      !d.HasMember("tenant_id") || !d["tenant_id"].IsString()) {
    if (error) *error = "a ledger line has \"sequence\" and \"tenant_id\"";
    return false;
  }
  out.sequence = d["sequence"].GetInt64();
  out.tenant.assign(d["tenant_id"].GetString(), d["tenant_id"].GetStringLength());
  return true;
}

}  // namespace trail::integrity
