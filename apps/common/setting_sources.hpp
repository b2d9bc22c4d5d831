#pragma once

/// @file
/// Where a program's settings come from: the command line, a --config file
/// and environment variables, in that order of precedence (CLI11 reads the
/// config file for options not on the command line, then the environment
/// for options still not set). Every value goes through its option's own
/// validation whatever its source, and an error says which source gave it.

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/cli_options.hpp"

namespace vidnode::apps {

/// The environment variable of option `long_name` ("max-concurrency"):
/// `prefix` + the name in upper case with '-' as '_'
/// ("VIDNODE_MAX_CONCURRENCY").
inline std::string environment_name(const std::string& prefix,
                                    const std::string& long_name) {
  auto name = prefix;
  for (char c : long_name)
    name += c == '-'
              ? '_'
              : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

/// Gives every option of `app` with a long name its environment variable
/// (environment_name), except those named in `except` (e.g. "--help"). An
/// empty variable counts as unset, as it does for most Unix programs.
inline void add_environment_variables(CLI::App& app, const std::string& prefix,
                                      const std::vector<std::string>& except) {
  for (auto* option : app.get_options()) {
    auto names = option->get_lnames();
    if (names.empty())
      continue;
    auto skip = false;
    for (const auto& name : except)
      skip = skip || option->check_name(name);
    if (!skip)
      option->envname(environment_name(prefix, names.front()));
  }
}

/// Sets up `--config FILE` on `app`: a TOML or INI file whose keys are the
/// long option names (`max-concurrency = 2`); a key that is no option is an
/// error. `variable` (e.g. VIDNODE_CONFIG) names a file used when --config
/// is not given; a file named there that does not exist is an error too.
inline CLI::Option* add_config_option(CLI::App& app,
                                      const std::string& variable) {
  const char* from_environment = std::getenv(variable.c_str());
  auto named = from_environment != nullptr && *from_environment != '\0';
  auto option = app.set_config(
    "--config", named ? from_environment : "",
    "Read settings from a TOML/INI file whose keys are the long option names "
    "(max-concurrency = 2); the command line overrides it, and it overrides "
    "environment variables (default: $"
      + variable + ")",
    named);
  app.allow_config_extras(CLI::config_extras_mode::error);
  return option;
}

/// Which source gave option `flag` ("--max-concurrency") its value, when
/// not the command line: "--config FILE" or "VIDNODE_MAX_CONCURRENCY"; ""
/// for the command line (or no source). `argv` is what the program was
/// started with.
inline std::string source_name(const CLI::App& app, const std::string& flag,
                               int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == flag || arg.rfind(flag + "=", 0) == 0)
      return "";
  }
  const CLI::Option* option = nullptr;
  try {
    option = app.get_option(flag);
  } catch (const CLI::OptionNotFound&) {
    return "";
  }
  auto config = app.get_config_ptr();
  std::string file;
  for (int i = 1; i < argc && config != nullptr; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc)
      file = argv[i + 1];
    else if (arg.rfind("--config=", 0) == 0)
      file = arg.substr(9);
  }
  if (file.empty() && config != nullptr)
    file = config->get_default_str();
  if (!file.empty()) {
    try {
      for (const auto& item : CLI::ConfigTOML{}.from_file(file))
        if (item.parents.empty() && option->check_lname(item.name))
          return "--config " + file;
    } catch (const CLI::Error&) {
    }
  }
  const auto& variable = option->get_envname();
  const char* value =
    variable.empty() ? nullptr : std::getenv(variable.c_str());
  return value != nullptr && *value != '\0' ? variable : "";
}

/// source_name for an error message: "" for the command line, else
/// " (from --config FILE)" or " (from VIDNODE_MAX_CONCURRENCY)".
inline std::string source_of(const CLI::App& app, const std::string& flag,
                             int argc, char** argv) {
  auto name = source_name(app, flag, argc, argv);
  return name.empty() ? name : " (from " + name + ")";
}

/// The settings in effect as a config file that --config reads back: one
/// `name = value` line per option with a value (from the command line,
/// the config file, the environment or its default), each not at its
/// default followed by where it came from (`# VIDNODE_...`), and `# name =`
/// for options that have no value. Options named in `except` (--help,
/// --config ...) are left out.
inline std::string effective_config(const CLI::App& app,
                                    const std::vector<std::string>& except,
                                    int argc, char** argv) {
  std::string out;
  for (const auto* option : app.get_options()) {
    auto names = option->get_lnames();
    auto skip = names.empty();
    for (const auto& name : except)
      skip = skip || option->check_name(name);
    if (skip)
      continue;
    const auto& name = names.front();
    if (option->count() == 0) {
      auto fallback = option->get_default_str();
      if (fallback.empty() && option->get_expected_min() == 0)
        fallback = "false";
      out +=
        fallback.empty()
          ? "# " + name + " =\n"
          : name + " = " + CLI::detail::convert_arg_for_ini(fallback) + "\n";
      continue;
    }
    auto results = option->results();
    if (option->get_expected_min() == 0)
      results = {option->as<bool>() ? "true" : "false"};
    auto value =
      results.size() == 1
        ? CLI::detail::convert_arg_for_ini(results.front())
        : "[" + CLI::detail::ini_join(results, ',', '\0', '\0') + "]";
    auto source = source_name(app, "--" + name, argc, argv);
    out += name + " = " + value + "  # "
           + (source.empty() ? "command line" : source) + "\n";
  }
  return out;
}

/// Refuses a value that CLI11's config reader cut at a '#' inside quotes
/// (it reads `dir = "/a#b"` as `"/a`): a value from the config file that
/// still starts with its quote. Prints a usage error naming the option and
/// the file and returns 2, else 0.
inline int refuse_cut_values(const CLI::App& app, int argc, char** argv) {
  for (const auto* option : app.get_options()) {
    auto names = option->get_lnames();
    if (names.empty() || option->count() == 0)
      continue;
    auto flag = "--" + names.front();
    auto source = source_name(app, flag, argc, argv);
    if (source.rfind("--config ", 0) != 0)
      continue;
    for (const auto& value : option->results())
      if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
        std::fprintf(
          stderr,
          "%s: %s (from %s): the value %s is cut short: a '#' inside a "
          "quoted value is read as the start of a comment; give "
          "this value on the command line or in %s\n",
          app.get_name().c_str(), flag.c_str(), source.c_str(), value.c_str(),
          option->get_envname().c_str());
        return 2;
      }
  }
  return 0;
}

/// usage_exit, with the source of a bad value named when it was not the
/// command line: "vidnode: --max-concurrency (from
/// VIDNODE_MAX_CONCURRENCY): must be a whole number from 1 to 64, got
/// 'two'".
inline int usage_exit(CLI::App& app, const CLI::ParseError& e, int argc,
                      char** argv) {
  std::string what = e.what();
  auto colon = what.find(": ");
  if (what.rfind("--", 0) == 0 && colon != std::string::npos
      && e.get_exit_code() != 0) {
    auto flag = what.substr(0, colon);
    auto source = source_of(app, flag, argc, argv);
    if (!source.empty()) {
      std::fprintf(stderr,
                   "%s: %s%s%s\nRun with --help for more information.\n",
                   app.get_name().c_str(), flag.c_str(), source.c_str(),
                   what.substr(colon).c_str());
      return 2;
    }
  }
  return usage_exit(app, e);
}

} // namespace vidnode::apps
