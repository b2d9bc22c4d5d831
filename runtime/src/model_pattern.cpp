#include "vidnode/runtime/model_pattern.hpp"

#include "vidnode/runtime/validation.hpp"

namespace vidnode::runtime {

bool model_pattern_matches(std::string_view pattern,
                           std::string_view model) noexcept {
  if (pattern.empty() || pattern.back() != '*')
    return pattern == model;
  auto prefix = pattern.substr(0, pattern.size() - 1);
  return model.size() > prefix.size()
         && model.compare(0, prefix.size(), prefix) == 0;
}

std::optional<std::string> invalid_model_pattern(const std::string& pattern) {
  if (pattern == "*")
    return std::nullopt;
  auto wildcard = !pattern.empty() && pattern.back() == '*';
  auto name = wildcard ? pattern.substr(0, pattern.size() - 1) : pattern;
  if (auto why = invalid_model_name(name))
    return "'" + pattern + "': " + *why;
  return std::nullopt;
}

} // namespace vidnode::runtime
