#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/timestamp.hpp>

namespace vidnode::runtime {

/// Parses a duration as users write it: "250ms", "30s", "1.5s", "2m", "1h",
/// "1h30m", "500us", "0"; a bare number means seconds. Reads everything
/// format_duration writes. Nothing if it is malformed, negative or longer
/// than 10 years.
std::optional<caf::timespan> parse_duration(const std::string& text);

/// Renders a duration in the unit that reads best: "250ms", "30s", "1.5s",
/// "2m", "1h30m".
std::string format_duration(caf::timespan value);

/// Parses a size: "16GiB", "512MiB", "64KiB", "16GB" (10^9), "1024" (bytes);
/// units are case-insensitive, "G" alone means GiB. Nothing if malformed.
std::optional<uint64_t> parse_bytes(const std::string& text);

/// Renders a size with a binary unit: "16GiB", "1.5GiB", "512MiB", "100B".
std::string format_bytes(uint64_t value);

/// Renders a wall-clock time as ISO 8601 UTC with milliseconds
/// ("2026-11-26T21:48:30.123Z"); "" for the epoch.
std::string format_timestamp(caf::timestamp value);

} // namespace vidnode::runtime
