/// `vidnode --preload`: real vidnode processes on 127.0.0.1. A sim model's
/// load takes 500 ms of simulated device time (sim_options::load_ms's
/// default; a preload has no job to set it), so a node that reported ready
/// before its preloads finished would show them as not loaded yet.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/config_file.hpp"
#include "support/node_process.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using vidnode::test::child_process;
using vidnode::test::node_process;
using vidnode::test::run_command;

namespace {

/// Each device of `nodes` (vidctl nodes --json) with the models it has
/// loaded ("sim:0" -> {"sim"}); a model being loaded is left out.
std::map<std::string, std::vector<std::string>> loaded(const json& nodes) {
  std::map<std::string, std::vector<std::string>> result;
  for (const auto& device : nodes) {
    auto& models = result[device["device"].get<std::string>()];
    for (const auto& model : device["models"])
      if (model["loaded"].get<bool>())
        models.push_back(model["model"].get<std::string>());
  }
  return result;
}

/// The `loads` count of `model` on `device` in `nodes`, 0 if absent.
int loads(const json& nodes, const std::string& device,
          const std::string& model) {
  for (const auto& d : nodes)
    if (d["device"] == device)
      for (const auto& m : d["models"])
        if (m["model"] == model)
          return m["loads"].get<int>();
  return 0;
}

using models = std::vector<std::string>;

vidnode::test::cluster_programs programs() {
  return {VIDNODE_BIN, VIDCTL_BIN};
}

} // namespace

TEST_CASE("a node reports ready only once its preloads are loaded",
          "[integration]") {
  auto started = std::chrono::steady_clock::now();
  node_process node{{"--devices", "sim:2", "--preload", "sim", "--preload",
                     "sim-big@sim:1", "--state-dir", "none"}};
  auto ready_after = std::chrono::steady_clock::now() - started;
  // The loads take 500 ms of device time each, in parallel on the two
  // devices: "listening" cannot come sooner.
  CHECK(ready_after >= 500ms);
  auto devices = loaded(node.vidctl_json({"nodes"}));
  CHECK(devices["sim:0"] == models{"sim"});
  CHECK(devices["sim:1"] == models{"sim", "sim-big"});
}

TEST_CASE("preloads come from the config file and the environment too",
          "[integration]") {
  child_process from_env{{VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices",
                          "sim:2", "--state-dir", "none", "--log-level",
                          "warn"},
                         {"VIDNODE_PRELOAD=sim@sim:0 sim-x@sim:1"}};
  auto line = from_env.read_line(10s);
  INFO(from_env.stderr_text());
  REQUIRE(line);
  auto prefix = std::string{"vidnode listening on "};
  REQUIRE(line->rfind(prefix, 0) == 0);
  auto nodes = run_command(
    {VIDCTL_BIN, "--connect", line->substr(prefix.size()), "nodes", "--json"});
  REQUIRE(nodes.status == 0);
  auto devices = loaded(json::parse(nodes.out));
  CHECK(devices["sim:0"] == models{"sim"});
  CHECK(devices["sim:1"] == models{"sim-x"});

  vidnode::test::config_file config{
    "devices = \"sim:2\"\npreload = [\"sim-a@sim:1\", \"sim-b\"]\n"};
  node_process from_file{{"--config", config.path(), "--state-dir", "none"}};
  devices = loaded(from_file.vidctl_json({"nodes"}));
  CHECK(devices["sim:0"] == models{"sim-b"});
  CHECK(devices["sim:1"] == models{"sim-a", "sim-b"});
}

TEST_CASE("bad --preload values are refused at start, naming the option",
          "[integration]") {
  auto start = [](std::vector<std::string> args,
                  std::vector<std::string> environment = {}) {
    std::vector<std::string> argv = {VIDNODE_BIN, "--listen", "127.0.0.1:0",
                                     "--devices", "sim:2",    "--state-dir",
                                     "none"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 10s, environment);
  };
  struct refusal {
    std::string value;
    std::string message;
  };
  for (const auto& x : std::vector<refusal>{
         {"nope", "--preload: 'nope': this node serves no model 'nope'"},
         {"sim@sim:2", "--preload: 'sim@sim:2': this node has no device "
                       "sim:2 (its devices: sim:0, sim:1)"},
         {"sim@cuda", "--preload: 'sim@cuda': this node has no cuda device"},
         {"tiny-t2v", "--preload: 'tiny-t2v': no device of this node can "
                      "run tiny-t2v"},
         {"sim@gpu:0", "--preload: 'sim@gpu:0': 'gpu:0' is not KIND or "
                       "KIND:ORDINALS"},
         {"@sim:0", "--preload: '@sim:0': is not MODEL[@DEVICES]"},
       }) {
    INFO(x.value);
    auto r = start({"--preload", x.value});
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains(x.message));
    CHECK(r.out.empty());
  }
  auto r = start({}, {"VIDNODE_PRELOAD=sim@sim:7"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("--preload (from VIDNODE_PRELOAD): "
                                    "'sim@sim:7': this node has no device "
                                    "sim:7"));
  r = start({"--preload", "sim", "--preload-timeout", "0s"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("--preload-timeout: must be from 1s"));
}

TEST_CASE("a worker restarted after a crash reloads its preloaded model "
          "without a job",
          "[integration]") {
  node_process node{{"--devices", "sim:2", "--preload", "sim@sim:0",
                     "--max-attempts", "1", "--state-dir", "none"}};
  REQUIRE(loads(node.vidctl_json({"nodes"}), "sim:0", "sim") == 1);
  // The job crashes sim:0's worker (one attempt: no retry loads the model
  // again); the restarted worker starts with no models.
  // vidctl exits non-zero for a failed job, printing it all the same.
  auto submitted =
    node.vidctl({"submit", "--steps", "2", "--option", "step_ms=10", "--option",
                 "fault=crash@1", "--wait", "--json"});
  auto job = json::parse(submitted.out);
  CHECK(job["state"] == "failed");
  CHECK(job["device"] == "sim:0");
  json nodes;
  auto reloaded = vidnode::test::poll_until(
    [&] {
      nodes = node.vidctl_json({"nodes"});
      return loaded(nodes)["sim:0"] == models{"sim"}
             && nodes[0]["restarts"] == 1;
    },
    10s);
  INFO(nodes.dump());
  REQUIRE(reloaded);
  CHECK(loads(nodes, "sim:0", "sim") == 2);
  CHECK(loaded(nodes)["sim:1"].empty());
  // The device serves jobs again with the reloaded model.
  auto after = node.vidctl_json(
    {"submit", "--steps", "1", "--option", "step_ms=1", "--wait"});
  CHECK(after["state"] == "succeeded");
  CHECK(loads(node.vidctl_json({"nodes"}), "sim:0", "sim") == 2);
}

TEST_CASE("a worker node reports having joined only once its preloads are "
          "loaded",
          "[integration]") {
  vidnode::test::head_process head{programs(), {}};
  vidnode::test::worker_process worker{programs(),
                                       {head.cluster_address(),
                                        "w1",
                                        "sim:2",
                                        {"--preload", "sim@sim:1"},
                                        {},
                                        "warn"}};
  REQUIRE(worker.await_joins(1, 10s));
  auto devices = loaded(head.vidctl_json({"nodes"}));
  CHECK(devices["sim:0"].empty());
  CHECK(devices["sim:1"] == models{"sim"});
}

TEST_CASE("a preload that fails ends vidnode with exit 1 and the error, "
          "never reporting ready",
          "[integration]") {
  char weights[] = "/tmp/vidnode-preload-weights-XXXXXX";
  auto fd = mkstemp(weights);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "not weights\n", 12) == 12);
  close(fd);
  auto r = run_command({VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices",
                        "cpu:1", "--state-dir", "none", "--tiny-t2v-weights",
                        weights, "--preload", "tiny-t2v"},
                       60s);
  std::remove(weights);
  if (r.status == 2
      && r.err.find("serves no model 'tiny-t2v'") != std::string::npos) {
    WARN("SKIPPED: this build has no libtorch (no tiny-t2v)");
    return;
  }
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::Contains("vidnode: --preload: internal: device "
                                    "cpu:0: preloading tiny-t2v: tiny-t2v: "
                                    "cannot load weights from"));
}
