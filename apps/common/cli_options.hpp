#pragma once

/// @file
/// CLI11 options for vidnode's value types, shared by vidnode and vidctl.
/// Every option here reads its text itself and refuses anything it cannot
/// read exactly with a CLI::ValidationError that names the option, also for
/// values from a --config file; CLI11's own converters read an empty value
/// as 0 and let some negative numbers wrap into unsigned types.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "vidnode/runtime/units.hpp"

namespace vidnode::apps {

namespace detail {

/// Keeps a template parameter from being deduced from an argument.
template <class T>
struct identity {
  using type = T;
};

/// The name an error shows for an option added as `name` ("--size" of
/// "-s,--size").
inline std::string flag_of(const std::string& name) {
  auto comma = name.rfind(',');
  return comma == std::string::npos ? name : name.substr(comma + 1);
}

/// Reads `text` as a whole decimal number from `min` to `max`: digits only,
/// led by '-' only where `min` is negative. Nothing if `text` is empty, has
/// anything else (a '+', spaces, a fraction, an exponent, "0x") or is out of
/// range.
template <class T>
std::optional<T> parse_whole(const std::string& text, T min, T max) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  bool negative_allowed = false;
  if constexpr (std::is_signed_v<T>)
    negative_allowed = min < 0;
  if (text.empty() || (text.front() == '-' && !negative_allowed))
    return std::nullopt;
  T value{};
  auto last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data(), last, value);
  if (ec != std::errc{} || end != last || value < min || value > max)
    return std::nullopt;
  return value;
}

/// Reads `text` as a finite decimal number ("0.1", "2", "1.5e-3"). Nothing
/// if `text` is empty, has anything else (a '+', spaces, "nan", "inf") or
/// is past the range of a double.
inline std::optional<double> parse_real(const std::string& text) {
  double value = 0;
  auto last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data(), last, value);
  if (text.empty() || ec != std::errc{} || end != last || !std::isfinite(value))
    return std::nullopt;
  return value;
}

} // namespace detail

/// Adds an option that reads a whole number from `min` to `max` into
/// `target` (see detail::parse_whole for what is refused); its current value
/// is shown as the default. The description should state the bounds where
/// they are not the type's.
template <class T>
CLI::Option* add_number(CLI::App& app, const std::string& name, T& target,
                        typename detail::identity<T>::type min,
                        typename detail::identity<T>::type max,
                        const std::string& description) {
  auto option = app.add_option_function<std::string>(
    name,
    [&target, min, max, flag = detail::flag_of(name)](const std::string& text) {
      auto parsed = detail::parse_whole(text, min, max);
      if (!parsed)
        throw CLI::ValidationError(
          flag, "must be a whole number from " + std::to_string(min) + " to "
                  + std::to_string(max) + ", got '" + text + "'");
      target = *parsed;
    },
    description);
  bool negative_allowed = false;
  if constexpr (std::is_signed_v<T>)
    negative_allowed = min < 0;
  option->type_name(negative_allowed ? "INT" : "UINT");
  option->default_str(std::to_string(target));
  return option;
}

/// Adds an option that reads a finite decimal number into `target` (see
/// detail::parse_real for what is refused); its current value is shown as
/// the default. Bounds are the caller's to check.
inline CLI::Option* add_real(CLI::App& app, const std::string& name,
                             double& target, const std::string& description) {
  auto option = app.add_option_function<std::string>(
    name,
    [&target, flag = detail::flag_of(name)](const std::string& text) {
      auto parsed = detail::parse_real(text);
      if (!parsed)
        throw CLI::ValidationError(flag, "must be a number (e.g. 0.5), got '"
                                           + text + "'");
      target = *parsed;
    },
    description);
  option->type_name("FLOAT");
  option->default_str(CLI::detail::to_string(target));
  return option;
}

/// Adds an option that reads a duration ("30s", "500ms", "2m", "1h30m")
/// into `target`; its current value is shown as the default. A number
/// without a unit is refused unless it is zero (runtime::parse_duration
/// would read it as seconds, which a user may not have meant).
inline CLI::Option* add_duration(CLI::App& app, const std::string& name,
                                 caf::timespan& target,
                                 const std::string& description,
                                 bool show_default = true) {
  auto option = app.add_option_function<std::string>(
    name,
    [&target, flag = detail::flag_of(name)](const std::string& text) {
      auto parsed = runtime::parse_duration(text);
      if (!parsed || parsed->count() < 0)
        throw CLI::ValidationError(flag, "'" + text
                                           + "' is not a duration (e.g. 30s, "
                                             "500ms, 2m, 1h)");
      auto has_unit =
        text.find_first_not_of("0123456789.") != std::string::npos;
      if (!has_unit && parsed->count() != 0)
        throw CLI::ValidationError(flag, "'" + text + "' needs a unit (e.g. "
                                           + text + "s, " + text + "ms, " + text
                                           + "m)");
      target = *parsed;
    },
    description);
  option->type_name("DUR");
  if (show_default)
    option->default_str(runtime::format_duration(target));
  return option;
}

/// Adds `--name SIZE` (e.g. 2GiB, 512MiB) that sets `target` in bytes.
inline CLI::Option* add_size(CLI::App& app, const std::string& name,
                             uint64_t& target, const std::string& description) {
  auto option = app.add_option_function<std::string>(
    name,
    [&target, flag = detail::flag_of(name)](const std::string& text) {
      auto parsed = runtime::parse_bytes(text);
      if (!parsed)
        throw CLI::ValidationError(flag, "'" + text
                                           + "' is not a size (e.g. 2GiB, "
                                             "512MiB)");
      target = *parsed;
    },
    description);
  option->type_name("SIZE");
  option->default_str(runtime::format_bytes(target));
  return option;
}

/// Makes every option of `app` and of its subcommands that takes a value
/// refuse an empty one ("--join: must not be empty"), given on the command
/// line or in a --config file, except the options (or positionals) named in
/// `may_be_empty`. Without this, CLI11 stores an empty string, which most
/// options read as "not given" and so silently fall back to their default.
/// Call after every option is added, before parsing.
inline void refuse_empty_values(CLI::App& app,
                                const std::vector<std::string>& may_be_empty) {
  CLI::Validator not_empty{[](std::string& value) {
                             return value.empty()
                                      ? std::string{"must not be empty"}
                                      : std::string{};
                           },
                           ""};
  for (auto* option : app.get_options()) {
    auto exempt = false;
    for (const auto& name : may_be_empty)
      exempt = exempt || option->check_name(name);
    if (option->get_expected_min() > 0 && !exempt)
      option->check(not_empty);
  }
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
    refuse_empty_values(*sub, may_be_empty);
}

/// Prints what a CLI11 error asks for and returns the exit status: 0 for
/// --help and --version, 2 for usage errors, which are printed as
/// "NAME: ERROR" (`app`'s name, e.g. "vidctl: --width: ..."), like the
/// errors the programs find themselves, and a pointer to --help.
inline int usage_exit(CLI::App& app, const CLI::ParseError& e) {
  app.failure_message([](const CLI::App* self, const CLI::Error& error) {
    return self->get_name() + ": " + error.what()
           + "\nRun with --help for more information.\n";
  });
  auto code = app.exit(e);
  return code == 0 ? 0 : 2;
}

} // namespace vidnode::apps
