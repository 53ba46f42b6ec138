#include <catch2/catch.hpp>

#include "sinks/copy_encoding.h"
#include "sinks/event_rows.h"

TEST_CASE("COPY text escaping survives a round trip", "[copy]") {
  const std::string values[] = {
      "plain", "tab\there", "line\nbreak", "carriage\rreturn", "back\\slash", "\\N",
      "quotes \"double\" and 'single'", "Zoë Müller – 日本語 – 🚀", "", "mixed\t\\\n\r\"end\\"};
  for (const auto& v : values) {
    std::string row;
    trail::copy_text::row_builder b(row);
    b.text(v);
    b.end_row();
    INFO(v);
    // An encoded field never contains a raw TAB or newline.
    CHECK(row.find('\t') == std::string::npos);
    CHECK(row.find('\n') == row.size() - 1);
    CHECK(trail::copy_text::decode_field(std::string_view(row).substr(0, row.size() - 1)) == v);
  }
}

TEST_CASE("COPY rows separate columns with tabs and write NULL as backslash-N", "[copy]") {
  std::string row;
  trail::copy_text::row_builder b(row);
  b.integer(7);
  b.text("a\tb");
  b.null();
  b.optional_text("x", false);
  b.end_row();
  CHECK(row == "7\ta\\tb\t\\N\t\\N\n");
}

TEST_CASE("identity digest: SHA-256 of length-prefixed source and id, first 16 bytes", "[copy]") {
  using trail::digest_hex;
  using trail::identity_digest;
  // Expected values from Python's hashlib: sha256(b"<len>:" + source + id).hexdigest()[:32].
  CHECK(digest_hex(identity_digest("//billing.example.com/svc", "ev-1")) == "9d900dd8f31f69d951b99966c75e871b");
  CHECK(digest_hex(identity_digest("//Z\xc3\xbcrich/\xc3\x9f", "id-\xc3\xa9")) == "044fedf76f24c865f782f330530f18b2");
  // The length prefix keeps the boundary between source and id.
  CHECK(digest_hex(identity_digest("ab", "c")) == "744931702c0ccc8206b265f934aba523");
  CHECK(digest_hex(identity_digest("a", "bc")) == "fac4d75282e3de358e8a42f2e1166bfe");
}

TEST_CASE("render_rows: the identity row carries tenant, digest, source, id, sequence and time", "[copy]") {
  trail::audit_record r;
  r.tenant_id = "acme";
  r.ce_source = "ab";
  r.ce_id = "c\td";
  r.occurred_at_us = 0;
  r.copy_tail = "acme\trest\n";
  std::string events, ids;
  trail::render_rows(r, 42, events, ids);
  CHECK(events == "42\tacme\trest\n");
  CHECK(ids == "acme\t" + trail::digest_hex(trail::identity_digest("ab", "c\td")) +
                   "\tab\tc\\td\t42\t1970-01-01T00:00:00.000000Z\n");
}
