#pragma once

/// @file
/// vidnode's log lines: every component logs through spdlog's default
/// logger; this sets how its lines look (text or one JSON object per line)
/// and writes lines that carry structured fields (a job's id, model, node,
/// device, attempt), so that a JSON line can be filtered by field instead
/// of by parsing its message. No spdlog type appears here: an application
/// that embeds vidnode needs no spdlog headers to use it.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace vidnode::runtime {

/// How log lines are written.
enum class log_format {
  /// `[2026-12-01 19:30:00.123] [vidnode] [info] job 7 running model=sim
  /// node=gpu1 device=cuda:0 attempt=1`: spdlog's default pattern, the
  /// fields appended as key=value (values with spaces or quotes are quoted,
  /// as logfmt does).
  text,
  /// `{"time":"2026-12-01T19:30:00.123Z","level":"info","logger":"vidnode",
  /// "msg":"job 7 running","job":7,"model":"sim",...}`: one JSON object per
  /// line, UTC time with milliseconds, then the line's fields in order.
  json,
};

/// "text" or "json"; nothing for anything else.
std::optional<log_format> parse_log_format(std::string_view text);

/// Makes spdlog's default logger (and every sink it has) write `format`.
/// Call after the default logger is set up and before the actor system
/// starts; loggers created later keep spdlog's own format.
void use_log_format(log_format format);

/// The severity of a line written with log_line.
enum class log_level { debug, info, warn, error };

/// A field of a structured log line: a key (a lower-case identifier such
/// as "job" or "device") and a whole number, a number (seconds, with a
/// `_seconds` key) or a string.
struct log_field {
  std::string_view key;
  std::variant<int64_t, double, std::string_view> value;
};

/// Writes `message` at `level` to the default logger with `fields` after
/// it (see log_format). Cheap when the level is off: nothing is formatted.
/// Thread-safe, as spdlog's loggers are.
void log_line(log_level level, std::string_view message,
              std::initializer_list<log_field> fields);

/// log_line with fields gathered at run time.
void log_line(log_level level, std::string_view message,
              const std::vector<log_field>& fields);

} // namespace vidnode::runtime
