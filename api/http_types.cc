#include "api/http_types.h"

#include <strings.h>

namespace trail {
namespace {

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string http_request::get_header_value(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (same_name(k, name)) return v;
  return {};
}

bool http_request::has_header(std::string_view name) const { return header_count(name) > 0; }

size_t http_request::header_count(std::string_view name) const {
  size_t n = 0;
  for (const auto& h : headers) n += same_name(h.first, name);
  return n;
}

std::string http_request::get_param_value(const std::string& name) const {
  const auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

void http_response::set_header(std::string_view name, std::string value) {
  for (auto& [k, v] : headers)
    if (same_name(k, name)) {
      v = std::move(value);
      return;
    }
  headers.emplace_back(std::string(name), std::move(value));
}

std::string http_response::get_header_value(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (same_name(k, name)) return v;
  return {};
}

void http_response::set_content(std::string text, std::string_view content_type) {
  body = std::move(text);
  set_header("Content-Type", std::string(content_type));
}

void http_response::set_chunked_content_provider(std::string_view content_type, provider p, releaser done) {
  set_header("Content-Type", std::string(content_type));
  stream = std::move(p);
  stream_done = std::move(done);
}

void http_response::set_redirect(const std::string& location, int code) {
  status = code;
  set_header("Location", location);
}

void http_router::add(const char* method, const std::string& pattern, http_handler h, http_route_limits l) {
  routes_.push_back(std::make_unique<route>(route{method, std::regex(pattern), std::move(h), l}));
}

void http_router::Get(const std::string& pattern, http_handler h, http_route_limits l) { add("GET", pattern, std::move(h), l); }
void http_router::Post(const std::string& pattern, http_handler h, http_route_limits l) { add("POST", pattern, std::move(h), l); }
void http_router::Delete(const std::string& pattern, http_handler h, http_route_limits l) {
  add("DELETE", pattern, std::move(h), l);
}

http_router::found http_router::find(const std::string& method, const std::string& path, const route*& r,
                                     std::vector<std::string>& matches) const {
  bool path_known = false;
  for (const auto& candidate : routes_) {
    std::smatch m;
    if (!std::regex_match(path, m, candidate->pattern)) continue;
    path_known = true;
    if (candidate->method != method) continue;
    matches.clear();
    for (const auto& g : m) matches.push_back(g.str());
    r = candidate.get();
    return found::route;
  }
  return path_known ? found::no_method : found::no_path;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else return false;
    if (static_cast<size_t>(end - p) <= n) return false;
    for (size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

bool decode_percent(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out.find('\0') == std::string::npos && valid_utf8(out);
}

bool parse_query(std::string_view query, std::multimap<std::string, std::string>& out) {
  out.clear();
  std::string key, value;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (!decode_percent(part.substr(0, eq), true, key)) return false;
    if (!decode_percent(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1), true, value)) return false;
    out.emplace(key, value);
  }
  return true;
}

}  // namespace trail
