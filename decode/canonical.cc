#include "decode/canonical.h"

#include <arpa/inet.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/internal/itoa.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

#include "common/sha256.h"
#include "common/time.h"
#include "decode/event_json.h"

namespace trail {

void append_numeric_text(std::string_view number, std::string& out);

namespace {

// The bytes a canonical string escapes: control characters, '"' and '\\'.
constexpr auto kEscaped = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = true;
  t['"'] = t['\\'] = true;
  return t;
}();

// True when one of the 8 bytes of `w` is below 0x20, '"' or '\\' (the
// classic "has a zero byte" and "has a byte less than n" bit tricks).
inline bool word_needs_escape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
  const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
  return below_space | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'));
}

void append_string(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the characters not yet written, which need no escape
  // Most strings need no escape at all: skip them 8 bytes at a time.
  size_t i = 0;
  for (uint64_t w; i + 8 <= s.size(); i += 8) {
    std::memcpy(&w, s.data() + i, 8);
    if (word_needs_escape(w)) break;
  }
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!kEscaped[c]) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// Writes the canonical text as RapidJSON's SAX events arrive, into one
// buffer: scalars and arrays are final as written; an object's member values
// are written one after another, remembered with their keys, and when the
// object ends its text is rebuilt in key order. The buffers are reused from
// one call to the next (a writer thread canonicalizes every event it stores).
class canonical_handler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, canonical_handler> {
 public:
  // `drop`: top-level object members to leave out, their values into `removed` (same index).
  canonical_handler(std::string& out, const std::vector<std::string_view>* drop = nullptr,
                    std::vector<std::string>* removed = nullptr)
      : out_(out), drop_(drop), removed_(removed) {
    keys_.clear();
    members_.clear();
    stack_.clear();
  }

  bool Null() { return scalar("null"); }
  bool Bool(bool b) { return scalar(b ? "true" : "false"); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    const size_t at = begin_value();
    append_numeric_text(std::string_view(s, n), out_);
    return end_value(at);
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    const size_t at = begin_value();
    append_string(std::string_view(s, n), out_);
    return end_value(at);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    pending_key_ = {keys_.size(), n};
    keys_.append(s, n);
    return true;
  }
  bool StartObject() { return open(true); }
  bool StartArray() { return open(false); }
  bool EndArray(rapidjson::SizeType) {
    out_.push_back(']');
    const frame f = stack_.back();
    stack_.pop_back();
    pending_key_ = f.key;
    return end_value(f.start);
  }
  bool EndObject(rapidjson::SizeType) {
    const frame f = stack_.back();
    stack_.pop_back();
    const auto first = members_.begin() + static_cast<std::ptrdiff_t>(f.first_member);
    auto key = [this](const member& m) { return std::string_view(keys_).substr(m.key.off, m.key.len); };
    // Sorted by key bytes; of equal keys the last one given is kept (as
    // PostgreSQL's jsonb does).
    std::stable_sort(first, members_.end(), [&](const member& a, const member& b) { return key(a) < key(b); });
    rebuilt_.assign(1, '{');
    const bool top = stack_.empty();
    for (auto it = first; it != members_.end(); ++it) {
      if (it + 1 != members_.end() && key(*(it + 1)) == key(*it)) continue;
      if (top && drop_) {  // a top-level member taken out, its canonical value kept aside
        bool dropped = false;
        for (size_t d = 0; d < drop_->size() && !dropped; ++d)
          if ((*drop_)[d] == key(*it)) {
            (*removed_)[d].assign(out_, it->value.off, it->value.len);
            dropped = true;
          }
        if (dropped) continue;
      }
      if (rebuilt_.size() > 1) rebuilt_.push_back(',');
      append_string(key(*it), rebuilt_);
      rebuilt_.push_back(':');
      rebuilt_.append(out_, it->value.off, it->value.len);
    }
    rebuilt_.push_back('}');
    out_.resize(f.start);
    out_ += rebuilt_;
    keys_.resize(f.first_key);
    members_.resize(f.first_member);
    pending_key_ = f.key;
    return end_value(f.start);
  }

 private:
  struct span {
    size_t off = 0, len = 0;
  };
  struct member {
    span key, value;
  };
  struct frame {
    bool object;
    size_t start;         // where the container's text begins in out_
    size_t first_member;  // its members in members_ (objects)
    size_t first_key;     // its keys in keys_ (objects)
    span key;             // the key this container is the value of, in its parent
    size_t items = 0;     // values written so far (arrays: for the commas)
  };

  // Where the next value starts; an array's comma goes before it.
  size_t begin_value() {
    if (!stack_.empty() && !stack_.back().object && stack_.back().items++ > 0) out_.push_back(',');
    return out_.size();
  }
  // A value of the current container is complete: an object member is remembered.
  bool end_value(size_t at) {
    if (!stack_.empty() && stack_.back().object) members_.push_back({pending_key_, {at, out_.size() - at}});
    return true;
  }
  bool scalar(const char* text) {
    const size_t at = begin_value();
    out_ += text;
    return end_value(at);
  }
  bool open(bool object) {
    const span key = pending_key_;
    const size_t at = begin_value();
    out_.push_back(object ? '{' : '[');
    stack_.push_back(frame{object, at, members_.size(), keys_.size(), key, 0});
    return true;
  }

  std::string& out_;
  const std::vector<std::string_view>* drop_;
  std::vector<std::string>* removed_;
  span pending_key_;
  static thread_local std::string keys_, rebuilt_;
  static thread_local std::vector<member> members_;
  static thread_local std::vector<frame> stack_;
};

thread_local std::string canonical_handler::keys_, canonical_handler::rebuilt_;
thread_local std::vector<canonical_handler::member> canonical_handler::members_;
thread_local std::vector<canonical_handler::frame> canonical_handler::stack_;

}  // namespace

struct canonical_json_writer::impl {
  explicit impl(std::string& out) : h(out) {}
  canonical_handler h;
};

canonical_json_writer::canonical_json_writer(std::string& out) : impl_(new impl(out)) {}
canonical_json_writer::~canonical_json_writer() { delete impl_; }
bool canonical_json_writer::Null() { return impl_->h.Null(); }
bool canonical_json_writer::Bool(bool b) { return impl_->h.Bool(b); }
bool canonical_json_writer::Int(int i) { return Int64(i); }
bool canonical_json_writer::Uint(unsigned u) { return Uint64(u); }
bool canonical_json_writer::Int64(int64_t i) {
  char buf[24];
  const char* end = rapidjson::internal::i64toa(i, buf);
  return impl_->h.RawNumber(buf, static_cast<rapidjson::SizeType>(end - buf), true);
}
bool canonical_json_writer::Uint64(uint64_t u) {
  char buf[24];
  const char* end = rapidjson::internal::u64toa(u, buf);
  return impl_->h.RawNumber(buf, static_cast<rapidjson::SizeType>(end - buf), true);
}
bool canonical_json_writer::Double(double d) {
  char buf[32];  // as rapidjson::Writer::WriteDouble prints it (shortest round-trip form)
  const char* end = rapidjson::internal::dtoa(d, buf, 324);
  return impl_->h.RawNumber(buf, static_cast<rapidjson::SizeType>(end - buf), true);
}
bool canonical_json_writer::RawNumber(const char* s, unsigned n, bool c) { return impl_->h.RawNumber(s, n, c); }
bool canonical_json_writer::String(const char* s, unsigned n, bool c) { return impl_->h.String(s, n, c); }
bool canonical_json_writer::StartObject() { return impl_->h.StartObject(); }
bool canonical_json_writer::Key(const char* s, unsigned n, bool c) { return impl_->h.Key(s, n, c); }
bool canonical_json_writer::EndObject(unsigned n) { return impl_->h.EndObject(n); }
bool canonical_json_writer::StartArray() { return impl_->h.StartArray(); }
bool canonical_json_writer::EndArray(unsigned n) { return impl_->h.EndArray(n); }

namespace {

bool canonicalize(std::string_view json, std::string& out, const std::vector<std::string_view>* drop,
                  std::vector<std::string>* removed) {
  rapidjson::MemoryStream in(json.data(), json.size());
  const size_t before = out.size();
  canonical_handler h(out, drop, removed);
  rapidjson::Reader reader;
  // Iterative: a stored value read back for verification may nest deeper than
  // any event Trail accepted (someone else may have written it).
  constexpr unsigned kFlags =
      rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
  if (reader.Parse<kFlags>(in, h).IsError() || in.Tell() != json.size()) {
    out.resize(before);
    return false;
  }
  return true;
}

}  // namespace

bool append_canonical_json(std::string_view json, std::string& out) { return canonicalize(json, out, nullptr, nullptr); }

bool append_canonical_json_without(std::string_view json, const std::vector<std::string_view>& drop, std::string& out,
                                   std::vector<std::string>& removed) {
  removed.assign(drop.size(), std::string());
  if (json.empty() || json.front() != '{') {
    const size_t first = json.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos || json[first] != '{') return false;
  }
  return canonicalize(json, out, &drop, &removed);
}

std::string numeric_text(std::string_view number) {
  std::string out;
  append_numeric_text(number, out);
  return out;
}

void append_numeric_text(std::string_view number, std::string& out) {
  // Most numbers have no exponent: PostgreSQL prints them as given, but for
  // the sign of a zero.
  if (number.find_first_of("eE") == std::string_view::npos) {
    const bool negative = !number.empty() && number[0] == '-';
    const bool zero = number.find_first_not_of("-0.") == std::string_view::npos;
    out.append(negative && zero ? number.substr(1) : number);
    return;
  }
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  size_t i = 0;
  const bool negative = i < number.size() && number[i] == '-';
  if (negative) ++i;
  std::string digits;  // integer and fraction digits, without the point
  size_t int_len = 0;
  while (i < number.size() && number[i] >= '0' && number[i] <= '9') digits.push_back(number[i++]), ++int_len;
  size_t frac_len = 0;
  if (i < number.size() && number[i] == '.') {
    ++i;
    while (i < number.size() && number[i] >= '0' && number[i] <= '9') digits.push_back(number[i++]), ++frac_len;
  }
  int64_t exponent = 0;
  if (i < number.size() && (number[i] == 'e' || number[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < number.size() && (number[i] == '+' || number[i] == '-')) exp_negative = number[i++] == '-';
    while (i < number.size() && number[i] >= '0' && number[i] <= '9') {
      // Beyond what PostgreSQL's numeric accepts: such a value is never
      // stored, and its text is left as it came.
      if (exponent > 1000000) return out.append(number), void();
      exponent = exponent * 10 + (number[i++] - '0');
    }
    if (exp_negative) exponent = -exponent;
  }
  if (i != number.size() || digits.empty()) return out.append(number), void();
  // The value is 0.<digits> × 10^point; the fraction keeps frac_len −
  // exponent digits (at least none), as numeric's display scale does.
  const int64_t point = static_cast<int64_t>(int_len) + exponent;
  const int64_t scale = std::max<int64_t>(0, static_cast<int64_t>(frac_len) - exponent);
  if (point > 2000000 || scale > 2000000) return out.append(number), void();
  auto digit_at = [&](int64_t pos) { return pos >= 0 && pos < static_cast<int64_t>(digits.size()) ? digits[pos] : '0'; };
  std::string whole;
  for (int64_t pos = 0; pos < point; ++pos) {
    const char d = digit_at(pos);
    if (whole.empty() && d == '0') continue;  // no leading zeros
    whole.push_back(d);
  }
  if (whole.empty()) whole.push_back('0');
  std::string fraction;
  for (int64_t pos = point; pos < point + scale; ++pos) fraction.push_back(digit_at(pos));
  const bool zero = digits.find_first_not_of('0') == std::string::npos;
  if (negative && !zero) out.push_back('-');
  out += whole;
  if (!fraction.empty()) out.append(".").append(fraction);
}

std::string canonical_ip(std::string_view ip) {
  const std::string text(ip);
  unsigned char buf[sizeof(struct in6_addr)];
  char printed[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1 && inet_ntop(AF_INET, buf, printed, sizeof printed)) return printed;
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1 && inet_ntop(AF_INET6, buf, printed, sizeof printed)) return printed;
  return text;
}

bool append_canonical_event(const audit_event& e, int64_t sequence, int64_t recorded_at_us, std::string& out,
                            std::pair<size_t, size_t>* extra_at) {
  using F = event_field;
  out += kCanonicalEventPrefix;
  out.push_back('{');
  bool ok = true;
  bool first = true;
  auto key = [&](std::string_view k) {  // a column name: nothing in it to escape
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out.append(k);
    out.append("\":", 2);
  };
  auto text = [&](std::string_view k, F f) {
    key(k);
    if (e.has(f)) append_string(e.get(f), out);
    else out += "null";
  };
  auto json = [&](std::string_view k, F f) {
    key(k);
    if (!e.has(f)) out += "null";
    else if (e.canonical_json) out.append(e.get(f));  // the decoder wrote it canonical
    else ok = append_canonical_json(e.get(f), out) && ok;
  };
  // Every column of audit.events, in the byte order of their names.
  text("action", F::action);
  text("actor_display_name", F::actor_display_name);
  text("actor_id", F::actor_id);
  key("actor_ip");
  if (e.has(F::actor_ip)) append_string(canonical_ip(e.get(F::actor_ip)), out);
  else out += "null";
  text("actor_session_id", F::actor_session_id);
  text("actor_type", F::actor_type);
  text("actor_user_agent", F::actor_user_agent);
  text("category", F::category);
  text("ce_id", F::ce_id);
  text("ce_source", F::ce_source);
  text("ce_subject", F::ce_subject);
  text("ce_type", F::ce_type);
  json("changes", F::changes);
  text("correlation_id", F::correlation_id);
  text("description", F::description);
  key("extra");
  if (has_extra(e) && e.canonical_json) {
    // Its parts are canonical already: composed in key order, not parsed.
    const size_t at = out.size();
    out.push_back('{');
    bool any = false;
    if (e.has(F::ce_dataschema)) {
      out += "\"dataschema\":";
      append_string(e.get(F::ce_dataschema), out);
      any = true;
    }
    if (e.has(F::extensions)) {
      out += any ? ",\"extensions\":{" : "\"extensions\":{";
      out.append(e.get(F::extensions));
      out.push_back('}');
      any = true;
    }
    if (e.has(F::unknown)) {
      out += any ? ",\"unknown\":{" : "\"unknown\":{";
      out.append(e.get(F::unknown));
      out.push_back('}');
    }
    out.push_back('}');
    if (extra_at) *extra_at = {at, out.size() - at};
  } else if (has_extra(e)) {
    thread_local std::string extra;
    extra.clear();
    render_extra(e, extra);
    const size_t at = out.size();
    ok = append_canonical_json(extra, out) && ok;
    if (extra_at) *extra_at = {at, out.size() - at};
  } else {
    out += "null";
    if (extra_at) *extra_at = {0, 0};
  }
  key("ingest_mode");
  append_string(to_string(e.mode), out);
  json("metadata", F::metadata);
  // The text the row stores (the decoder formats it from occurred_at_us; a
  // row read back has PostgreSQL's rendering in the same form).
  text("occurred_at", F::occurred_at);
  text("outcome_error_code", F::outcome_error_code);
  text("outcome_status", F::outcome_status);
  key("recorded_at");
  // Every event of a transaction has the same recorded time: formatted once.
  thread_local int64_t recorded_cached_us = -1;
  thread_local std::string recorded_cached;
  if (recorded_at_us != recorded_cached_us) {
    recorded_cached = format_rfc3339_us(recorded_at_us);
    recorded_cached_us = recorded_at_us;
  }
  append_string(recorded_cached, out);
  json("related_resources", F::related_resources);
  text("request_id", F::request_id);
  text("resource_id", F::resource_id);
  text("resource_type", F::resource_type);
  key("sequence");
  char num[24];
  out.append(num, static_cast<size_t>(std::to_chars(num, num + sizeof num, sequence).ptr - num));
  text("severity", F::severity);
  text("source_service", F::source_service);
  text("tenant_id", F::tenant_id);
  text("trace_id", F::trace_id);
  out.push_back('}');
  return ok;
}

chain_hash chain_next(const chain_hash& prev, std::string_view canonical) {
  thread_local std::string input;
  input.assign(reinterpret_cast<const char*>(prev.data()), prev.size());
  input.append(canonical);
  return sha256(input);
}

bool chain_event(const chain_hash& prev, const audit_event& e, int64_t sequence, int64_t recorded_at_us,
                 std::string& scratch, chain_hash& out, std::pair<size_t, size_t>* extra_at) {
  // The previous link goes first in the same buffer: one SHA-256 call, no copy.
  scratch.assign(reinterpret_cast<const char*>(prev.data()), prev.size());
  if (!append_canonical_event(e, sequence, recorded_at_us, scratch, extra_at)) return false;
  out = sha256(scratch);
  return true;
}

std::string to_hex(const chain_hash& h) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < h.size(); ++i) {
    out[2 * i] = kHex[h[i] >> 4];
    out[2 * i + 1] = kHex[h[i] & 0xf];
  }
  return out;
}

std::optional<chain_hash> chain_hash_from_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  chain_hash out;
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace trail
