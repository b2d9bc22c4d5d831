#include "vidnode/runtime/units.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace vidnode::runtime {

namespace {

/// Splits "1.5GiB" into 1.5 and "gib"; false if no number leads.
bool split_number(const std::string& text, double& number, std::string& unit) {
  if (text.empty())
    return false;
  size_t pos = 0;
  while (pos < text.size()
         && (std::isdigit(static_cast<unsigned char>(text[pos]))
             || text[pos] == '.'))
    ++pos;
  if (pos == 0)
    return false;
  auto digits = text.substr(0, pos);
  if (digits.find('.') != digits.rfind('.') || digits == ".")
    return false;
  try {
    number = std::stod(digits);
  } catch (...) {
    return false;
  }
  unit.clear();
  for (auto i = pos; i < text.size(); ++i)
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  return true;
}

} // namespace

std::optional<caf::timespan> parse_duration(const std::string& text) {
  double number = 0;
  std::string unit;
  if (!split_number(text, number, unit))
    return std::nullopt;
  double ns_per_unit = 0;
  if (unit.empty() || unit == "s")
    ns_per_unit = 1e9;
  else if (unit == "ms")
    ns_per_unit = 1e6;
  else if (unit == "us")
    ns_per_unit = 1e3;
  else if (unit == "ns")
    ns_per_unit = 1;
  else if (unit == "m" || unit == "min")
    ns_per_unit = 60e9;
  else if (unit == "h")
    ns_per_unit = 3600e9;
  else
    return std::nullopt;
  auto ns = number * ns_per_unit;
  constexpr double ten_years_ns = 10.0 * 365 * 24 * 3600 * 1e9;
  if (!std::isfinite(ns) || ns > ten_years_ns)
    return std::nullopt;
  return caf::timespan{static_cast<int64_t>(std::llround(ns))};
}

std::string format_duration(caf::timespan value) {
  auto ns = value.count();
  auto sign = std::string{ns < 0 ? "-" : ""};
  if (ns < 0)
    ns = -ns;
  char buf[64];
  auto with_unit = [&](double x, const char* unit) {
    if (x == std::floor(x))
      std::snprintf(buf, sizeof(buf), "%.0f%s", x, unit);
    else
      std::snprintf(buf, sizeof(buf), "%.3g%s", x, unit);
    return sign + buf;
  };
  if (ns == 0)
    return "0s";
  if (ns < 1000)
    return with_unit(static_cast<double>(ns), "ns");
  if (ns < 1000000)
    return with_unit(ns / 1e3, "us");
  if (ns < 1000000000)
    return with_unit(ns / 1e6, "ms");
  if (ns < 60 * 1000000000LL)
    return with_unit(ns / 1e9, "s");
  auto total_s = ns / 1000000000LL;
  if (ns % 1000000000LL != 0 || total_s < 60)
    return with_unit(ns / 1e9, "s");
  auto h = total_s / 3600;
  auto m = (total_s % 3600) / 60;
  auto s = total_s % 60;
  std::string result = sign;
  if (h > 0)
    result += std::to_string(h) + "h";
  if (m > 0)
    result += std::to_string(m) + "m";
  if (s > 0)
    result += std::to_string(s) + "s";
  return result;
}

std::optional<uint64_t> parse_bytes(const std::string& text) {
  double number = 0;
  std::string unit;
  if (!split_number(text, number, unit))
    return std::nullopt;
  double factor = 0;
  if (unit.empty() || unit == "b")
    factor = 1;
  else if (unit == "k" || unit == "kib")
    factor = 1024.0;
  else if (unit == "m" || unit == "mib")
    factor = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib")
    factor = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib")
    factor = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb")
    factor = 1e3;
  else if (unit == "mb")
    factor = 1e6;
  else if (unit == "gb")
    factor = 1e9;
  else if (unit == "tb")
    factor = 1e12;
  else
    return std::nullopt;
  auto bytes = number * factor;
  if (!std::isfinite(bytes) || bytes >= 1.8e19)
    return std::nullopt;
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string format_bytes(uint64_t value) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = static_cast<double>(value);
  size_t unit = 0;
  while (x >= 1024 && unit + 1 < std::size(units)) {
    x /= 1024;
    ++unit;
  }
  char buf[32];
  if (x == std::floor(x))
    std::snprintf(buf, sizeof(buf), "%.0f%s", x, units[unit]);
  else
    std::snprintf(buf, sizeof(buf), "%.3g%s", x, units[unit]);
  return buf;
}

std::string format_timestamp(caf::timestamp value) {
  auto ns = value.time_since_epoch().count();
  if (ns == 0)
    return "";
  auto seconds = static_cast<std::time_t>(ns / 1000000000LL);
  auto millis = static_cast<int>((ns / 1000000LL) % 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, millis);
  return buf;
}

} // namespace vidnode::runtime
