#pragma once
// The rows of an export (pure):
//   - NDJSON: one committed CloudEvent per line, as the listing shows them,
//     rendered from stored events;
//   - CSV (RFC 4180): PostgreSQL's own COPY … TO (FORMAT csv, HEADER) of
//     `csv_select_list()` — a header row, a field quoted when it holds a
//     comma, a quote, CR or LF (quotes doubled), JSON columns as serialized
//     JSON, absent values empty, and a text cell that begins with =, +, -,
//     @, a tab or a CR prefixed with an apostrophe (a spreadsheet would run
//     it as a formula) — with its LF record ends turned into CRLF by
//     `crlf_records`.

#include <string>

#include "sinks/event_reader.h"

namespace trail {

// ledger: one line per stored row, its canonical object and its chain links
// (integrity/verify.h), in sequence order: what `traild verify` checks offline.
enum class export_format { csv, ndjson, ledger };

void append_ndjson_row(const stored_event& ev, std::string& out);
// A ledger line and its newline; false when the row's JSON columns are not JSON.
bool append_ledger_row(const stored_event& ev, std::string& out);

// The SELECT list of a CSV export: every stored column, timestamps as RFC
// 3339 in UTC with microseconds, under the header names the CSV carries.
const std::string& csv_select_list();

// Turns the LF that ends each CSV record into CRLF, leaving line breaks
// inside quoted fields alone; fed chunk by chunk (a quote may span chunks).
// Counts the records it ended.
class crlf_records {
 public:
  void convert(std::string_view in, std::string& out);
  size_t records() const { return records_; }

 private:
  bool quoted_ = false;
  size_t records_ = 0;
};

}  // namespace trail
