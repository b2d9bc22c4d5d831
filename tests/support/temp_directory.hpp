#pragma once

/// @file
/// A scratch directory for tests.

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace vidnode::test {

/// A directory under the system's temporary directory, removed with
/// everything in it when the object goes.
class temp_directory {
public:
  /// Creates a fresh directory named `prefix` and a random suffix; throws
  /// std::runtime_error if it cannot.
  explicit temp_directory(const std::string& prefix) {
    auto pattern =
      (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a directory like " + pattern);
    path_ = pattern;
  }

  ~temp_directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  temp_directory(const temp_directory&) = delete;
  temp_directory& operator=(const temp_directory&) = delete;

  const std::string& path() const noexcept {
    return path_;
  }

private:
  std::string path_;
};

} // namespace vidnode::test
