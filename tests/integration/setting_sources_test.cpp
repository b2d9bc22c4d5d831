/// Where the real `vidnode`'s settings come from: the command line, a
/// --config file, then VIDNODE_* environment variables, each validated the
/// same way, and --print-config showing what is in effect and from where.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/config_file.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using vidnode::test::child_process;
using vidnode::test::command_result;
using vidnode::test::config_file;
using vidnode::test::run_command;

namespace {

/// `vidnode ARGS --print-config` with `environment` changes (see
/// child_process).
command_result print_config(std::vector<std::string> args,
                            const std::vector<std::string>& environment) {
  args.insert(args.begin(), VIDNODE_BIN);
  args.push_back("--print-config");
  return run_command(args, 10s, environment);
}

/// The line of `name` in --print-config's output ("" if none).
std::string line_of(const std::string& out, const std::string& name) {
  std::istringstream lines{out};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + " = ", 0) == 0)
      return line;
  return "";
}

} // namespace

TEST_CASE("the command line beats the config file, which beats the "
          "environment, which beats the defaults",
          "[settings]") {
  config_file config{"max-concurrency = 3\nqueue-size = 7\n"
                     "lease-grace = \"40s\"\n"};
  auto r =
    print_config({"--config", config.path(), "--queue-size", "11"},
                 {"VIDNODE_MAX_CONCURRENCY=2", "VIDNODE_QUEUE_SIZE=9",
                  "VIDNODE_LEASE_GRACE=5s", "VIDNODE_SHUTDOWN_GRACE=3s",
                  "VIDNODE_ALLOW_PRIVATE_URLS=true", "VIDNODE_RESULT_TTL"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  INFO(r.out);
  CHECK(line_of(r.out, "queue-size") == "queue-size = 11  # command line");
  CHECK(line_of(r.out, "max-concurrency")
        == "max-concurrency = 3  # --config " + config.path());
  CHECK(line_of(r.out, "lease-grace")
        == "lease-grace = \"40s\"  # --config " + config.path());
  CHECK(line_of(r.out, "shutdown-grace")
        == "shutdown-grace = \"3s\"  # VIDNODE_SHUTDOWN_GRACE");
  CHECK(line_of(r.out, "allow-private-urls")
        == "allow-private-urls = true  # VIDNODE_ALLOW_PRIVATE_URLS");
  CHECK(line_of(r.out, "result-ttl") == "result-ttl = \"1h\"");
  CHECK(r.out.find("# join =") != std::string::npos);
}

TEST_CASE("what --print-config prints is a config file that vidnode reads "
          "back to the same settings",
          "[settings]") {
  auto first = print_config({"--devices", "sim:3", "--torchscript", "a=/x.pt",
                             "--torchscript", "b=/y.pt"},
                            {"VIDNODE_QUEUE_TIMEOUT=90s"});
  INFO(first.err);
  REQUIRE(first.status == 0);
  config_file config{first.out};
  auto second = print_config({"--config", config.path()}, {});
  INFO(second.err);
  REQUIRE(second.status == 0);
  for (const auto* name : {"devices", "torchscript", "queue-timeout",
                           "max-concurrency", "listen"}) {
    auto before = line_of(first.out, name);
    auto after = line_of(second.out, name);
    INFO(name);
    REQUIRE_FALSE(before.empty());
    CHECK(after.substr(0, after.find("  #"))
          == before.substr(0, before.find("  #")));
  }
}

TEST_CASE("a bad value is refused with a usage error that names the option "
          "and its source, whichever source gave it",
          "[settings]") {
  struct bad_case {
    std::vector<std::string> environment;
    std::string config;
    std::string expected;
  };
  std::vector<bad_case> cases = {
    {{"VIDNODE_MAX_CONCURRENCY=two"},
     "",
     "--max-concurrency (from VIDNODE_MAX_CONCURRENCY): must be a whole "
     "number"},
    {{"VIDNODE_QUEUE_TIMEOUT=5"},
     "",
     "--queue-timeout (from VIDNODE_QUEUE_TIMEOUT): '5' needs a unit"},
    {{"VIDNODE_LOG_FORMAT=xml"}, "", "--log-format (from VIDNODE_LOG_FORMAT)"},
    {{"VIDNODE_ALLOW_PRIVATE_URLS=maybe"}, "", "--allow-private-urls"},
    {{"VIDNODE_LISTEN=nowhere"},
     "",
     "--listen (from VIDNODE_LISTEN): 'nowhere' is not HOST:PORT"},
    // Checked after parsing, with the other settings.
    {{"VIDNODE_OOM_ESTIMATE_GROWTH=1"},
     "",
     "--oom-estimate-growth (from VIDNODE_OOM_ESTIMATE_GROWTH): must be "
     "above 1"},
    {{}, "oom-estimate-growth = 1\n", "--oom-estimate-growth (from --config "},
    {{"VIDNODE_OUTPUT_DIR=/proc/no-such-dir"},
     "",
     "--output-dir (from VIDNODE_OUTPUT_DIR): '/proc/no-such-dir'"},
    // CLI11's reader cuts a quoted value at '#': refused, not cut.
    {{},
     "output-dir = \"/tmp/a#b\"\n",
     "is cut short: a '#' inside a quoted value"},
    {{"VIDNODE_MAX_CONCURRENCY=2"},
     "max-concurrency = \"two\"\n",
     "(from --config "},
    {{}, "queue-size = -1\n", "--queue-size (from --config "},
    {{"VIDNODE_CONFIG=/nonexistent/vidnode.toml"},
     "",
     "/nonexistent/vidnode.toml"},
  };
  for (const auto& c : cases) {
    std::unique_ptr<config_file> config;
    std::vector<std::string> args;
    if (!c.config.empty()) {
      config = std::make_unique<config_file>(c.config);
      args = {"--config", config->path()};
    }
    // Not --print-config: a value that is only checked after parsing must
    // be refused too, before anything listens.
    args.insert(args.begin(), VIDNODE_BIN);
    auto env = c.environment;
    auto sets_listen = false;
    for (const auto& variable : env)
      sets_listen = sets_listen || variable.rfind("VIDNODE_LISTEN=", 0) == 0;
    if (!sets_listen)
      env.push_back("VIDNODE_LISTEN=127.0.0.1:0");
    env.push_back("VIDNODE_DEVICES=sim:1");
    auto r = run_command(args, 10s, env);
    INFO(c.expected << "\nstderr: " << r.err);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(c.expected));
    CHECK(r.out.find("listening") == std::string::npos);
  }
}

TEST_CASE("print-config refuses what the node would refuse at start",
          "[settings]") {
  auto r = print_config({}, {"VIDNODE_OOM_ESTIMATE_GROWTH=1"});
  INFO(r.out);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("--oom-estimate-growth (from "
                                    "VIDNODE_OOM_ESTIMATE_GROWTH)"));
  CHECK(r.out.empty());
}

TEST_CASE("an empty environment variable counts as unset", "[settings]") {
  auto r = print_config({}, {"VIDNODE_MAX_CONCURRENCY=", "VIDNODE_DEVICES="});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(line_of(r.out, "max-concurrency") == "max-concurrency = 1");
  CHECK(line_of(r.out, "devices") == "devices = \"auto\"");
}

TEST_CASE("a node started from environment variables alone serves what they "
          "say",
          "[settings]") {
  child_process node{{VIDNODE_BIN},
                     {"VIDNODE_LISTEN=127.0.0.1:0", "VIDNODE_DEVICES=sim:3",
                      "VIDNODE_MAX_CONCURRENCY=2", "VIDNODE_STATE_DIR=none",
                      "VIDNODE_LOG_FORMAT=json"}};
  auto line = node.read_line(10s);
  INFO(node.stderr_text());
  REQUIRE(line);
  CHECK(line->rfind("vidnode listening on 127.0.0.1:", 0) == 0);
  auto log = node.stderr_text();
  CHECK_THAT(log, Catch::Contains("\"msg\":\"serving 3 device(s) for "
                                  "--devices sim:3"));
  CHECK_THAT(log, Catch::Contains("max-concurrency 2"));
  node.signal(SIGTERM);
  CHECK(node.wait(10s) == 0);
}
