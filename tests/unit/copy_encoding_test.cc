#include <catch2/catch.hpp>

#include "sinks/copy_encoding.h"

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
