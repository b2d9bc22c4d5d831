/// vidnode under a service manager: the notifications systemd's Type=notify
/// and WatchdogSec= rely on, read from a notification socket the test
/// makes (as systemd would, through $NOTIFY_SOCKET), and the example unit
/// file checked by systemd-analyze.

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/process.hpp"
#include "support/temp_directory.hpp"

using namespace std::chrono_literals;
using vidnode::test::child_process;
using vidnode::test::run_command;

namespace {

/// A datagram socket like systemd's notification socket, in a temporary
/// directory.
class notify_socket {
public:
  notify_socket() {
    path_ = dir_.path() + "/notify";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof(address.sun_path));
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s",
                  path_.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address))
            == 0);
  }

  ~notify_socket() {
    ::close(fd_);
  }

  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;

  /// NOTIFY_SOCKET=PATH, for a child's environment.
  std::string variable() const {
    return "NOTIFY_SOCKET=" + path_;
  }

  /// Reads notifications until one contains `wanted` or `timeout` passes;
  /// every notification read is kept in `seen`. Whether it came.
  bool await(const std::string& wanted, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        continue;
      char buffer[4096];
      auto n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0)
        continue;
      seen.emplace_back(buffer, static_cast<size_t>(n));
      if (seen.back().find(wanted) != std::string::npos)
        return true;
    }
  }

  /// How many notifications read so far contain `text`.
  size_t count(const std::string& text) const {
    size_t n = 0;
    for (const auto& message : seen)
      n += message.find(text) != std::string::npos ? 1 : 0;
    return n;
  }

  std::vector<std::string> seen;

private:
  vidnode::test::temp_directory dir_{"vidnode-notify"};
  std::string path_;
  int fd_ = -1;
};

bool built_with_systemd() {
  return VIDNODE_HAVE_SYSTEMD_NOTIFY;
}

} // namespace

TEST_CASE("a head tells the service manager it is ready once it listens, "
          "pings its watchdog while it runs, and says when it stops",
          "[service]") {
  if (!built_with_systemd()) {
    WARN("SKIPPED: vidnode was built without libsystemd-dev");
    return;
  }
  notify_socket manager;
  // 200 ms: a ping every 100 ms.
  child_process node{{VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices",
                      "sim:1", "--state-dir", "none"},
                     {manager.variable(), "WATCHDOG_USEC=200000"}};
  auto line = node.read_line(10s);
  INFO(node.stderr_text());
  REQUIRE(line);
  REQUIRE(manager.await("READY=1", 5s));
  auto ready = manager.seen.back();
  CHECK_THAT(ready, Catch::Contains("STATUS=serving 1 device(s); clients on "
                                    "127.0.0.1:"));
  // Nothing claims readiness before the node listens.
  CHECK(manager.count("WATCHDOG=1") == 0);
  for (int i = 0; i < 3; ++i)
    REQUIRE(manager.await("WATCHDOG=1", 5s));
  node.signal(SIGTERM);
  CHECK(manager.await("STOPPING=1", 5s));
  CHECK(node.wait(15s) == 0);
}

TEST_CASE("a worker node is ready once it has joined its head", "[service]") {
  if (!built_with_systemd()) {
    WARN("SKIPPED: vidnode was built without libsystemd-dev");
    return;
  }
  child_process head{{VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices",
                      "none", "--cluster-listen", "127.0.0.1:0", "--state-dir",
                      "none"}};
  REQUIRE(head.read_line(10s));
  auto cluster_line = head.read_line(10s);
  REQUIRE(cluster_line);
  auto prefix = std::string{"vidnode accepting worker nodes on "};
  REQUIRE(cluster_line->rfind(prefix, 0) == 0);
  auto cluster = cluster_line->substr(prefix.size());
  notify_socket manager;
  child_process worker{{VIDNODE_BIN, "--join", cluster, "--devices", "sim:1",
                        "--node-name", "notified"},
                       {manager.variable()}};
  auto joined = worker.read_line(15s);
  INFO(worker.stderr_text());
  REQUIRE(joined);
  CHECK(joined->rfind("vidnode joined ", 0) == 0);
  REQUIRE(manager.await("READY=1", 5s));
  CHECK_THAT(manager.seen.back(), Catch::Contains("as notified"));
  worker.signal(SIGTERM);
  CHECK(manager.await("STOPPING=1", 5s));
  CHECK(worker.wait(15s) == 0);
}

TEST_CASE("the example systemd unit passes systemd-analyze verify",
          "[service]") {
  if (run_command({"/bin/sh", "-c", "command -v systemd-analyze"}).status
      != 0) {
    WARN("SKIPPED: systemd-analyze is not installed");
    return;
  }
  std::ifstream in{VIDNODE_SOURCE_DIR "/examples/systemd/vidnode.service"};
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  auto unit = text.str();
  // verify checks that ExecStart's program exists: use the one just built.
  auto at = unit.find("/usr/local/bin/vidnode");
  REQUIRE(at != std::string::npos);
  unit.replace(at, std::string{"/usr/local/bin/vidnode"}.size(), VIDNODE_BIN);
  vidnode::test::temp_directory dir{"vidnode-unit"};
  auto path = dir.path() + "/vidnode.service";
  std::ofstream{path} << unit;
  auto r = run_command({"/bin/sh", "-c", "systemd-analyze verify " + path});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
}
