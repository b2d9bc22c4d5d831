#pragma once

/// @file
/// Model patterns: how a node says which models it serves. A pattern is a
/// model name, which matches that name only, or a prefix followed by `*`,
/// which matches every longer name that starts with the prefix: `sim-*`
/// matches `sim-large` but not `sim-`, and `*` matches every name. Model
/// names cannot contain `*` (runtime::validate), so no name is both.

#include <optional>
#include <string>
#include <string_view>

namespace vidnode::runtime {

/// Whether `model` matches `pattern`.
bool model_pattern_matches(std::string_view pattern,
                           std::string_view model) noexcept;

/// Why `pattern` is not a model pattern (a valid model name, or a prefix of
/// one followed by `*`), or nothing.
std::optional<std::string> invalid_model_pattern(const std::string& pattern);

} // namespace vidnode::runtime
