#pragma once
// What a listing of the query API asks for, parsed from the request's query
// string, and the one SQL statement that answers it. Pure: no libpq, no HTTP,
// so the parsing rules and the statements have unit tests of their own.
//
// Two orders, both keyset-paged (never OFFSET, so a deep page costs what the
// first page costs and paging stays stable while events arrive):
//   - newest first: (occurred_at, sequence) descending, the position of the
//     last row carried by the page token;
//   - catch-up (`after_sequence=N&order=asc`): sequence ascending, through
//     audit.event_ids' (tenant_id, sequence) key.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/page_token.h"

namespace trail {

struct event_query {
  std::string tenant;
  // Plural filters: any of the values (comma-separated in the query string).
  std::vector<std::string> severities, categories, actions;
  // Exact-match filters, by column name.
  std::map<std::string, std::string> equals;
  std::optional<int64_t> from_us, to_us;  // occurred_at >= from, < to
  size_t page_size = 50;
  bool by_sequence = false;  // catch-up order
  int64_t after_sequence = 0;
  std::optional<page_position> after;  // from page_token
  std::string page_token;              // as given (decoded by the caller, which holds the key)
};

// [A-Za-z0-9_:-], 1–128 bytes: what the ingest side accepts as a tenant id
// (and what may be quoted into SET LOCAL trail.tenant).
bool valid_tenant_id(const std::string& t);

struct query_error {
  std::string code;  // "invalid_parameter", "unknown_parameter", "invalid_page_token"
  std::string message;
};

inline constexpr size_t kDefaultPageSize = 50;
inline constexpr size_t kMaxPageSize = 1000;

// Parses the query string's parameters (name -> values, as given) for a
// listing of `tenant`. `now_us` anchors relative ranges (`last=24h`).
// Unknown parameters, repeated ones and bad values are errors naming them.
std::optional<query_error> parse_event_query(const std::multimap<std::string, std::string>& params,
                                             const std::string& tenant, int64_t now_us, event_query& out);

// A canonical text of the tenant, order and every filter (not the page size
// or token): what a page token is bound to.
std::string filter_fingerprint(const event_query& q);

struct sql_statement {
  std::string text;
  std::vector<std::string> params;  // $1.. as text
};

// The statement for one page: `page_size + 1` rows (the extra one says whether
// there is a next page), selected with kStoredEventColumns (sinks/event_reader.h).
sql_statement listing_sql(const event_query& q, const char* stored_event_columns);

// Every event matching the filters, oldest first by (occurred_at, sequence),
// no limit: an export streams it.
sql_statement export_sql(const event_query& q, const char* stored_event_columns);

// The same rows as export_sql as one COPY … TO STDOUT (FORMAT csv, HEADER)
// of `select_list`. COPY takes no parameters: the caller inlines `params` as
// escaped literals (PQescapeLiteral) in place of $1, $2, ….
sql_statement csv_copy_sql(const event_query& q, const std::string& select_list);

// Lookups in two steps, so that PostgreSQL prunes audit.events to the
// partitions that hold the rows at planning time (a join from audit.event_ids
// would plan and probe every daily partition): first the identities'
// (sequence, occurred_at) from audit.event_ids, then the events by them.
bool plain_catch_up(const event_query& q);  // catch-up without filters: the two-step path applies
// `page_size + 1` identities after the position, as (sequence, occurred_at text).
sql_statement identity_page_sql(const event_query& q);
// The events whose sequences run from `first` to `last`, every one of them
// stored at one of `times` (a timestamptz[] literal), in sequence order. The
// times let PostgreSQL plan only their partitions; a sequence range (not a
// second array) keeps the index walk to one descent per time.
sql_statement events_by_position_sql(const std::string& tenant, const std::string& times, int64_t first, int64_t last,
                                     const char* stored_event_columns);
// Where an event sits: its occurred_at, from its sequence.
sql_statement position_sql(const std::string& tenant, int64_t sequence);

}  // namespace trail
