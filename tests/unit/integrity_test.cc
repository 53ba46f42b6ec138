// Signed notes and checkpoints (integrity/note.h) and the chain verifier
// (integrity/verify.h). The signed-note vectors are those of the Go
// reference implementation, golang.org/x/mod/sumdb/note (BSD-3-Clause):
// keys and signature in the format every tool of that ecosystem reads.
#include <catch2/catch.hpp>

#include "integrity/note.h"
#include "integrity/verify.h"

using namespace trail;
using namespace trail::integrity;

namespace {

constexpr const char* kGoSigner = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr const char* kGoVerifier = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr const char* kGoText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr const char* kGoNote =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

// A chain of `n` rows whose canonical bytes are "row <sequence>".
struct row {
  int64_t sequence;
  chain_hash prev, hash;
  std::string bytes;
};
std::vector<row> chain_of(int n) {
  std::vector<row> rows;
  chain_hash link = kChainGenesis;
  for (int s = 1; s <= n; ++s) {
    row r{s, link, {}, "row " + std::to_string(s)};
    r.hash = chain_next(link, r.bytes);
    link = r.hash;
    rows.push_back(r);
  }
  return rows;
}

std::optional<chain_break> verify(const std::vector<row>& rows, int64_t to, std::function<void(chain_verifier&)> setup = {}) {
  chain_verifier v(1);
  if (setup) setup(v);
  for (const auto& r : rows)
    if (!v.add(r.sequence, r.prev, r.hash, r.bytes)) break;
  v.finish(to);
  return v.broken();
}

}  // namespace

TEST_CASE("signed notes: the Go reference implementation's keys and signature, byte for byte", "[integrity]") {
  std::string error;
  const auto signer = parse_signing_key(kGoSigner, &error);
  REQUIRE(signer);
  CHECK(encode(*signer) == kGoSigner);
  CHECK(encode(signer->verifier()) == kGoVerifier);
  const auto verifier = parse_verifier_key(kGoVerifier, &error);
  REQUIRE(verifier);
  CHECK(verifier->id == 0xc74f20a3);
  // Ed25519 signatures are deterministic: the same note as Go's.
  CHECK(sign_note(kGoText, *signer) == kGoNote);
  std::string_view text;
  CHECK(open_note(kGoNote, *verifier, text, &error) == note_status::ok);
  CHECK(text == kGoText);

  std::string altered = kGoNote;
  altered[3] = 'X';  // the text changed under its signature
  CHECK(open_note(altered, *verifier, text, &error) == note_status::bad_signature);
  auto other = generate_key("PeterNeumann", &error);  // same name, another key: its id differs
  REQUIRE(other);
  CHECK(open_note(kGoNote, other->verifier(), text, &error) == note_status::unsigned_by_key);
  CHECK(open_note("no blank line\n", *verifier, text, &error) == note_status::malformed);
  // Mangled keys are refused.
  CHECK_FALSE(parse_verifier_key("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &error));
  CHECK_FALSE(parse_verifier_key("PeterNeumann+c74f20a3+AXpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &error));
  CHECK_FALSE(parse_signing_key(kGoVerifier, &error));
  CHECK_FALSE(generate_key("has space", &error));
}

TEST_CASE("checkpoints: signed, opened, and every change to the text or signature is caught", "[integrity]") {
  std::string error;
  const auto key = generate_key("trail.example/audit", &error);
  REQUIRE(key);
  const auto again = parse_signing_key(encode(*key), &error);
  REQUIRE(again);
  CHECK(again->public_key == key->public_key);

  checkpoint c;
  c.origin = checkpoint_origin(key->name, "acme");
  c.size = 2000;
  c.root = chain_of(3).back().hash;
  c.time_us = 1795478400123456;
  const std::string note = sign_checkpoint(c, *key);
  // origin, size, base64 root, the time extension, a blank line, the signature.
  CHECK(note.rfind("trail.example/audit/acme\n2000\n", 0) == 0);
  CHECK(note.find("\ntime 2026-11-24T00:00:00.123456Z\n\n\xe2\x80\x94 trail.example/audit ") != std::string::npos);
  checkpoint back;
  REQUIRE(open_checkpoint(note, key->verifier(), back, &error) == note_status::ok);
  CHECK(back.origin == c.origin);
  CHECK(back.size == 2000);
  CHECK(back.root == c.root);
  CHECK(back.time_us == c.time_us);

  std::string forged = note;
  forged.replace(forged.find("\n2000\n"), 6, "\n2001\n");
  CHECK(open_checkpoint(forged, key->verifier(), back, &error) == note_status::bad_signature);
  CHECK(back.size == 2001);  // parsed, so the caller can name it
  const auto stranger = generate_key("trail.example/audit", &error);
  CHECK(open_checkpoint(sign_checkpoint(c, *stranger), key->verifier(), back, &error) == note_status::unsigned_by_key);
}

TEST_CASE("chain verifier: each kind of break is named at its first broken link", "[integrity]") {
  const auto rows = chain_of(6);
  CHECK_FALSE(verify(rows, 6));

  SECTION("a field changed: the stored hash no longer matches") {
    auto t = rows;
    t[2].bytes = "row 3, altered";
    const auto b = verify(t, 6);
    REQUIRE(b);
    CHECK(b->sequence == 3);
    CHECK(b->reason == "sequence 3: stored hash differs from recomputed");
  }
  SECTION("a row deleted") {
    auto t = rows;
    t.erase(t.begin() + 3);
    const auto b = verify(t, 6);
    REQUIRE(b);
    CHECK(b->reason == "sequence 4 missing");
  }
  SECTION("the last rows deleted: the range says how far it goes") {
    auto t = rows;
    t.resize(4);
    const auto b = verify(t, 6);
    REQUIRE(b);
    CHECK(b->reason == "sequence 5 missing");
  }
  SECTION("two rows swapped (their sequences exchanged)") {
    auto t = rows;
    std::swap(t[1].bytes, t[4].bytes);
    std::swap(t[1].hash, t[4].hash);
    std::swap(t[1].prev, t[4].prev);
    const auto b = verify(t, 6);
    REQUIRE(b);
    CHECK(b->reason == "sequence 2: prev_hash does not link to sequence 1");
  }
  SECTION("a forged row with a recomputed chain after it: caught by the checkpoint only") {
    std::vector<row> t(rows.begin(), rows.begin() + 2);
    chain_hash link = t.back().hash;
    for (int s = 3; s <= 6; ++s) {  // a forged row 3, the old 3..5 renumbered 4..6
      row r{s, link, {}, s == 3 ? "forged" : rows[static_cast<size_t>(s - 2)].bytes};
      r.hash = chain_next(link, r.bytes);
      link = r.hash;
      t.push_back(r);
    }
    CHECK_FALSE(verify(t, 6));  // self-consistent
    const auto b = verify(t, 6, [&](chain_verifier& v) { v.expect(5, rows[4].hash, "checkpoint at sequence 5"); });
    REQUIRE(b);
    CHECK(b->reason == "checkpoint at sequence 5 does not match the chain");
  }
  SECTION("a range not starting at 1 continues the link it is given") {
    chain_verifier v(4, rows[2].hash);
    for (size_t i = 3; i < rows.size(); ++i) CHECK(v.add(rows[i].sequence, rows[i].prev, rows[i].hash, rows[i].bytes));
    CHECK(v.finish(6));
    CHECK(v.checked() == 3);
    chain_verifier wrong(4, rows[1].hash);
    CHECK_FALSE(wrong.add(rows[3].sequence, rows[3].prev, rows[3].hash, rows[3].bytes));
    CHECK(wrong.broken()->reason == "sequence 4: prev_hash differs from the trusted link it must continue");
  }
}

TEST_CASE("ledger lines: a row's canonical bytes and links survive the line, in any member order or spacing",
          "[integrity]") {
  const std::string canonical = std::string(kCanonicalEventPrefix) +
                                R"({"a":1.50,"metadata":{"a":"x","b":[1,2]},"sequence":7,"tenant_id":"acme"})";
  chain_hash prev{}, hash{};
  prev[0] = 1;
  hash[31] = 2;
  std::string line;
  append_ledger_line(canonical, prev, hash, line);
  ledger_row back;
  std::string error;
  REQUIRE(parse_ledger_line(line, back, &error));
  CHECK(back.canonical == canonical);
  CHECK(back.prev == prev);
  CHECK(back.hash == hash);
  CHECK(back.sequence == 7);
  CHECK(back.tenant == "acme");
  // Reformatted by some tool: the same canonical bytes.
  const std::string reformatted = R"({ "prev_hash": ")" + to_hex(prev) + R"(", "tenant_id": "acme", "sequence": 7,
      "metadata": {"a": "x", "b": [1, 2]}, "hash": ")" + to_hex(hash) + R"(", "a": 1.50 })";
  REQUIRE(parse_ledger_line(reformatted, back, &error));
  CHECK(back.canonical == canonical);
  CHECK_FALSE(parse_ledger_line(R"({"sequence":7,"tenant_id":"acme"})", back, &error));
  CHECK_FALSE(parse_ledger_line("[1]", back, &error));
}
