#include <catch2/catch.hpp>

#include "common/time.h"
#include "common/uuid.h"

TEST_CASE("RFC 3339 parsing is strict and keeps microseconds", "[time]") {
  using trail::parse_rfc3339_us;
  CHECK(parse_rfc3339_us("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339_us("1970-01-01T00:00:01.5Z") == 1500000);
  CHECK(parse_rfc3339_us("1970-01-01T00:00:00.0000019Z") == 1);  // truncated to µs
  CHECK(parse_rfc3339_us("2024-02-29T12:00:00+02:00") == parse_rfc3339_us("2024-02-29T10:00:00Z"));
  CHECK(parse_rfc3339_us("1969-12-31T23:59:59Z") == -1000000);
  for (const char* bad : {"2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01 00:00:00Z",
                          "2023-01-01T24:00:00Z", "2023-01-01T00:00:00", "2023-01-01T00:00:00+5",
                          "2023-01-01T00:00:00.Z", "2023-01-01T00:00:00Zjunk", "0000-01-01T00:00:00Z"})
    CHECK_FALSE(parse_rfc3339_us(bad).has_value());
}

TEST_CASE("RFC 3339 formatting round-trips", "[time]") {
  for (int64_t us : {int64_t{0}, int64_t{1522949460123456}, int64_t{-1}, int64_t{253402300799999999}}) {
    auto text = trail::format_rfc3339_us(us);
    CHECK(trail::parse_rfc3339_us(text) == us);
  }
  CHECK(trail::format_rfc3339_us(1522949460000001) == "2018-04-05T17:31:00.000001Z");
}

TEST_CASE("UUIDv7 layout", "[uuid]") {
  auto u = trail::uuid_v7(0x0123456789abULL, 0, 0);
  CHECK(u.substr(0, 13) == "01234567-89ab");
  CHECK(u[14] == '7');
  CHECK((u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b'));
  CHECK(trail::uuid_v7_random() != trail::uuid_v7_random());
}
