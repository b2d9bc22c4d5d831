#pragma once

/// @file
/// The test HTTP server (http_test_server.py) as a child process with its
/// own temporary directory, for tests of downloads, uploads and webhooks.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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

  /// How many requests for `path` (any method) the server received so far.
  int requests_for(const std::string& path);

  /// Waits until the server received `count` requests for `path`; false
  /// after `limit`.
  bool wait_for_requests(const std::string& path, int count = 1,
                         std::chrono::seconds limit = std::chrono::seconds{10});

  /// Waits until the client hung up a /stall/ request for `path`; false
  /// after `limit`.
  bool wait_until_closed(const std::string& path,
                         std::chrono::seconds limit = std::chrono::seconds{10});

  /// Waits until ROOT/RELATIVE exists and is not empty, and returns it (""
  /// after `limit`).
  std::string wait_for_file(const std::string& relative,
                            std::chrono::seconds limit = std::chrono::seconds{
                              10});

  /// Lets the requests held under /hold/NAME/ go on.
  void release(const std::string& name) const;

private:
  std::filesystem::path root_;
  std::unique_ptr<child_process> process_;
  int port_ = 0;
  /// The server's events read so far ("METHOD PATH", "CLOSED PATH",
  /// "ANSWERED METHOD PATH"), in order.
  std::vector<std::string> events_;

  /// Requests for `path` among the events read so far.
  int requests_seen(const std::string& path) const;

  /// Reads the server's events until `done()` or `limit`; whether done.
  /// Blocks on the server's output, never sleeps.
  template <class Predicate>
  bool wait_until(std::chrono::milliseconds limit, Predicate done);
};

} // namespace vidnode::test
