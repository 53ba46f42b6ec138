#pragma once
// RFC 3339 timestamps as Trail stores them: microseconds since the Unix epoch, UTC.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trail {

// Parses a strict RFC 3339 date-time ("2018-04-05T17:31:00Z", fractional
// seconds of any length, "Z" or a "+HH:MM"/"-HH:MM" offset). Digits beyond
// microseconds are truncated. Years 0001..9999 only (PostgreSQL's range is
// wider, but nothing outside it is a plausible audit time).
std::optional<int64_t> parse_rfc3339_us(std::string_view text);

// Formats as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (always six fractional digits).
std::string format_rfc3339_us(int64_t unix_us);

int64_t now_unix_us();

}  // namespace trail
