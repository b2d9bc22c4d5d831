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
    unit +=
      static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  return true;
}

/// Renders `x` with at most `decimals` decimals and no trailing zeros, never
/// in exponent notation ("1.5", "1234.5", "3").
std::string fixed(double x, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, x);
  std::string text = buf;
  if (text.find('.') != std::string::npos) {
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.')
      text.pop_back();
  }
  return text;
}

} // namespace

namespace {

/// Nanoseconds per unit of a duration ("ms" -> 1e6); 0 if unknown.
double ns_per(const std::string& unit) {
  if (unit == "s")
    return 1e9;
  if (unit == "ms")
    return 1e6;
  if (unit == "us")
    return 1e3;
  if (unit == "ns")
    return 1;
  if (unit == "m" || unit == "min")
    return 60e9;
  if (unit == "h")
    return 3600e9;
  return 0;
}

} // namespace

std::optional<caf::timespan> parse_duration(const std::string& text) {
  // One or more NUMBER UNIT parts ("1h30m", "1m0.5s"); a lone bare number
  // means seconds.
  double total_ns = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    auto digits_end = pos;
    while (digits_end < text.size()
           && (std::isdigit(static_cast<unsigned char>(text[digits_end]))
               || text[digits_end] == '.'))
      ++digits_end;
    auto unit_end = digits_end;
    while (unit_end < text.size()
           && std::isalpha(static_cast<unsigned char>(text[unit_end])))
      ++unit_end;
    double number = 0;
    std::string unit;
    if (!split_number(text.substr(pos, unit_end - pos), number, unit))
      return std::nullopt;
    if (unit.empty() && (pos != 0 || unit_end != text.size()))
      return std::nullopt;
    auto factor = unit.empty() ? 1e9 : ns_per(unit);
    if (factor == 0)
      return std::nullopt;
    total_ns += number * factor;
    pos = unit_end;
  }
  constexpr double ten_years_ns = 10.0 * 365 * 24 * 3600 * 1e9;
  if (text.empty() || !std::isfinite(total_ns) || total_ns > ten_years_ns)
    return std::nullopt;
  return caf::timespan{static_cast<int64_t>(std::llround(total_ns))};
}

std::string format_duration(caf::timespan value) {
  auto ns = value.count();
  auto sign = std::string{ns < 0 ? "-" : ""};
  if (ns < 0)
    ns = -ns;
  auto with_unit = [&](double x, const char* unit) {
    return sign + fixed(x, 3) + unit;
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
  // Three significant digits, as "%.3g" would give, but never "1.02e+03".
  return fixed(x, x < 10 ? 2 : x < 100 ? 1 : 0) + units[unit];
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
