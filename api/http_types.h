#pragma once
// What a route sees of one HTTP exchange, and the table that picks its
// route. The listener (api/http_listener.h) parses and bounds a request
// before any of this exists: by the time a handler runs, the request is
// whole, within every limit, and its path and query are valid UTF-8.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trail {

using http_headers = std::vector<std::pair<std::string, std::string>>;

struct http_request {
  std::string method;
  std::string target;       // as sent: path and query, percent-encoded
  std::string path;         // percent-decoded (what routes match)
  std::multimap<std::string, std::string> params;  // the query's, decoded ('+' is a space)
  http_headers headers;     // as sent, in order; header values are never decoded
  std::vector<std::string> matches;  // the route pattern's groups; [0] is the whole path
  std::string body;
  std::string remote_addr;

  // The first value of a header (names compare case-insensitively), or "".
  std::string get_header_value(std::string_view name) const;
  bool has_header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
  bool has_param(const std::string& name) const { return params.count(name) > 0; }
  std::string get_param_value(const std::string& name) const;
};

// Where a streamed response's chunks go. write() blocks until the chunk is
// handed to the connection (or fails: the client is gone, too slow to read
// within the listener's write deadline, or the server is stopping); done()
// says the body is complete.
class http_sink {
 public:
  virtual ~http_sink() = default;
  virtual bool write(const char* data, size_t size) = 0;
  virtual bool is_writable() const = 0;
  virtual void done() = 0;
};

struct http_response {
  // Called until it returns false (the transfer is cut: the client sees no
  // final chunk, never a short body that looks whole) or calls sink.done().
  using provider = std::function<bool(size_t offset, http_sink& sink)>;
  // Called once the stream ended, with whether it completed.
  using releaser = std::function<void(bool completed)>;

  int status = 200;
  http_headers headers;
  std::string body;
  provider stream;
  releaser stream_done;
  bool close = false;  // close the connection after this response

  void set_header(std::string_view name, std::string value);  // replaces
  std::string get_header_value(std::string_view name) const;
  void set_content(std::string text, std::string_view content_type);
  void set_content(const char* data, size_t size, std::string_view content_type) {
    set_content(std::string(data, size), content_type);
  }
  void set_chunked_content_provider(std::string_view content_type, provider p, releaser done = nullptr);
  void set_redirect(const std::string& location, int status = 302);
};

using http_handler = std::function<void(const http_request&, http_response&)>;

// What a route accepts before its handler runs; the listener enforces it
// while the request arrives.
struct http_route_limits {
  size_t max_body_bytes = 0;     // 0: the listener's default (api.max_body_bytes)
  bool authenticate_body = true; // a request with a body is authenticated before the body is read
};

// Routes by method and a regular expression over the whole decoded path, in
// the order they were added.
class http_router {
 public:
  struct route {
    std::string method;
    std::regex pattern;
    http_handler handler;
    http_route_limits limits;
  };
  void Get(const std::string& pattern, http_handler h, http_route_limits l = {});
  void Post(const std::string& pattern, http_handler h, http_route_limits l = {});
  void Delete(const std::string& pattern, http_handler h, http_route_limits l = {});

  enum class found { route, no_path, no_method };
  // The route for `method` and `path` (its groups in `matches`), or why none.
  found find(const std::string& method, const std::string& path, const route*& r, std::vector<std::string>& matches) const;

 private:
  void add(const char* method, const std::string& pattern, http_handler h, http_route_limits l);
  std::vector<std::unique_ptr<route>> routes_;
};

// Percent-decoding (and '+' as a space, for query components); false on a
// malformed escape, or when the result is not valid UTF-8 or holds a NUL.
bool decode_percent(std::string_view in, bool plus_is_space, std::string& out);
// The query string's parameters; false on a malformed component.
bool parse_query(std::string_view query, std::multimap<std::string, std::string>& out);
bool valid_utf8(std::string_view s);

}  // namespace trail
