#include "vidnode/runtime/validation.hpp"

#include <cctype>
#include <initializer_list>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::runtime {

namespace {

caf::error bad(const char* field, std::string reason) {
  return make_error(errc::invalid_request, std::string{field} + ": " + reason);
}

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
         || c == '.' || c == ':' || c == '/';
}

caf::error check_range(const char* field, int64_t value, int64_t lo,
                       int64_t hi) {
  if (value < lo || value > hi)
    return bad(field, "must be between " + std::to_string(lo) + " and "
                        + std::to_string(hi) + ", got "
                        + std::to_string(value));
  return caf::none;
}

/// An empty URL, or one with one of `schemes` ("http", "https", "file").
caf::error check_url(const char* field, const std::string& url,
                     std::initializer_list<const char*> schemes) {
  if (url.empty())
    return caf::none;
  if (url.size() > job_limits::max_url_bytes)
    return bad(field, "longer than " + std::to_string(job_limits::max_url_bytes)
                        + " bytes");
  for (char c : url)
    if (c <= ' ' || c > '~')
      return bad(field, "must be printable ASCII without spaces "
                        "(percent-encode other bytes)");
  std::string allowed;
  for (auto scheme : schemes) {
    auto prefix = std::string{scheme} + "://";
    if (url.size() > prefix.size()
        && url.compare(0, prefix.size(), prefix) == 0)
      return caf::none;
    allowed += (allowed.empty() ? "" : ", ") + prefix;
  }
  return bad(field, "'" + url + "' must start with " + allowed);
}

caf::error check_dimension(const char* field, int32_t value) {
  using lim = job_limits;
  if (value < lim::min_dimension || value > lim::max_dimension
      || value % lim::dimension_multiple != 0)
    return bad(field, "must be a multiple of "
                        + std::to_string(lim::dimension_multiple) + " between "
                        + std::to_string(lim::min_dimension) + " and "
                        + std::to_string(lim::max_dimension) + ", got "
                        + std::to_string(value));
  return caf::none;
}

/// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no
/// surrogates, nothing above U+10FFFF). Job fields cross into JSON (vidctl
/// --json, webhooks), which holds UTF-8 only.
bool is_utf8(const std::string& text) {
  size_t i = 0;
  auto n = text.size();
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    auto c = byte(i);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (byte(i + k) & 0x3f);
    }
    static constexpr uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

caf::error check_utf8(const char* field, const std::string& text) {
  if (is_utf8(text))
    return caf::none;
  return bad(field, "is not valid UTF-8");
}

} // namespace

std::optional<std::string> invalid_model_name(const std::string& model) {
  if (model.empty())
    return "must not be empty";
  if (model.size() > job_limits::max_model_bytes)
    return "longer than " + std::to_string(job_limits::max_model_bytes)
           + " bytes";
  for (char c : model)
    if (!is_name_char(c))
      return "may only contain letters, digits and - _ . : /";
  return std::nullopt;
}

std::optional<std::string> invalid_endpoint_name(const std::string& endpoint) {
  if (endpoint.size() > job_limits::max_endpoint_bytes)
    return "longer than " + std::to_string(job_limits::max_endpoint_bytes)
           + " characters";
  for (char c : endpoint)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      return "may only contain letters, digits and - _";
  return std::nullopt;
}

caf::error validate(const job_spec& spec) {
  using lim = job_limits;
  if (auto why = invalid_model_name(spec.model))
    return bad("model", *why);
  if (spec.prompt.size() > lim::max_prompt_bytes)
    return bad("prompt", "longer than " + std::to_string(lim::max_prompt_bytes)
                           + " bytes");
  if (auto err = check_utf8("prompt", spec.prompt))
    return err;
  if (auto err = check_dimension("width", spec.width))
    return err;
  if (auto err = check_dimension("height", spec.height))
    return err;
  if (auto err = check_range("frames", spec.frames, 1, lim::max_frames))
    return err;
  if (auto err = check_range("fps", spec.fps, 1, lim::max_fps))
    return err;
  if (auto err = check_range("steps", spec.steps, 0, lim::max_steps))
    return err;
  if (auto err = check_range("ranks", spec.ranks, 1, lim::max_ranks))
    return err;
  if (auto err = check_range("priority", spec.priority, lim::min_priority,
                             lim::max_priority))
    return err;
  if (spec.queue_timeout.count() < 0)
    return bad("queue_timeout", "must not be negative");
  if (spec.run_timeout.count() < 0)
    return bad("run_timeout", "must not be negative");
  if (spec.idempotency_key.size() > lim::max_idempotency_key_bytes)
    return bad("idempotency_key",
               "longer than " + std::to_string(lim::max_idempotency_key_bytes)
                 + " bytes");
  if (auto err = check_utf8("idempotency_key", spec.idempotency_key))
    return err;
  if (spec.options.size() > lim::max_options)
    return bad("options",
               "more than " + std::to_string(lim::max_options) + " entries");
  for (const auto& [key, value] : spec.options) {
    if (key.empty() || key.size() > lim::max_option_key_bytes)
      return bad("options", "keys must have 1 to "
                              + std::to_string(lim::max_option_key_bytes)
                              + " bytes");
    for (char c : key)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-'
          && c != '.')
        return bad("options",
                   "key '" + key
                     + "' may only contain letters, digits and - _ .");
    if (value.size() > lim::max_option_value_bytes)
      return bad("options", "value of '" + key + "' longer than "
                              + std::to_string(lim::max_option_value_bytes)
                              + " bytes");
    if (!is_utf8(value))
      return bad("options", "value of '" + key + "' is not valid UTF-8");
  }
  if (auto err =
        check_url("audio_url", spec.audio_url, {"http", "https", "file"}))
    return err;
  if (auto err = check_url("output_url", spec.output_url, {"http", "https"}))
    return err;
  if (auto err = check_url("webhook_url", spec.webhook_url, {"http", "https"}))
    return err;
  if (auto why = invalid_endpoint_name(spec.endpoint))
    return bad("endpoint", *why);
  return caf::none;
}

} // namespace vidnode::runtime
