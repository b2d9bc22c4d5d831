/// End-to-end tests of worker nodes that keep their jobs while the head is
/// away: a head journaling into a state directory and worker nodes as real
/// processes on 127.0.0.1; the head is killed or stopped and started again
/// on the same ports and directory while a job runs on a worker node.

#include <signal.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/temp_directory.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::head_process;
using test::worker_process;
using wall_clock = std::chrono::system_clock;

namespace {

const test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};

/// Heartbeats fast enough that a worker node sees its head go within a
/// second, on every process.
const std::vector<std::string> heartbeat = {"--heartbeat", "200ms",
                                            "--node-timeout", "1s"};

/// A head journaling into a state directory, started again on the same
/// ports and directory, and worker nodes of one sim device each.
struct restartable_cluster {
  test::temp_directory state{"vidnode-lease-state"};
  test::temp_directory outputs{"vidnode-lease-out"};
  std::vector<uint16_t> ports = test::free_loopback_ports(2);
  std::vector<std::string> head_args;
  std::unique_ptr<head_process> head;
  std::vector<std::unique_ptr<worker_process>> workers;

  explicit restartable_cluster(std::vector<std::string> args = {})
    : head_args(std::move(args)) {
    start_head();
  }

  void start_head() {
    head_process::options opts;
    opts.port = ports[0];
    opts.cluster_port = ports[1];
    opts.args = {"--state-dir",  state.path(),  "--output-dir",
                 outputs.path(), "--node-name", "head"};
    opts.args.insert(opts.args.end(), heartbeat.begin(), heartbeat.end());
    opts.args.insert(opts.args.end(), head_args.begin(), head_args.end());
    opts.vidctl_args = heartbeat;
    head.reset();
    head = std::make_unique<head_process>(programs, opts);
  }

  worker_process& add_worker(const std::string& name) {
    worker_process::options opts;
    opts.join = head->cluster_address();
    opts.name = name;
    opts.devices = "sim:1";
    opts.args = {"--output-dir", outputs.path() + "/" + name};
    opts.args.insert(opts.args.end(), heartbeat.begin(), heartbeat.end());
    opts.log_level = "info";
    workers.push_back(std::make_unique<worker_process>(programs, opts));
    REQUIRE(workers.back()->await_joins(1, 30s));
    return *workers.back();
  }

  /// Submits a job of 40 steps of 100 ms (4 s) that writes a video, and
  /// waits until it runs;
  /// returns its id and the node that runs it.
  std::pair<std::string, std::string> run_job() {
    auto r = head->vidctl({"submit", "--steps", "40", "--option", "step_ms=100",
                           "--option", "load_ms=0", "--option", "video=1"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto id = r.out.substr(0, r.out.find('\n'));
    json status;
    REQUIRE(test::poll_until(
      [&] {
        status = head->vidctl_json({"status", id});
        return status["state"] == "running" && status["step"].get<int>() > 0;
      },
      30s, [&] { pump(); }));
    return {id, status["node"].get<std::string>()};
  }

  json wait(const std::string& id) {
    auto r = head->vidctl({"--json", "wait", id}, 60s);
    INFO("vidctl wait: " << r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
  }

  void pump() {
    for (auto& w : workers)
      w->pump();
  }

  /// Lines of the worker nodes' logs that say a message could not be
  /// serialized (a type missing from CAF's type list): none may appear.
  std::string unserializable() {
    pump();
    std::string found;
    for (auto& w : workers) {
      std::istringstream log{w->process().stderr_text()};
      for (std::string line; std::getline(log, line);)
        if (line.find("cannot serialize") != std::string::npos)
          found += w->name() + ": " + line + "\n";
    }
    return found;
  }

  /// How many times worker node `name` logged that job `id` succeeded.
  int successes_on(const std::string& name, const std::string& id) {
    pump();
    int count = 0;
    for (auto& w : workers) {
      if (w->name() != name)
        continue;
      std::istringstream log{w->process().stderr_text()};
      for (std::string line; std::getline(log, line);)
        if (line.find(": job " + id + " succeeded (lease ")
            != std::string::npos)
          ++count;
    }
    return count;
  }
};

} // namespace

TEST_CASE("a job running on a worker node when the head is killed runs on "
          "there, and the restarted head takes it over: one attempt, "
          "reported once",
          "[journal][lease]") {
  restartable_cluster cluster;
  cluster.add_worker("w1");
  auto [id, node] = cluster.run_job();
  CHECK(node == "w1");
  cluster.head->process().signal(SIGKILL);
  REQUIRE(cluster.head->process().wait(10s));
  cluster.start_head();
  auto result = cluster.wait(id);
  INFO(result.dump(1));
  CHECK(result["state"] == "succeeded");
  CHECK(result["attempts"] == 1);
  CHECK(result["node"] == "w1");
  CHECK(cluster.successes_on("w1", id) == 1);
  CHECK(cluster.unserializable().empty());
  // Its video is read from the node that wrote it.
  auto out = cluster.head->vidctl(
    {"fetch", id, cluster.outputs.path() + "/fetched.mp4"});
  INFO(out.err);
  CHECK(out.status == 0);
}

TEST_CASE("a head stopped with SIGTERM leaves the jobs of its worker nodes "
          "running, and the restarted head takes them over",
          "[journal][lease]") {
  restartable_cluster cluster;
  cluster.add_worker("w1");
  auto [id, node] = cluster.run_job();
  REQUIRE(cluster.head->stop(30s));
  cluster.start_head();
  auto result = cluster.wait(id);
  INFO(result.dump(1));
  CHECK(result["state"] == "succeeded");
  CHECK(result["attempts"] == 1);
  CHECK(cluster.successes_on("w1", id) == 1);
  CHECK(cluster.unserializable().empty());
}

TEST_CASE("a worker node that dies while the head is away has its job run "
          "again elsewhere once the lease grace has passed",
          "[journal][lease]") {
  restartable_cluster cluster{{"--lease-grace", "3s"}};
  cluster.add_worker("w1");
  auto [id, node] = cluster.run_job();
  cluster.add_worker("w2");
  cluster.head->process().signal(SIGKILL);
  REQUIRE(cluster.head->process().wait(10s));
  for (auto& w : cluster.workers)
    if (w->name() == node) {
      w->process().signal(SIGKILL);
      REQUIRE(w->process().wait(10s));
    }
  auto restarted = wall_clock::now();
  cluster.start_head();
  auto result = cluster.wait(id);
  INFO(result.dump(1));
  CHECK(result["state"] == "succeeded");
  CHECK(result["attempts"] == 2);
  CHECK(result["node"] != node);
  // The head kept the attempt for its node for the whole grace.
  CHECK(test::time_of(result, "started_at") >= restarted + 3s);
}
