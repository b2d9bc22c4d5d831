#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/runtime/units.hpp"

using namespace std::chrono_literals;
using vidnode::runtime::format_bytes;
using vidnode::runtime::format_duration;
using vidnode::runtime::format_timestamp;
using vidnode::runtime::parse_bytes;
using vidnode::runtime::parse_duration;

namespace {

caf::timespan span(caf::timespan x) {
  return x;
}

} // namespace

TEST_CASE("durations are read in every documented unit", "[units]") {
  CHECK(parse_duration("250ms") == span(250ms));
  CHECK(parse_duration("30s") == span(30s));
  CHECK(parse_duration("1.5s") == span(1500ms));
  CHECK(parse_duration("2m") == span(2min));
  CHECK(parse_duration("2min") == span(2min));
  CHECK(parse_duration("1h") == span(1h));
  CHECK(parse_duration("500us") == span(500us));
  CHECK(parse_duration("10ns") == span(10ns));
  CHECK(parse_duration("0") == span(0s));
}

TEST_CASE("a duration may combine units, largest first", "[units]") {
  CHECK(parse_duration("1h30m") == span(90min));
  CHECK(parse_duration("1m0.5s") == span(60500ms));
  CHECK_FALSE(parse_duration("1h30"));
  CHECK_FALSE(parse_duration("30 s"));
}

TEST_CASE("a bare number is read as seconds", "[units]") {
  CHECK(parse_duration("45") == span(45s));
  CHECK(parse_duration("0.25") == span(250ms));
}

TEST_CASE("a malformed or negative duration is refused", "[units]") {
  for (auto text : {"", "s", "abc", "1.2.3s", ".", "5 s", " 5s", "-5s", "5d",
                    "1e3s", "5sec"}) {
    INFO("'" << text << "'");
    CHECK_FALSE(parse_duration(text));
  }
}

TEST_CASE("a duration longer than ten years is refused", "[units]") {
  CHECK(parse_duration("87600h") == span(87600h));
  CHECK_FALSE(parse_duration("87601h"));
  CHECK_FALSE(parse_duration("99999999999999999999999h"));
}

TEST_CASE("durations are rendered in the unit that reads best", "[units]") {
  CHECK(format_duration(0s) == "0s");
  CHECK(format_duration(10ns) == "10ns");
  CHECK(format_duration(500us) == "500us");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(30s) == "30s");
  CHECK(format_duration(1500ms) == "1.5s");
  CHECK(format_duration(2min) == "2m");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(1h + 1s) == "1h1s");
  CHECK(format_duration(-5s) == "-5s");
}

TEST_CASE("every rendered duration reads back as the same duration",
          "[units]") {
  for (caf::timespan value :
       {span(0s), span(7ns), span(1500us), span(999999ns), span(12ms),
        span(1500ms), span(59s), span(90500ms), span(1234500ms),
        span(1h + 500ms), span(61s), span(90min), span(26h + 3min)}) {
    auto text = format_duration(value);
    INFO(value.count() << "ns rendered as " << text);
    CHECK(parse_duration(text) == value);
  }
}

TEST_CASE("sizes are read with binary, decimal and no units", "[units]") {
  CHECK(parse_bytes("16GiB") == 16ull << 30);
  CHECK(parse_bytes("512MiB") == 512ull << 20);
  CHECK(parse_bytes("64KiB") == 64ull << 10);
  CHECK(parse_bytes("2TiB") == 2ull << 40);
  CHECK(parse_bytes("16GB") == 16000000000ull);
  CHECK(parse_bytes("3kb") == 3000u);
  CHECK(parse_bytes("1024") == 1024u);
  CHECK(parse_bytes("100B") == 100u);
  CHECK(parse_bytes("1.5GiB") == 3ull << 29);
}

TEST_CASE("size units are case-insensitive and a bare G means GiB", "[units]") {
  CHECK(parse_bytes("16gib") == 16ull << 30);
  CHECK(parse_bytes("16GIB") == 16ull << 30);
  CHECK(parse_bytes("16G") == 16ull << 30);
  CHECK(parse_bytes("8m") == 8ull << 20);
}

TEST_CASE("a malformed or too large size is refused", "[units]") {
  for (auto text :
       {"", "GiB", "16 GiB", "16XB", "-1", "1..5G", "16EiB", "20000000TiB"}) {
    INFO("'" << text << "'");
    CHECK_FALSE(parse_bytes(text));
  }
}

TEST_CASE("sizes are rendered with a binary unit", "[units]") {
  CHECK(format_bytes(0) == "0B");
  CHECK(format_bytes(100) == "100B");
  CHECK(format_bytes(1024) == "1KiB");
  CHECK(format_bytes(512ull << 20) == "512MiB");
  CHECK(format_bytes(16ull << 30) == "16GiB");
  CHECK(format_bytes(3ull << 29) == "1.5GiB");
  CHECK(format_bytes(2048ull << 40) == "2048TiB");
}

TEST_CASE("a rendered size reads back within a percent", "[units]") {
  for (uint64_t value :
       std::vector<uint64_t>{1, 1023, 1536, (1ull << 20) - 1, (1ull << 30) - 1,
                             1000000000, 123456789012}) {
    auto text = format_bytes(value);
    INFO(value << " rendered as " << text);
    auto parsed = parse_bytes(text);
    REQUIRE(parsed);
    CHECK(static_cast<double>(*parsed)
          == Approx(static_cast<double>(value)).epsilon(0.01));
  }
}

TEST_CASE("timestamps are rendered as ISO 8601 UTC with milliseconds",
          "[units]") {
  caf::timestamp at{1795729710s + 123999us};
  CHECK(format_timestamp(at) == "2026-11-26T21:48:30.123Z");
  CHECK(format_timestamp(caf::timestamp{1ms}) == "1970-01-01T00:00:00.001Z");
}

TEST_CASE("the epoch renders as an empty timestamp", "[units]") {
  CHECK(format_timestamp(caf::timestamp{}).empty());
}
