/// The real `vidnode`'s log: one line per job state change (never one per
/// step) with the job's id, model, node, device and attempt as fields, a
/// warning for a fault it survives, in text or as one JSON object per line.

#include <signal.h>

#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/process.hpp"

using namespace std::chrono_literals;
using vidnode::test::child_process;
using vidnode::test::run_command;

namespace {

/// A vidnode on a free port with two sim devices and `args`.
class logging_node {
public:
  explicit logging_node(std::vector<std::string> args) {
    std::vector<std::string> argv = {VIDNODE_BIN, "--listen",    "127.0.0.1:0",
                                     "--devices", "sim:2",       "--state-dir",
                                     "none",      "--log-level", "info"};
    argv.insert(argv.end(), args.begin(), args.end());
    process = std::make_unique<child_process>(argv);
    auto line = process->read_line(10s);
    INFO(process->stderr_text());
    REQUIRE(line);
    auto prefix = std::string{"vidnode listening on "};
    REQUIRE(line->rfind(prefix, 0) == 0);
    address = line->substr(prefix.size());
  }

  /// Runs `vidctl --connect ADDRESS args` and returns its stdout; requires
  /// exit status 0.
  std::string vidctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {VIDCTL_BIN, "--connect", address});
    auto r = run_command(args);
    INFO(r.err);
    REQUIRE(r.status == 0);
    return r.out;
  }

  /// Stops the node (SIGTERM) and returns everything it logged.
  std::string stop() {
    process->signal(SIGTERM);
    REQUIRE(process->wait(15s) == 0);
    return process->stderr_text();
  }

  std::unique_ptr<child_process> process;
  std::string address;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

} // namespace

TEST_CASE("with --log-format json every line is a JSON object and each job "
          "state change is one line with its fields",
          "[logs]") {
  logging_node node{{"--log-format", "json"}};
  node.vidctl({"submit", "--steps", "6", "--option", "step_ms=5", "--wait"});
  node.vidctl({"submit", "--steps", "4", "--option", "step_ms=5", "--option",
               "fault=oom@2", "--wait"});
  auto log = node.stop();
  INFO(log);
  std::vector<nlohmann::json> changes_1;
  std::vector<nlohmann::json> changes_2;
  auto warnings = 0;
  for (const auto& line : lines_of(log)) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    INFO(line);
    REQUIRE_FALSE(entry.is_discarded());
    REQUIRE(entry.is_object());
    CHECK(entry["time"].get<std::string>().size() == 24);
    CHECK(entry["logger"] == "vidnode");
    CHECK(entry.contains("msg"));
    if (entry["level"] == "warn")
      ++warnings;
    if (!entry.contains("state"))
      continue;
    if (entry["job"] == 1)
      changes_1.push_back(entry);
    if (entry["job"] == 2)
      changes_2.push_back(entry);
  }
  // One line per change, none per step.
  REQUIRE(changes_1.size() == 3);
  CHECK(changes_1[0]["state"] == "queued");
  CHECK(changes_1[1]["state"] == "running");
  CHECK(changes_1[1]["model"] == "sim");
  CHECK(changes_1[1]["device"].get<std::string>().rfind("sim:", 0) == 0);
  CHECK_FALSE(changes_1[1]["node"].get<std::string>().empty());
  CHECK(changes_1[1]["attempt"] == 1);
  CHECK(changes_1[2]["state"] == "succeeded");
  CHECK(changes_1[2]["run_seconds"].get<double>() > 0);
  CHECK(changes_1[2].contains("queue_seconds"));
  // queued, running, queued again after the OOM, running, succeeded.
  REQUIRE(changes_2.size() == 5);
  CHECK(changes_2[2]["state"] == "queued");
  CHECK(changes_2[2]["error"] == "out_of_memory");
  CHECK(changes_2[2]["attempt"] == 1);
  CHECK(changes_2[3]["attempt"] == 2);
  CHECK(changes_2[4]["state"] == "succeeded");
  // The worker's out-of-memory warning.
  CHECK(warnings >= 1);
}

TEST_CASE("the text log shows a job's fields as key=value after its message",
          "[logs]") {
  logging_node node{{}};
  node.vidctl({"submit", "--steps", "2", "--option", "step_ms=5", "--wait"});
  auto log = node.stop();
  INFO(log);
  CHECK_THAT(log, Catch::Contains("[info] job 1 succeeded job=1 "
                                  "state=succeeded model=sim priority=5 "));
  CHECK_THAT(log, Catch::Contains(" attempt=1 queue_seconds="));
  auto running = 0;
  for (const auto& line : lines_of(log))
    running += line.find("job 1 running job=1") != std::string::npos ? 1 : 0;
  CHECK(running == 1);
}
