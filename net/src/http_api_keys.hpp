#pragma once

/// @file
/// The gateway's API keys (`--api-key-file`): read from a file, one key per
/// line, and read again when the file changes (checked at most once a
/// second, on a request) or when reload() is called (SIGHUP).

#include <chrono>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <caf/error.hpp>

namespace vidnode::net::detail {

/// The keys a request may carry.
///
/// Thread-safety: every member may be called from any thread.
class api_keys {
public:
  /// Keys from `path`; empty: every request is let in.
  explicit api_keys(std::string path);

  /// Reads the file; errc::invalid_request naming the file and the cause
  /// when it cannot be read or holds no key (the keys in use are then
  /// kept).
  caf::error reload();

  /// Whether an `Authorization` header's value carries a valid key: either
  /// "Bearer KEY" (the SDKs) or the bare key (Runpod's curl examples).
  /// Compares in constant time for keys of the same length.
  bool admits(const std::string& authorization);

  /// Whether keys are asked for at all.
  bool required() const noexcept {
    return !path_.empty();
  }

private:
  /// Reads the file again if it changed since it was last read.
  void refresh_if_changed();

  std::string path_;
  std::mutex mutex_;
  /// SHA-256 digests of the keys.
  std::vector<std::string> digests_;
  struct stat read_stat_ {};
  std::chrono::steady_clock::time_point next_check_{};
};

} // namespace vidnode::net::detail
