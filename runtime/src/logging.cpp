#include "vidnode/runtime/logging.hpp"

#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

namespace vidnode::runtime {

namespace {

/// The fields of a line being written.
struct field_range {
  const log_field* first = nullptr;
  const log_field* last = nullptr;
  const log_field* begin() const {
    return first;
  }
  const log_field* end() const {
    return last;
  }
};

/// The fields of the line this thread is writing (loggers format in the
/// caller's thread), or none.
thread_local const field_range* current_fields = nullptr;

/// Whether a logfmt value must be quoted: empty, or has a space, a quote,
/// an '=' or a control character.
bool needs_quotes(std::string_view value) {
  if (value.empty())
    return true;
  for (unsigned char c : value)
    if (c <= ' ' || c == '"' || c == '=' || c == 0x7f)
      return true;
  return false;
}

/// Appends the current line's fields as ` key=value` (the text format).
class text_fields_flag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (current_fields == nullptr)
      return;
    std::string out;
    for (const auto& field : *current_fields) {
      out += ' ';
      out += field.key;
      out += '=';
      if (auto number = std::get_if<int64_t>(&field.value)) {
        out += std::to_string(*number);
        continue;
      }
      if (auto real = std::get_if<double>(&field.value)) {
        out += nlohmann::json(*real).dump();
        continue;
      }
      auto text = std::get<std::string_view>(field.value);
      if (needs_quotes(text))
        out +=
          nlohmann::json(std::string{text})
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      else
        out += text;
    }
    dest.append(out.data(), out.data() + out.size());
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<text_fields_flag>();
  }
};

/// spdlog's default pattern with the fields before the end of the line.
std::unique_ptr<spdlog::formatter> make_text_formatter() {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<text_fields_flag>('&').set_pattern(
    "[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v%&");
  return formatter;
}

/// "2026-12-01T19:30:00.123Z".
std::string utc_timestamp(spdlog::log_clock::time_point when) {
  using namespace std::chrono;
  auto since_epoch = when.time_since_epoch();
  auto seconds = duration_cast<std::chrono::seconds>(since_epoch);
  auto millis = duration_cast<milliseconds>(since_epoch - seconds).count();
  auto time = static_cast<std::time_t>(seconds.count());
  std::tm tm{};
  gmtime_r(&time, &tm);
  char text[40];
  auto length = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + length, sizeof(text) - length, ".%03dZ",
                static_cast<int>(millis));
  return text;
}

/// The names --log-level takes ("warn", not spdlog's "warning").
const char* level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

/// One JSON object per line: time, level, logger, msg, then the fields.
class json_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["time"] = utc_timestamp(msg.time);
    line["level"] = level_name(msg.level);
    line["logger"] =
      std::string(msg.logger_name.data(), msg.logger_name.size());
    line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    if (current_fields != nullptr)
      for (const auto& field : *current_fields) {
        std::string key{field.key};
        if (auto number = std::get_if<int64_t>(&field.value))
          line[key] = *number;
        else if (auto real = std::get_if<double>(&field.value))
          line[key] = *real;
        else
          line[key] = std::string{std::get<std::string_view>(field.value)};
      }
    auto text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text += '\n';
    dest.append(text.data(), text.data() + text.size());
  }

  std::unique_ptr<formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

spdlog::level::level_enum to_spdlog(log_level level) {
  switch (level) {
    case log_level::debug:
      return spdlog::level::debug;
    case log_level::info:
      return spdlog::level::info;
    case log_level::warn:
      return spdlog::level::warn;
    case log_level::error:
      break;
  }
  return spdlog::level::err;
}

} // namespace

std::optional<log_format> parse_log_format(std::string_view text) {
  if (text == "text")
    return log_format::text;
  if (text == "json")
    return log_format::json;
  return std::nullopt;
}

void use_log_format(log_format format) {
  auto logger = spdlog::default_logger();
  if (format == log_format::json)
    logger->set_formatter(std::make_unique<json_formatter>());
  else
    logger->set_formatter(make_text_formatter());
}

namespace {

void write_line(log_level level, std::string_view message, field_range fields) {
  auto logger = spdlog::default_logger_raw();
  auto spd_level = to_spdlog(level);
  if (!logger->should_log(spd_level))
    return;
  auto previous = current_fields;
  current_fields = &fields;
  logger->log(spd_level, "{}", message);
  current_fields = previous;
}

} // namespace

void log_line(log_level level, std::string_view message,
              std::initializer_list<log_field> fields) {
  write_line(level, message, {fields.begin(), fields.end()});
}

void log_line(log_level level, std::string_view message,
              const std::vector<log_field>& fields) {
  write_line(level, message, {fields.data(), fields.data() + fields.size()});
}

} // namespace vidnode::runtime
