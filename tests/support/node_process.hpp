#pragma once

/// @file
/// A real `vidnode` process for integration tests, and vidctl runs against
/// it. Needs VIDNODE_BIN and VIDCTL_BIN (the built programs' paths).

#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/process.hpp"

namespace vidnode::test {

/// A vidnode process listening on a free loopback port.
class node_process {
public:
  explicit node_process(std::vector<std::string> args) {
    // The cluster port too is picked by the kernel: the default (7448) would
    // collide with any other head on this machine, another test's included.
    std::vector<std::string> argv = {
      VIDNODE_BIN,   "--listen",    "127.0.0.1:0", "--cluster-listen",
      "127.0.0.1:0", "--log-level", "warn"};
    argv.insert(argv.end(), args.begin(), args.end());
    process = std::make_unique<child_process>(argv);
    auto line = process->read_line(std::chrono::seconds{10});
    INFO(process->stderr_text());
    REQUIRE(line);
    auto prefix = std::string{"vidnode listening on 127.0.0.1:"};
    REQUIRE(line->rfind(prefix, 0) == 0);
    port = static_cast<uint16_t>(std::stoi(line->substr(prefix.size())));
    address = "127.0.0.1:" + std::to_string(port);
  }

  /// Runs vidctl against this node.
  command_result vidctl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {VIDCTL_BIN, "--connect", address};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
  }

  /// Starts vidctl against this node without waiting for it.
  std::unique_ptr<child_process>
  start_vidctl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {VIDCTL_BIN, "--connect", address};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<child_process>(argv);
  }

  /// Runs vidctl with --json and parses its stdout; requires exit 0.
  nlohmann::json vidctl_json(std::vector<std::string> args) const {
    args.push_back("--json");
    auto result = vidctl(args);
    INFO(result.err);
    REQUIRE(result.status == 0);
    return nlohmann::json::parse(result.out);
  }

  std::unique_ptr<child_process> process;
  uint16_t port = 0;
  std::string address;
};

} // namespace vidnode::test
