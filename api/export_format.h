#pragma once
// The rows of an export, rendered from stored events (pure):
//   - NDJSON: one committed CloudEvent per line, as the listing shows them;
//   - CSV (RFC 4180): a header row, then one row per event, CRLF line ends,
//     a field quoted when it holds a comma, a quote, CR or LF (quotes doubled);
//     JSON columns (related_resources, changes, metadata, extra) as
//     serialized JSON; absent values as empty fields.

#include <string>

#include "sinks/event_reader.h"

namespace trail {

enum class export_format { csv, ndjson };

// The CSV header row (with its CRLF).
const std::string& csv_header();
void append_csv_row(const stored_event& ev, std::string& out);
void append_ndjson_row(const stored_event& ev, std::string& out);

}  // namespace trail
