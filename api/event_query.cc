#include "api/event_query.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "common/time.h"

namespace trail {
namespace {

// Exact-match filters: query parameter -> column of audit.events.
const std::map<std::string, std::string>& equality_filters() {
  static const std::map<std::string, std::string> m = {
      {"actor_id", "actor_id"},           {"actor_type", "actor_type"},         {"resource_type", "resource_type"},
      {"resource_id", "resource_id"},     {"source_service", "source_service"}, {"correlation_id", "correlation_id"},
      {"trace_id", "trace_id"},           {"outcome", "outcome_status"},        {"ce_source", "ce_source"},
      {"ce_id", "ce_id"}};
  return m;
}

const std::set<std::string>& known_parameters() {
  static const std::set<std::string> s = [] {
    std::set<std::string> k = {"severities", "categories", "actions", "from", "to", "last", "page_size", "page_token",
                               "after_sequence", "order"};
    for (const auto& [name, column] : equality_filters()) k.insert(name);
    return k;
  }();
  return s;
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

// "info" and "SEVERITY_INFO" alike, as the ingest side accepts them.
std::string with_prefix(const std::string& prefix, const std::string& v) {
  const std::string u = upper(v);
  return u.rfind(prefix, 0) == 0 ? u : prefix + u;
}

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    const size_t comma = v.find(',', start);
    const size_t end = comma == std::string::npos ? v.size() : comma;
    if (end > start) out.push_back(v.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::optional<int64_t> parse_int(const std::string& v) {
  int64_t n = 0;
  const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) return std::nullopt;
  return n;
}

// "90s", "15m", "24h", "7d".
std::optional<int64_t> parse_duration_us(const std::string& v) {
  if (v.size() < 2) return std::nullopt;
  const auto n = parse_int(v.substr(0, v.size() - 1));
  if (!n || *n <= 0) return std::nullopt;
  int64_t unit = 0;
  switch (v.back()) {
    case 's': unit = 1000000LL; break;
    case 'm': unit = 60LL * 1000000; break;
    case 'h': unit = 3600LL * 1000000; break;
    case 'd': unit = 86400LL * 1000000; break;
    default: return std::nullopt;
  }
  if (*n > INT64_MAX / unit) return std::nullopt;
  return *n * unit;
}

query_error invalid(const std::string& name, const std::string& why) {
  return query_error{"invalid_parameter", name + ": " + why};
}

// Appends "$n" for a new parameter.
std::string bind(sql_statement& s, std::string value) {
  s.params.push_back(std::move(value));
  return "$" + std::to_string(s.params.size());
}

std::string quoted_text_array(const std::vector<std::string>& values) {
  // A PostgreSQL array literal of quoted elements.
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// One value is written as `=`, not `= ANY(array)`: listings are planned once
// per statement shape (generic plans), and only `=` lets such a plan walk a
// (tenant_id, column, occurred_at) index in time order.
void any_of(sql_statement& s, const char* column, const std::vector<std::string>& values) {
  if (values.empty()) return;
  s.text += std::string(" AND e.") + column;
  s.text += values.size() == 1 ? " = " + bind(s, values[0]) : " = ANY(" + bind(s, quoted_text_array(values)) + "::text[])";
}

void append_filters(const event_query& q, sql_statement& s) {
  any_of(s, "severity", q.severities);
  any_of(s, "category", q.categories);
  any_of(s, "action", q.actions);
  const auto& columns = equality_filters();
  for (const auto& [name, value] : q.equals) s.text += " AND e." + columns.at(name) + " = " + bind(s, value);
  if (q.from_us) s.text += " AND e.occurred_at >= " + bind(s, format_rfc3339_us(*q.from_us)) + "::timestamptz";
  if (q.to_us) s.text += " AND e.occurred_at < " + bind(s, format_rfc3339_us(*q.to_us)) + "::timestamptz";
}

}  // namespace

bool valid_tenant_id(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '-'))
      return false;
  return true;
}

std::optional<query_error> parse_event_query(const std::multimap<std::string, std::string>& params,
                                             const std::string& tenant, int64_t now_us, event_query& out) {
  out = event_query{};
  out.tenant = tenant;
  std::vector<std::string> unknown;
  for (auto it = params.begin(); it != params.end(); it = params.upper_bound(it->first)) {
    if (!known_parameters().count(it->first)) unknown.push_back(it->first);
    else if (params.count(it->first) > 1) return invalid(it->first, "given more than once (use a comma-separated list)");
  }
  if (!unknown.empty()) {
    std::string names;
    for (const auto& n : unknown) names += (names.empty() ? "" : ", ") + n;
    return query_error{"unknown_parameter", "unknown query parameter(s): " + names};
  }
  auto get = [&](const char* name) -> const std::string* {
    auto it = params.find(name);
    return it == params.end() ? nullptr : &it->second;
  };
  if (auto* v = get("severities"))
    for (auto& x : split_list(*v)) {
      static const std::set<std::string> known = {"SEVERITY_DEBUG", "SEVERITY_INFO",     "SEVERITY_NOTICE",  "SEVERITY_WARNING",
                                                  "SEVERITY_ERROR", "SEVERITY_CRITICAL", "SEVERITY_SECURITY"};
      out.severities.push_back(with_prefix("SEVERITY_", x));
      if (!known.count(out.severities.back()))
        return invalid("severities", "'" + x + "' is not one of debug, info, notice, warning, error, critical, security");
    }
  if (auto* v = get("categories"))
    for (auto& x : split_list(*v)) out.categories.push_back(with_prefix("CATEGORY_", x));
  if (auto* v = get("actions")) out.actions = split_list(*v);
  for (const char* name : {"severities", "categories", "actions"})
    if (get(name) && split_list(*get(name)).empty()) return invalid(name, "an empty list");
  for (const auto& [name, column] : equality_filters()) {
    const std::string* v = get(name.c_str());
    if (!v) continue;
    if (v->empty()) return invalid(name, "empty");
    std::string value = *v;
    if (name == "actor_type") value = with_prefix("ACTOR_TYPE_", value);
    if (name == "outcome") {
      value = upper(value);
      if (value != "SUCCESS" && value != "FAILURE") return invalid(name, "SUCCESS or FAILURE");
    }
    out.equals[name] = value;
  }
  if (out.equals.count("ce_source") != out.equals.count("ce_id"))
    return invalid(out.equals.count("ce_source") ? "ce_id" : "ce_source", "ce_source and ce_id go together");
  if (auto* v = get("from")) {
    out.from_us = parse_rfc3339_us(*v);
    if (!out.from_us) return invalid("from", "not an RFC 3339 date-time");
  }
  if (auto* v = get("to")) {
    out.to_us = parse_rfc3339_us(*v);
    if (!out.to_us) return invalid("to", "not an RFC 3339 date-time");
  }
  if (auto* v = get("last")) {
    if (out.from_us) return invalid("last", "give either last or from");
    const auto d = parse_duration_us(*v);
    if (!d) return invalid("last", "a duration such as 90s, 15m, 24h or 7d");
    out.from_us = now_us - *d;
  }
  if (out.from_us && out.to_us && *out.from_us >= *out.to_us) return invalid("from", "must be before to");
  if (auto* v = get("page_size")) {
    const auto n = parse_int(*v);
    if (!n || *n < 1 || static_cast<size_t>(*n) > kMaxPageSize)
      return invalid("page_size", "an integer from 1 to " + std::to_string(kMaxPageSize));
    out.page_size = static_cast<size_t>(*n);
  }
  const std::string* order = get("order");
  if (order && *order != "asc" && *order != "desc") return invalid("order", "asc (catch-up by sequence) or desc");
  if (auto* v = get("after_sequence")) {
    const auto n = parse_int(*v);
    if (!n || *n < 0) return invalid("after_sequence", "a sequence number (0 or more)");
    if (order && *order == "desc") return invalid("order", "after_sequence reads in sequence order (order=asc)");
    out.after_sequence = *n;
    out.by_sequence = true;
  }
  if (order && *order == "asc") out.by_sequence = true;
  if (auto* v = get("page_token")) out.page_token = *v;
  return std::nullopt;
}

std::string filter_fingerprint(const event_query& q) {
  std::string f = "v1\x1f" + q.tenant + "\x1f" + (q.by_sequence ? "asc" : "desc");
  auto list = [&f](const char* name, const std::vector<std::string>& v) {
    if (v.empty()) return;
    std::vector<std::string> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    f += std::string("\x1f") + name + "=";
    for (const auto& x : sorted) f += x + "\x1e";
  };
  list("severities", q.severities);
  list("categories", q.categories);
  list("actions", q.actions);
  for (const auto& [name, value] : q.equals) f += "\x1f" + name + "=" + value;
  if (q.from_us) f += "\x1f" "from=" + std::to_string(*q.from_us);
  if (q.to_us) f += "\x1f" "to=" + std::to_string(*q.to_us);
  if (q.by_sequence) f += "\x1f" "after_sequence=" + std::to_string(q.after_sequence);
  return f;
}

sql_statement listing_sql(const event_query& q, const char* columns) {
  sql_statement s;
  const std::string limit = std::to_string(q.page_size + 1);
  if (q.by_sequence) {
    // The identity table's (tenant_id, sequence) key gives the order; each row
    // is fetched from its partition by (tenant_id, occurred_at, sequence).
    const int64_t after = q.after ? std::max(q.after->sequence, q.after_sequence) : q.after_sequence;
    s.text = std::string("SELECT ") + columns +
             " FROM audit.event_ids i JOIN audit.events e ON e.tenant_id = i.tenant_id AND e.occurred_at = i.occurred_at"
             " AND e.sequence = i.sequence WHERE i.tenant_id = " + bind(s, q.tenant) +
             " AND i.sequence > " + bind(s, std::to_string(after)) + "::bigint";
    append_filters(q, s);
    s.text += " ORDER BY i.sequence LIMIT " + limit;
    return s;
  }
  s.text = std::string("SELECT ") + columns + " FROM audit.events e WHERE e.tenant_id = " + bind(s, q.tenant);
  append_filters(q, s);
  if (q.after) {
    // The redundant bound lets every (tenant_id, …, occurred_at) index start
    // its backward scan at the position; the row comparison breaks ties.
    const std::string t = bind(s, format_rfc3339_us(q.after->occurred_at_us));
    const std::string seq = bind(s, std::to_string(q.after->sequence));
    s.text += " AND e.occurred_at <= " + t + "::timestamptz AND (e.occurred_at, e.sequence) < (" + t + "::timestamptz, " +
              seq + "::bigint)";
  }
  s.text += " ORDER BY e.occurred_at DESC, e.sequence DESC LIMIT " + limit;
  return s;
}

sql_statement export_sql(const event_query& q, const char* columns) {
  sql_statement s;
  s.text = std::string("SELECT ") + columns + " FROM audit.events e WHERE e.tenant_id = " + bind(s, q.tenant);
  append_filters(q, s);
  s.text += " ORDER BY e.occurred_at, e.sequence";
  return s;
}

sql_statement csv_copy_sql(const event_query& q, const std::string& select_list) {
  sql_statement s;
  s.text = "COPY (SELECT " + select_list + " FROM audit.events e WHERE e.tenant_id = " + bind(s, q.tenant);
  append_filters(q, s);
  s.text += " ORDER BY e.occurred_at, e.sequence) TO STDOUT WITH (FORMAT csv, HEADER)";
  return s;
}

bool plain_catch_up(const event_query& q) {
  return q.by_sequence && q.severities.empty() && q.categories.empty() && q.actions.empty() && q.equals.empty() &&
         !q.from_us && !q.to_us;
}

namespace {
constexpr const char* kTimeText = "to_char(i.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

sql_statement identity_page_sql(const event_query& q) {
  sql_statement s;
  const int64_t after = q.after ? std::max(q.after->sequence, q.after_sequence) : q.after_sequence;
  s.text = std::string("SELECT i.sequence, ") + kTimeText + " FROM audit.event_ids i WHERE i.tenant_id = " + bind(s, q.tenant) +
           " AND i.sequence > " + bind(s, std::to_string(after)) + "::bigint ORDER BY i.sequence LIMIT " +
           std::to_string(q.page_size + 1);
  return s;
}

sql_statement events_by_position_sql(const std::string& tenant, const std::string& times, int64_t first, int64_t last,
                                     const char* columns) {
  sql_statement s;
  s.text = std::string("SELECT ") + columns + " FROM audit.events e WHERE e.tenant_id = " + bind(s, tenant) +
           " AND e.occurred_at = ANY(" + bind(s, times) + "::timestamptz[]) AND e.sequence BETWEEN " +
           bind(s, std::to_string(first)) + "::bigint AND " + bind(s, std::to_string(last)) + "::bigint ORDER BY e.sequence";
  return s;
}

sql_statement position_sql(const std::string& tenant, int64_t sequence) {
  sql_statement s;
  s.text = std::string("SELECT i.sequence, ") + kTimeText + " FROM audit.event_ids i WHERE i.tenant_id = " + bind(s, tenant) +
           " AND i.sequence = " + bind(s, std::to_string(sequence)) + "::bigint";
  return s;
}

}  // namespace trail
