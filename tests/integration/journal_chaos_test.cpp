/// The head killed with SIGKILL at 20 seeded random moments while a cluster
/// of real processes (a head journaling into a state directory, three
/// worker nodes of two sim devices) runs 100 jobs, and started again each
/// time on the same ports and directory.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::child_process;
using test::head_process;
using test::worker_process;

namespace {

const test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};

/// Heartbeats fast enough that a worker node sees its head go within a
/// second, on every process.
const std::vector<std::string> heartbeat = {"--heartbeat", "200ms",
                                            "--node-timeout", "1s"};

bool is_terminal(const json& result) {
  auto state = result["state"].get<std::string>();
  return state != "queued" && state != "running";
}

} // namespace

TEST_CASE("the head killed with SIGKILL 20 times during 100 jobs on 3 "
          "worker nodes: every accepted job ends exactly once and every "
          "waiting client gets one answer",
          "[journal][chaos]") {
  test::temp_directory state{"vidnode-chaos-state"};
  test::temp_directory outputs{"vidnode-chaos-out"};
  auto ports = test::free_loopback_ports(2);
  std::unique_ptr<head_process> head;
  auto start_head = [&] {
    head_process::options opts;
    opts.port = ports[0];
    opts.cluster_port = ports[1];
    opts.args = {"--state-dir", state.path(), "--output-dir",   outputs.path(),
                 "--node-name", "head",       "--max-attempts", "100"};
    opts.args.insert(opts.args.end(), heartbeat.begin(), heartbeat.end());
    opts.vidctl_args = heartbeat;
    head.reset();
    head = std::make_unique<head_process>(programs, opts);
  };
  start_head();
  std::vector<std::unique_ptr<worker_process>> workers;
  for (auto name : {"w1", "w2", "w3"}) {
    worker_process::options opts;
    opts.join = head->cluster_address();
    opts.name = name;
    opts.devices = "sim:2";
    opts.args = {"--output-dir", outputs.path()};
    opts.args.insert(opts.args.end(), heartbeat.begin(), heartbeat.end());
    // Each attempt's end is logged at info: the log tells how often a job
    // ran to success.
    opts.log_level = "info";
    workers.push_back(std::make_unique<worker_process>(programs, opts));
  }
  for (auto& w : workers)
    REQUIRE(w->await_joins(1, 30s));

  // 20 kills at seeded random moments, each followed by a restart on the
  // same ports and state directory, while the jobs below are submitted,
  // queued, run and waited for. A moment is a point in the clients'
  // progress: each of the 100 clients makes two steps (its submission is
  // answered, then its wait), and the head is killed once a seeded number
  // of the 200 steps were made.
  std::mt19937 random{20261201};
  std::set<int> moments;
  while (moments.size() < 20)
    moments.insert(1 + static_cast<int>(random() % 180));
  std::mutex progress_lock;
  std::condition_variable progress_made;
  int steps_made = 0;
  auto step_made = [&](int n) {
    {
      std::lock_guard<std::mutex> guard{progress_lock};
      steps_made += n;
    }
    progress_made.notify_all();
  };
  std::string failure;
  // Set when the killer fails (a head that does not start again): the
  // clients then stop retrying instead of waiting for a head for ever.
  std::atomic<bool> killer_failed{false};
  std::vector<std::chrono::system_clock::time_point> kills;
  std::thread killer{[&] {
    try {
      for (auto moment : moments) {
        {
          std::unique_lock<std::mutex> guard{progress_lock};
          if (!progress_made.wait_for(guard, 180s,
                                      [&] { return steps_made >= moment; }))
            throw std::runtime_error("the clients made no progress to step "
                                     + std::to_string(moment));
        }
        kills.push_back(std::chrono::system_clock::now());
        head->process().signal(SIGKILL);
        if (!head->process().wait(10s))
          throw std::runtime_error("the head did not die");
        start_head();
      }
    } catch (const std::exception& e) {
      failure = e.what();
      killer_failed = true;
    }
  }};
  struct guard_type {
    std::thread& t;
    ~guard_type() {
      if (t.joinable())
        t.join();
    }
  } join_killer{killer};

  const auto address = "127.0.0.1:" + std::to_string(ports[0]);
  auto vidctl_argv = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {VIDCTL_BIN, "--connect", address,
                                     "--timeout", "60s"};
    argv.insert(argv.end(), heartbeat.begin(), heartbeat.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  // Runs vidctl until it reached the head: a vidctl that finds no head at
  // its first try (the head is restarting) says so at once, exit 3, having
  // sent nothing; it is started again, as a client would.
  auto run_until_reached = [&](const std::vector<std::string>& args) {
    for (;;) {
      child_process p{vidctl_argv(args)};
      auto status = p.wait(180s);
      auto out = p.rest_of_stdout();
      auto err = p.stderr_text();
      if (status && *status == 3 && out.empty()
          && err.find("cannot connect") != std::string::npos
          && !killer_failed)
        continue;
      return std::make_tuple(status, out, err);
    }
  };

  // 100 jobs, ten at a time: mixed priorities and steps, each under an
  // idempotency key (a submission that is started again must not make a
  // second job), every tenth with an OOM and every tenth with a crash
  // injected into its first attempt. Each is then waited for.
  struct job_run {
    std::string key;
    std::string id;
    std::string answer;
    std::string errors;
  };
  std::vector<job_run> runs(100);
  for (int batch = 0; batch < 10; ++batch) {
    std::vector<std::thread> clients;
    for (int i = batch * 10; i < batch * 10 + 10; ++i) {
      std::vector<std::string> args = {"submit",
                                       "--steps",
                                       std::to_string(10 + random() % 20),
                                       "--option",
                                       "step_ms=50",
                                       "--priority",
                                       std::to_string(random() % 10)};
      runs[i].key = "chaos-" + std::to_string(i);
      args.insert(args.end(), {"--idempotency-key", runs[i].key});
      if (i % 10 == 3)
        args.insert(args.end(), {"--option", "fault=oom@2"});
      if (i % 10 == 7)
        args.insert(args.end(), {"--option", "fault=crash@3"});
      clients.emplace_back([&, i, args] {
        auto [status, out, err] = run_until_reached(args);
        if (!status || *status != 0) {
          runs[i].errors = "submit: " + err;
          step_made(2);
          return;
        }
        runs[i].id = out.substr(0, out.find('\n'));
        step_made(1);
        auto [wstatus, wout, werr] =
          run_until_reached({"--json", "wait", runs[i].id});
        runs[i].answer = wout;
        runs[i].errors = werr;
        step_made(1);
      });
    }
    for (auto& c : clients)
      c.join();
    for (auto& w : workers)
      w->pump();
  }
  killer.join();
  REQUIRE(failure.empty());

  // Every client got its job's id and then exactly one final answer.
  std::map<std::string, json> answers;
  for (const auto& run : runs) {
    INFO("job " << run.key << ": " << run.errors);
    REQUIRE(!run.id.empty());
    auto lines = std::count(run.answer.begin(), run.answer.end(), '\n');
    CHECK(lines == 1);
    auto answer = json::parse(run.answer);
    CHECK(std::to_string(answer["id"].get<uint64_t>()) == run.id);
    CHECK(is_terminal(answer));
    answers[run.id] = answer;
  }
  // The journal agrees: exactly the 100 accepted jobs, each ended once,
  // with the state its waiter was told.
  auto list = head->vidctl_json({"list", "--limit", "0"});
  std::map<std::string, int> seen;
  for (const auto& job : list) {
    auto id = std::to_string(job["id"].get<uint64_t>());
    ++seen[id];
    CHECK(is_terminal(job));
    if (answers.count(id) > 0)
      CHECK(job["state"] == answers[id]["state"]);
  }
  CHECK(seen.size() == 100);
  // The kills hit running jobs, whose worker nodes ran them on through
  // the kill: of the jobs with no injected fault, those running at a kill
  // kept their first attempt.
  int through_kill = 0;
  int ran_again = 0;
  int succeeded = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& answer = answers[runs[i].id];
    if (answer["state"] == "succeeded")
      ++succeeded;
    if (i % 10 == 3 || i % 10 == 7 || answer["state"] != "succeeded")
      continue;
    auto started = test::time_of(answer, "started_at");
    auto finished = test::time_of(answer, "finished_at");
    auto spans_kill = std::any_of(kills.begin(), kills.end(), [&](auto t) {
      return started < t && t < finished;
    });
    if (spans_kill && answer["attempts"].get<int>() == 1)
      ++through_kill;
    if (answer["attempts"].get<int>() > 1)
      ++ran_again;
  }
  INFO(through_kill << " jobs ran on through a kill; " << ran_again
                    << " ran again; " << succeeded << " of 100 succeeded");
  CHECK(through_kill > 0);
  CHECK(succeeded == 100);
  // No job ran to success twice: every worker node logs each attempt's
  // success once.
  std::map<std::string, int> successes;
  for (auto& w : workers) {
    w->pump();
    std::istringstream log{w->process().stderr_text()};
    for (std::string line; std::getline(log, line);) {
      auto at = line.find(": job ");
      auto end = line.find(" succeeded (lease ");
      if (at != std::string::npos && end != std::string::npos && end > at)
        ++successes[line.substr(at + 6, end - at - 6)];
    }
  }
  CHECK(successes.size() == 100);
  for (const auto& [id, count] : successes) {
    INFO("job " << id);
    CHECK(count == 1);
  }
  for (const auto& run : runs)
    CHECK(seen[run.id] == 1);
  // Idempotency keys still name their first job.
  for (const auto& run : runs) {
    auto r =
      head->vidctl({"submit", "--steps", "1", "--idempotency-key", run.key});
    CHECK(r.status != 0);
    CHECK(r.err.find("already used by job " + run.id) != std::string::npos);
  }
}
