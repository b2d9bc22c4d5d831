#pragma once

/// @file
/// CLI11 options for vidnode's value types, shared by vidnode and vidctl.

#include <string>

#include <CLI/CLI.hpp>

#include "vidnode/runtime/units.hpp"

namespace vidnode::apps {

/// Adds an option that reads a duration ("30s", "500ms", "2m") into
/// `target`; its current value is shown as the default.
inline CLI::Option* add_duration(CLI::App& app, const std::string& name,
                                 caf::timespan& target,
                                 const std::string& description,
                                 bool show_default = true) {
  auto flag =
    name.substr(name.rfind(',') == std::string::npos ? 0 : name.rfind(',') + 1);
  auto option = app.add_option_function<std::string>(
    name,
    [&target, flag](const std::string& text) {
      auto parsed = runtime::parse_duration(text);
      if (!parsed || parsed->count() < 0)
        throw CLI::ValidationError(flag, "'" + text
                                           + "' is not a duration (e.g. 30s, "
                                             "500ms, 2m, 1h)");
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
    [&target, name](const std::string& text) {
      auto parsed = runtime::parse_bytes(text);
      if (!parsed)
        throw CLI::ValidationError(name, "'" + text
                                           + "' is not a size (e.g. 2GiB, "
                                             "512MiB)");
      target = *parsed;
    },
    description);
  option->type_name("SIZE");
  option->default_str(runtime::format_bytes(target));
  return option;
}

/// Parses the exit status a CLI11 error asks for: 0 for --help and
/// --version, 2 for usage errors.
inline int usage_exit(CLI::App& app, const CLI::ParseError& e) {
  auto code = app.exit(e);
  return code == 0 ? 0 : 2;
}

} // namespace vidnode::apps
