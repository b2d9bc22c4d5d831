#pragma once

/// @file
/// The test HTTP server (http_test_server.py) as a child process with its
/// own temporary directory, for tests of downloads, uploads and webhooks.

#include <filesystem>
#include <memory>
#include <string>

#include "support/process.hpp"

namespace vidnode::test {

/// A running http_test_server.py on 127.0.0.1, killed and cleaned up when
/// it goes out of scope.
class http_server {
public:
  http_server();
  ~http_server();

  /// "http://127.0.0.1:PORT" + `path`.
  std::string url(const std::string& path) const;

  /// The server's directory (files/, uploads/, hooks/, requests.log).
  const std::filesystem::path& root() const noexcept {
    return root_;
  }

  /// Puts a file the server serves at /files/NAME.
  void serve(const std::string& name, const std::string& content) const;

  /// The content of ROOT/RELATIVE ("" if missing).
  std::string read(const std::string& relative) const;

private:
  std::filesystem::path root_;
  std::unique_ptr<child_process> process_;
  int port_ = 0;
};

} // namespace vidnode::test
