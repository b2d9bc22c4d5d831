/// Command-line and config-file values of the real `vidnode` and `vidctl`
/// programs: every bad value is a usage error (exit status 2) that names
/// the option, found before anything listens or is sent; good values still
/// get past parsing. vidnode is always given a sim device and a free port,
/// so a value it wrongly accepted would start a node, which the short
/// timeout turns into a failure (status -1).

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "support/node_process.hpp"
#include "support/config_file.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using vidnode::test::config_file;
using namespace vidnode;
using test::command_result;
using test::node_process;
using test::run_command;

namespace {

/// Runs vidnode on a free port with one sim device, plus `args`.
command_result run_vidnode(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {VIDNODE_BIN, "--listen", "127.0.0.1:0",
                                   "--devices", "sim:1"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 10s);
}

/// Runs vidctl against a port nothing listens on, plus `args`.
command_result run_vidctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {VIDCTL_BIN, "--connect", "127.0.0.1:1"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 10s);
}

/// Checks that `r` is a usage error whose message contains `name`.
void check_usage_error(const command_result& r, const std::string& name) {
  INFO("stderr: " << r.err);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains(name));
  CHECK(r.out.find("listening") == std::string::npos);
}

using flag_value = std::pair<std::string, std::string>;

} // namespace

TEST_CASE("a negative queue size is refused with a usage error naming the "
          "option",
          "[integration][cli]") {
  auto r = run_vidnode({"--queue-size", "-1"});
  check_usage_error(r, "--queue-size");
  CHECK_THAT(r.err, Catch::Contains("vidnode: --queue-size: must be a whole "
                                    "number from 1 to 10000000, got '-1'"));
}

TEST_CASE("vidnode refuses empty, malformed and out-of-range whole numbers "
          "with a usage error naming the option",
          "[integration][cli]") {
  for (const auto& [flag, value] : std::vector<flag_value>{
         {"--queue-size", ""},
         {"--queue-size", "99999999999999999999"},
         {"--queue-size", "1e3"},
         {"--queue-size", "12abc"},
         {"--queue-size", "+5"},
         {"--queue-size", " 5"},
         {"--queue-size", "10000001"},
         {"--queue-size", "0"},
         {"--max-concurrency", "0x10"},
         {"--max-concurrency", "65"},
         {"--max-concurrency", "1.5"},
         {"--max-attempts", "-1"},
         {"--max-attempts", "101"},
         {"--max-restarts", "-1"},
         {"--max-restarts", "2147483648"},
         {"--max-bypass", "-1"},
         {"--max-bypass", "100001"},
         {"--max-results", "0"},
         {"--max-results", "4294967296"},
         {"--threads", "-1"},
         {"--threads", "1025"},
         {"--threads", "100000000"},
         {"--threads", "99999999999"},
         {"--threads", ""},
         {"--poll-attempts", "-5"},
         {"--poll-attempts", "1000001"},
       }) {
    INFO(flag << " '" << value << "'");
    check_usage_error(run_vidnode({flag, value}), flag);
  }
  INFO("--queue-size=");
  check_usage_error(run_vidnode({"--queue-size="}), "--queue-size");
}

TEST_CASE("vidnode refuses empty, malformed, infinite and out-of-range real "
          "numbers with a usage error naming the option",
          "[integration][cli]") {
  for (const auto& [flag, value] : std::vector<flag_value>{
         {"--memory-headroom", ""},
         {"--memory-headroom", "nan"},
         {"--memory-headroom", "inf"},
         {"--memory-headroom", "0.1x"},
         {"--memory-headroom", "ten"},
         {"--memory-headroom", "-0.5"},
         {"--memory-headroom", "11"},
         {"--oom-estimate-growth", ""},
         {"--oom-estimate-growth", "-inf"},
         {"--oom-estimate-growth", "1e999"},
         {"--oom-estimate-growth", "1"},
         {"--oom-estimate-growth", "2,5"},
       }) {
    INFO(flag << " '" << value << "'");
    check_usage_error(run_vidnode({flag, value}), flag);
  }
}

TEST_CASE("a bad value in a vidnode config file is refused with a usage "
          "error naming its key",
          "[integration][cli]") {
  for (const auto& [key, value] : std::vector<flag_value>{
         {"queue-size", "-1"},
         {"queue-size", "\"\""},
         {"queue-size", "1e3"},
         {"max-concurrency", "0x10"},
         {"threads", "99999999999"},
         {"poll-attempts", "-5"},
         {"memory-headroom", "nan"},
         {"queue-timeout", "30"},
       }) {
    config_file config{key + " = " + value + "\n"};
    INFO(key << " = " << value);
    check_usage_error(run_vidnode({"--config", config.path()}), key);
  }
}

TEST_CASE("a duration without a unit is refused with a usage error that asks "
          "for one",
          "[integration][cli]") {
  auto r = run_vidnode({"--queue-timeout", "30"});
  check_usage_error(r, "--queue-timeout");
  CHECK_THAT(r.err, Catch::Contains("needs a unit"));
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"--timeout", "5", "list"},
         {"submit", "--run-timeout", "2.5"},
         {"wait", "1", "--max-wait", "10"},
       }) {
    r = run_vidctl(args);
    check_usage_error(r, "needs a unit");
  }
  check_usage_error(run_vidnode({"--restart-window", "60"}),
                    "--restart-window");
}

TEST_CASE("vidctl refuses empty, malformed and out-of-range numbers with a "
          "usage error naming the option",
          "[integration][cli]") {
  for (const auto& [flag, value] : std::vector<flag_value>{
         {"--width", "-8"},
         {"--width", "8"},
         {"--width", "4104"},
         {"--height", ""},
         {"--frames", "0"},
         {"--frames", "1025"},
         {"--fps", "121"},
         {"--steps", "1.5"},
         {"--steps", "-1"},
         {"--steps", "1001"},
         {"--seed", "-1"},
         {"--seed", ""},
         {"--seed", "18446744073709551616"},
         {"--seed", "0x10"},
         {"--priority", "300"},
         {"--priority", "-1"},
         {"--priority", "5x"},
       }) {
    INFO("submit " << flag << " '" << value << "'");
    check_usage_error(run_vidctl({"submit", flag, value}), flag);
  }
  for (const auto& value : {"-1", "", "4294967296", "ten"}) {
    INFO("list --limit '" << value << "'");
    check_usage_error(run_vidctl({"list", "--limit", value}), "--limit");
  }
}

TEST_CASE("vidctl refuses a timeout of zero with a usage error",
          "[integration][cli]") {
  check_usage_error(run_vidctl({"--timeout", "0s", "list"}), "--timeout");
  check_usage_error(run_vidctl({"--timeout", "0", "submit"}), "--timeout");
}

TEST_CASE("a pipeline option given twice to vidctl submit is refused with a "
          "usage error naming its key",
          "[integration][cli]") {
  auto r = run_vidctl({"submit", "--option", "step_ms=10", "--option",
                       "load_ms=0", "--option", "step_ms=20"});
  check_usage_error(r, "--option");
  CHECK_THAT(r.err, Catch::Contains("step_ms"));
}

TEST_CASE("a TorchScript model name given twice to vidnode is refused with a "
          "usage error naming it",
          "[integration][cli]") {
  auto r = run_vidnode({"--torchscript", "toy=/nonexistent/a.pt",
                        "--torchscript", "toy=/nonexistent/b.pt"});
  check_usage_error(r, "--torchscript");
  CHECK_THAT(r.err, Catch::Contains("toy"));
}

TEST_CASE("valid values at their bounds still get past parsing",
          "[integration][cli]") {
  auto help = run_command({VIDNODE_BIN, "--help"}, 10s);
  CHECK(help.status == 0);
  CHECK_THAT(help.out,
             Catch::Contains("--threads") && Catch::Contains("at most 1024"));
  // Exit 3: vidctl parsed everything and then could not reach the node.
  auto r = run_vidctl({"--timeout",
                       "2s",
                       "submit",
                       "--steps",
                       "3",
                       "--seed",
                       "18446744073709551615",
                       "--priority",
                       "9",
                       "--width",
                       "4096",
                       "--height",
                       "16",
                       "--frames",
                       "1024",
                       "--fps",
                       "120",
                       "--queue-timeout",
                       "0",
                       "--run-timeout",
                       "1m",
                       "--option",
                       "step_ms=1",
                       "--option",
                       "load_ms=0"});
  INFO(r.err);
  CHECK(r.status == 3);
  CHECK_THAT(r.err, Catch::Contains("cannot connect"));
  r = run_vidctl({"list", "--limit", "0"});
  CHECK(r.status == 3);
  config_file config{"queue-size = 10000000\nmemory-headroom = 0.25\n"
                     "queue-timeout = \"90s\"\n"};
  node_process node{{"--devices", "sim:1", "--config", config.path(),
                     "--threads", "2", "--poll-attempts", "1000000",
                     "--max-concurrency", "64", "--max-bypass", "0",
                     "--max-restarts", "0", "--oom-estimate-growth", "1.25",
                     "--restart-backoff", "0"}};
  auto devices = node.vidctl_json({"nodes"});
  REQUIRE(devices.size() == 1);
  CHECK(devices[0]["slots"] == 64);
}

TEST_CASE("an output directory that is a file or cannot be created is "
          "refused at start, naming the setting",
          "[integration]") {
  auto file = std::filesystem::temp_directory_path()
              / ("vidnode-cli-test-file-" + std::to_string(getpid()));
  { std::ofstream{file} << "not a directory"; }
  for (auto dir : {file.string(), file.string() + "/below",
                   std::string{"/proc/vidnode-cannot-be-here"}}) {
    auto r = run_vidnode({"--output-dir", dir});
    INFO(dir << ": " << r.err);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("--output-dir"));
  }
  std::filesystem::remove(file);
}

TEST_CASE("an empty job id is refused with a usage error before connecting",
          "[integration]") {
  for (auto command : {"status", "wait", "watch", "cancel", "retry"}) {
    auto r = run_vidctl({command, ""});
    INFO(command << ": " << r.err);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("is not a job id"));
  }
}

TEST_CASE("an --allow-file-urls that names no directory is refused at "
          "start, and both URL settings may come from the config file",
          "[integration]") {
  auto file = std::filesystem::temp_directory_path()
              / ("vidnode-cli-test-file-urls-" + std::to_string(getpid()));
  { std::ofstream{file} << "not a directory"; }
  for (auto dir : {file.string(), file.string() + "/below",
                   std::string{"/nonexistent-vidnode-dir"}}) {
    auto r = run_vidnode({"--allow-file-urls", dir});
    INFO(dir);
    check_usage_error(r, "--allow-file-urls: '" + dir + "' is not a directory");
  }
  std::filesystem::remove(file);
  config_file config{"allow-private-urls = true\nallow-file-urls = \"/tmp\"\n"};
  node_process node{{"--devices", "sim:1", "--config", config.path()}};
  auto r = node.vidctl(
    {"submit", "--steps", "0", "--webhook-url", "http://127.0.0.1:1/hook"});
  INFO(r.err);
  CHECK(r.status == 0);
}

TEST_CASE("an empty value given explicitly to vidnode is refused with a "
          "usage error naming the option, also from a config file",
          "[integration][cli]") {
  // Each would otherwise run: --join "" as a head, --node-name "" under the
  // host name, --config "" with no file, the others with their defaults.
  for (const auto& flag :
       {"--join", "--node-name", "--output-dir", "--tiny-t2v-weights",
        "--torchscript", "--allow-file-urls", "--config", "--tls-cert",
        "--tls-key", "--tls-ca", "--cluster-listen", "--queue-timeout"}) {
    auto r = std::string{flag} == "--join"
               ? run_command({VIDNODE_BIN, "--devices", "sim:1", flag, ""}, 10s)
               : run_vidnode({flag, ""});
    INFO(flag);
    check_usage_error(r, std::string{flag} + ": must not be empty");
  }
  for (const auto& flag : {"--listen", "--devices"}) {
    auto r = run_command({VIDNODE_BIN, flag, ""}, 10s);
    INFO(flag);
    check_usage_error(r, std::string{flag} + ": must not be empty");
  }
  for (const auto& key : {"node-name", "join", "output-dir"}) {
    config_file config{std::string{key} + " = \"\"\n"};
    INFO(key);
    check_usage_error(run_vidnode({"--config", config.path()}),
                      "--" + std::string{key} + " (from --config "
                        + config.path() + "): must not be empty");
  }
}

TEST_CASE("an empty value given explicitly to vidctl is refused with a "
          "usage error naming the option, and an empty prompt still is one",
          "[integration][cli]") {
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"--connect", "", "list"},
         {"--tls-cert", "", "list"},
         {"--tls-key", "", "list"},
         {"--tls-ca", "", "list"},
         {"submit", "--model", ""},
         {"submit", "--idempotency-key", ""},
         {"submit", "--audio-url", ""},
         {"submit", "--output-url", ""},
         {"submit", "--webhook-url", ""},
         {"submit", "--option", ""},
         {"submit", "--wait", "--download", ""},
         {"wait", "1", "--download", ""},
         {"fetch", "1", ""},
       }) {
    auto r = run_command(
      [&] {
        std::vector<std::string> argv = {VIDCTL_BIN};
        if (args[0] != "--connect")
          argv.insert(argv.end(), {"--connect", "127.0.0.1:1"});
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
      }(),
      10s);
    auto name = args[0] == "fetch"            ? std::string{"file"}
                : args[0].rfind("--", 0) == 0 ? args[0]
                                              : args[args.size() - 2];
    INFO(args[0] << " " << name);
    check_usage_error(r, name + ": must not be empty");
  }
  auto r = run_vidctl({"--timeout", "2s", "submit", "--prompt", ""});
  INFO(r.err);
  CHECK(r.status == 3);
}

TEST_CASE("vidctl retry queues a job that failed by a fault again under its "
          "id, where it succeeds, and refuses a job that did not fail",
          "[integration][cli]") {
  node_process node{{"--devices", "sim:2", "--max-attempts", "1"}};
  // A long job takes sim:0, the first of two idle devices, so the job that
  // crashes on sim:1 runs there and fails. Once the long job is cancelled,
  // the retry goes to sim:0, which has the model.
  auto blocker = node.vidctl_json(
    {"submit", "--steps", "600", "--option", "step_ms=100"})["id"];
  auto blocker_id = std::to_string(blocker.get<uint64_t>());
  REQUIRE(node.vidctl_json({"status", blocker_id})["device"] == "sim:0");
  auto failed =
    node.vidctl({"submit", "--steps", "2", "--option", "step_ms=1", "--option",
                 "fault=crash-on-sim:1@1", "--wait", "--json"});
  INFO(failed.err);
  REQUIRE(failed.status == 1);
  auto result = nlohmann::json::parse(failed.out);
  REQUIRE(result["state"] == "failed");
  CHECK(result["device"] == "sim:1");
  auto id = std::to_string(result["id"].get<uint64_t>());
  node.vidctl_json({"cancel", blocker_id});

  auto retried = node.vidctl({"retry", id});
  INFO(retried.err);
  CHECK(retried.status == 0);
  CHECK_THAT(retried.out, Catch::Contains("job " + id));
  auto done = node.vidctl_json({"wait", id});
  CHECK(done["id"] == result["id"]);
  CHECK(done["state"] == "succeeded");
  CHECK(done["device"] == "sim:0");
  CHECK(done["attempts"] == 1);
  CHECK(done["error"].is_null());

  auto refused = node.vidctl({"retry", id});
  CHECK(refused.status == 4);
  CHECK_THAT(refused.err, Catch::Contains("job " + id
                                          + " is succeeded: only failed or "
                                            "timed-out jobs can be retried"));
  auto unknown = node.vidctl({"retry", "999"});
  CHECK(unknown.status == 4);
  CHECK_THAT(unknown.err, Catch::Contains("no job 999"));
}
