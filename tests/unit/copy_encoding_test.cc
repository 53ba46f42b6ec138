#include <catch2/catch.hpp>

#include <algorithm>

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

TEST_CASE("render_rows: both rows from one typed event, in the COPY statements' column order", "[copy]") {
  using F = trail::event_field;
  trail::audit_event e;
  const std::pair<F, std::string> texts[] = {
      {F::tenant_id, "acme"}, {F::ce_source, "ab"}, {F::ce_id, "c\td"}, {F::ce_type, "t"},
      {F::occurred_at, "1970-01-01T00:00:00.000000Z"}, {F::action, "a.b"}, {F::category, "CATEGORY_X"},
      {F::severity, "SEVERITY_INFO"}, {F::actor_type, "ACTOR_TYPE_USER"}, {F::actor_id, "u\n1"},
      {F::resource_type, "doc"}, {F::resource_id, "d1"}, {F::metadata, R"({"k":"v\\w"})"},
      {F::source_service, "svc"}};
  for (const auto& [f, v] : texts) e.set(f, v);
  e.mode = trail::ingest_mode::batch;
  std::string events, ids;
  trail::chain_hash prev{}, link{};
  prev[0] = 0xab;
  link[31] = 0x01;
  trail::render_rows(e, 42, prev, link, events, ids);
  // Every column of kEventsCopy, in order; absent optional values are \N;
  // the chain links as bytea in hex form (its backslash escaped for COPY).
  CHECK(events ==
        "42\tacme\t1970-01-01T00:00:00.000000Z\tab\tc\\td\tt\t\\N\tbatch\ta.b\tCATEGORY_X\tSEVERITY_INFO\t"
        "ACTOR_TYPE_USER\tu\\n1\t\\N\t\\N\t\\N\t\\N\tdoc\td1\t\\N\t\\N\t\\N\t\\N\t\\N\t"
        "{\"k\":\"v\\\\\\\\w\"}\t\\N\t\\N\tsvc\t\\N\t\\N\t"
        "\\\\xab" + std::string(62, '0') + "\t\\\\x" + std::string(62, '0') + "01\n");
  const std::string columns(trail::kEventsCopy);
  CHECK(std::count(columns.begin(), columns.end(), ',') + 1 == std::count(events.begin(), events.end(), '\t') + 1);
  CHECK(ids == "acme\t" + trail::digest_hex(trail::identity_digest("ab", "c\td")) +
                   "\tab\tc\\td\t42\t1970-01-01T00:00:00.000000Z\n");
}
