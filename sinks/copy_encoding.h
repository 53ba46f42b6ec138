#pragma once
// PostgreSQL COPY text-format encoding (the format of `COPY … FROM STDIN`
// without options): columns separated by TAB, rows ended by LF, NULL as \N,
// and backslash, TAB, LF and CR escaped with a backslash. Everything else,
// quotes and non-ASCII UTF-8 included, travels as is.

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace trail::copy_text {

inline void append_escaped(std::string& out, std::string_view v) {
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    const char* esc = nullptr;
    switch (c) {
      case '\\': esc = "\\\\"; break;
      case '\t': esc = "\\t"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      default: continue;
    }
    out.append(v.data() + start, i - start);
    out.append(esc, 2);
    start = i + 1;
  }
  out.append(v.data() + start, v.size() - start);
}

// Builds one row column by column.
class row_builder {
 public:
  explicit row_builder(std::string& out) : out_(out) {}
  void text(std::string_view v) {
    sep();
    append_escaped(out_, v);
  }
  void null() {
    sep();
    out_.append("\\N", 2);
  }
  void optional_text(std::string_view v, bool present) { present ? text(v) : null(); }
  void integer(int64_t v) {
    sep();
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
    out_.append(digits, static_cast<size_t>(end - digits));
  }
  // A bytea in PostgreSQL's hex form, \x… (its backslash escaped for COPY).
  void bytea(const uint8_t* data, size_t n) {
    static constexpr char kHex[] = "0123456789abcdef";
    sep();
    out_.append("\\\\x", 3);
    for (size_t i = 0; i < n; ++i) {
      out_.push_back(kHex[data[i] >> 4]);
      out_.push_back(kHex[data[i] & 0xf]);
    }
  }
  void end_row() { out_.push_back('\n'); }

 private:
  void sep() {
    if (columns_++ > 0) out_.push_back('\t');
  }
  std::string& out_;
  int columns_ = 0;
};

// Decodes one column value as COPY would (for tests and diagnostics).
std::string decode_field(std::string_view field);

}  // namespace trail::copy_text
