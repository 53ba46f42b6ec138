#include "decode/canonical.h"

#include <arpa/inet.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <utility>
#include <vector>

#include "common/time.h"
#include "decode/event_json.h"

namespace trail {
namespace {

void append_string(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the characters not yet written, which need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
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

// Builds the canonical text bottom-up from RapidJSON's SAX events: each
// container collects its children's canonical texts, an object sorts its
// members when it ends.
class canonical_handler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, canonical_handler> {
 public:
  bool Null() { return value("null"); }
  bool Bool(bool b) { return value(b ? "true" : "false"); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return value(numeric_text(std::string_view(s, n))); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    std::string v;
    append_string(std::string_view(s, n), v);
    return value(std::move(v));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    stack_.back().key.assign(s, n);
    return true;
  }
  bool StartObject() { return open(true); }
  bool StartArray() { return open(false); }
  bool EndObject(rapidjson::SizeType) {
    auto& m = stack_.back().members;
    // Sorted by key bytes; of equal keys the last one given is kept (as
    // PostgreSQL's jsonb does).
    std::stable_sort(m.begin(), m.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string v = "{";
    for (size_t i = 0; i < m.size(); ++i) {
      if (i + 1 < m.size() && m[i + 1].first == m[i].first) continue;
      if (v.size() > 1) v.push_back(',');
      append_string(m[i].first, v);
      v.push_back(':');
      v += m[i].second;
    }
    v.push_back('}');
    stack_.pop_back();
    return value(std::move(v));
  }
  bool EndArray(rapidjson::SizeType) {
    std::string v = "[";
    const auto& items = stack_.back().items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) v.push_back(',');
      v += items[i];
    }
    v.push_back(']');
    stack_.pop_back();
    return value(std::move(v));
  }

  std::string result;

 private:
  struct frame {
    bool object;
    std::string key;
    std::vector<std::pair<std::string, std::string>> members;
    std::vector<std::string> items;
  };
  bool open(bool object) {
    stack_.push_back(frame{object, {}, {}, {}});
    return true;
  }
  bool value(std::string v) {
    if (stack_.empty()) {
      result = std::move(v);
    } else if (stack_.back().object) {
      stack_.back().members.emplace_back(std::move(stack_.back().key), std::move(v));
    } else {
      stack_.back().items.push_back(std::move(v));
    }
    return true;
  }
  std::vector<frame> stack_;
};

}  // namespace

bool append_canonical_json(std::string_view json, std::string& out) {
  rapidjson::MemoryStream in(json.data(), json.size());
  canonical_handler h;
  rapidjson::Reader reader;
  // Iterative: a stored value read back for verification may nest deeper than
  // any event Trail accepted (someone else may have written it).
  constexpr unsigned kFlags =
      rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
  if (reader.Parse<kFlags>(in, h).IsError() || in.Tell() != json.size()) return false;
  out += h.result;
  return true;
}

std::string numeric_text(std::string_view number) {
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
      if (exponent > 1000000) return std::string(number);
      exponent = exponent * 10 + (number[i++] - '0');
    }
    if (exp_negative) exponent = -exponent;
  }
  if (i != number.size() || digits.empty()) return std::string(number);
  // The value is 0.<digits> × 10^point; the fraction keeps frac_len −
  // exponent digits (at least none), as numeric's display scale does.
  const int64_t point = static_cast<int64_t>(int_len) + exponent;
  const int64_t scale = std::max<int64_t>(0, static_cast<int64_t>(frac_len) - exponent);
  if (point > 2000000 || scale > 2000000) return std::string(number);
  auto digit_at = [&](int64_t pos) { return pos >= 0 && pos < static_cast<int64_t>(digits.size()) ? digits[pos] : '0'; };
  std::string whole;
  for (int64_t pos = 0; pos < point; ++pos) {
    const char d = digit_at(pos);
    if (whole.empty() && d == '0') continue;  // no leading zeros
    whole.push_back(d);
  }
  if (whole.empty()) whole = "0";
  std::string fraction;
  for (int64_t pos = point; pos < point + scale; ++pos) fraction.push_back(digit_at(pos));
  const bool zero = digits.find_first_not_of('0') == std::string::npos;
  std::string out = negative && !zero ? "-" : "";
  out += whole;
  if (!fraction.empty()) out += "." + fraction;
  return out;
}

std::string canonical_ip(std::string_view ip) {
  const std::string text(ip);
  unsigned char buf[sizeof(struct in6_addr)];
  char printed[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1 && inet_ntop(AF_INET, buf, printed, sizeof printed)) return printed;
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1 && inet_ntop(AF_INET6, buf, printed, sizeof printed)) return printed;
  return text;
}

bool append_canonical_event(const audit_event& e, int64_t sequence, int64_t recorded_at_us, std::string& out) {
  using F = event_field;
  out += kCanonicalEventPrefix;
  out.push_back('{');
  bool ok = true;
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out.push_back(',');
    first = false;
    append_string(k, out);
    out.push_back(':');
  };
  auto text = [&](std::string_view k, F f) {
    key(k);
    if (e.has(f)) append_string(e.get(f), out);
    else out += "null";
  };
  auto json = [&](std::string_view k, F f) {
    key(k);
    if (!e.has(f)) out += "null";
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
  if (has_extra(e)) {
    thread_local std::string extra;
    extra.clear();
    render_extra(e, extra);
    ok = append_canonical_json(extra, out) && ok;
  } else {
    out += "null";
  }
  key("ingest_mode");
  append_string(to_string(e.mode), out);
  json("metadata", F::metadata);
  key("occurred_at");
  append_string(format_rfc3339_us(e.occurred_at_us), out);
  text("outcome_error_code", F::outcome_error_code);
  text("outcome_status", F::outcome_status);
  key("recorded_at");
  append_string(format_rfc3339_us(recorded_at_us), out);
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

}  // namespace trail
