#pragma once

/// @file
/// A scratch directory for tests, and small helpers for the files in it.

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

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

/// The whole content of `path` (empty if it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

/// Replaces the content of `path` with `text`.
inline void write_file(const std::filesystem::path& path,
                       const std::string& text) {
  std::ofstream{path, std::ios::binary | std::ios::trunc} << text;
}

/// The names in `dir`, sorted (none if it cannot be listed).
inline std::vector<std::string> entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator{dir, ec})
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

} // namespace vidnode::test
