/// Gangs (jobs of several ranks) end to end: real vidnode and vidctl
/// processes on 127.0.0.1 whose sim gangs run on cpu devices, so that their
/// ranks meet through real Gloo (a TCPStore on rank 0's node, then a full
/// mesh of TCP pairs), within one process and across worker nodes. Nothing
/// sleeps: each test waits on vidctl (submit --wait, wait) or polls `vidctl
/// status/nodes --json` up to a deadline. Every process is killed and
/// reaped, and every temporary directory removed, when its test ends, also
/// when it fails. A build whose cpu devices have no Gloo backend skips them
/// (SKIPPED: with the reason).
///
/// The nodes log at info, where a device worker logs each attempt it ends
/// ("device cpu:0: job 7 succeeded (lease 3)"): that is how the tests see
/// which ranks ran, and that an aborted rank never reported success.

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/process.hpp"
#include "support/raw_connection.hpp"
#include "support/temp_directory.hpp"
#include "vidnode/gpu/collectives.hpp"
#include "vidnode/runtime/device.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::head_process;
using test::worker_process;

namespace {

const test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};

/// vidctl's exit status when the node refused a request (vidctl/main.cpp).
constexpr int exit_refused = 4;

/// Why these tests cannot run here, if they cannot: sim gangs on cpu
/// devices meet through Gloo, which a build without it lacks (the gang
/// would then run without collectives, and prove nothing about them).
std::optional<std::string> why_no_gloo() {
  auto backend = gpu::collective_backend_for(runtime::device_kind::cpu);
  if (backend == "gloo")
    return std::nullopt;
  return "cpu devices have no Gloo backend in this build (backend '" + backend
         + "'): gangs of cpu devices cannot meet";
}

/// vidctl arguments that submit a sim gang of `ranks` ranks doing `steps`
/// steps of `step_ms` ms, with the sim options `options` (KEY=VALUE) and,
/// unless they say otherwise, no model load time.
std::vector<std::string>
gang_job(int ranks, int steps, int step_ms,
         const std::vector<std::string>& options = {}) {
  std::vector<std::string> args = {"submit",
                                   "--ranks",
                                   std::to_string(ranks),
                                   "--steps",
                                   std::to_string(steps),
                                   "--option",
                                   "step_ms=" + std::to_string(step_ms)};
  auto has_load = std::any_of(options.begin(), options.end(), [](auto& x) {
    return x.rfind("load_ms=", 0) == 0;
  });
  if (!has_load)
    args.insert(args.end(), {"--option", "load_ms=0"});
  for (const auto& option : options)
    args.insert(args.end(), {"--option", option});
  return args;
}

/// The lines of `log` that contain `needle`.
std::vector<std::string> lines_with(const std::string& log,
                                    const std::string& needle) {
  std::vector<std::string> found;
  std::istringstream in{log};
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos)
      found.push_back(line);
  return found;
}

/// The lines of `log` at level warning or above (spdlog's "[warning]",
/// "[error]", "[critical]").
std::vector<std::string> complaints(const std::string& log) {
  std::vector<std::string> found;
  for (const char* level : {"] [warning] ", "] [error] ", "] [critical] "})
    for (auto& line : lines_with(log, level))
      found.push_back(std::move(line));
  return found;
}

/// How many times `log` says device `device` ended attempt(s) of job `id`
/// with `how` ("succeeded" or "failed").
size_t attempts_logged(const std::string& log, const std::string& device,
                       uint64_t id, const std::string& how) {
  return lines_with(log, "device " + device + ": job " + std::to_string(id)
                           + " " + how + " (lease ")
    .size();
}

/// The devices or nodes of a gang's result ("w1,w2" -> {w1, w2}): devices
/// in rank order, nodes in the order of their first rank (so in rank order
/// where each node runs one rank).
std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::istringstream in{text};
  for (std::string part; std::getline(in, part, ',');)
    parts.push_back(part);
  return parts;
}

/// What a node's metrics endpoint at 127.0.0.1:port serves (HTTP headers
/// included); throws std::runtime_error if it cannot be reached.
std::string scrape(uint16_t port) {
  auto fd = test::connect_loopback(port);
  std::string request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Connection: close\r\n\r\n";
  std::string answer;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL)
      == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
      answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

/// The value of the sample `series` (name and labels exactly as exposed) in
/// `exposition`; nothing if it has none.
std::optional<double> sample(const std::string& exposition,
                             const std::string& series) {
  for (const auto& line : lines_with(exposition, series))
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

/// A head and its worker nodes, all logging at info, and a temporary output
/// directory for them.
class gang_cluster {
  // First, so destroyed last: the processes are gone before their
  // directory.
  test::temp_directory outputs_{"vidnode-gang-test"};

public:
  /// Starts the head, named "head", with `args` (no devices of its own
  /// unless they give --devices).
  explicit gang_cluster(const std::vector<std::string>& args) {
    head_process::options opts;
    opts.args = {"--output-dir", outputs_.path(), "--node-name", "head"};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    opts.log_level = "info";
    head = std::make_unique<head_process>(programs, opts);
  }

  /// Starts a worker node of one cpu device that joins the head, with
  /// `args` besides.
  worker_process& add_worker(const std::string& name,
                             const std::vector<std::string>& args = {}) {
    worker_process::options opts;
    opts.join = head->cluster_address();
    opts.name = name;
    opts.devices = "cpu:1";
    opts.log_level = "info";
    opts.args = {"--output-dir", outputs_.path() + "/" + name};
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    workers.push_back(std::make_unique<worker_process>(programs, opts));
    return *workers.back();
  }

  worker_process& worker(const std::string& name) {
    for (auto& w : workers)
      if (w->name() == name)
        return *w;
    throw std::runtime_error("no worker " + name);
  }

  /// Reads what every process wrote so far, so no pipe fills up.
  void pump() {
    head->process().poll_output(0ms);
    for (auto& w : workers)
      w->pump();
  }

  json nodes() {
    pump();
    return head->vidctl_json({"nodes"});
  }

  /// Waits until `count` devices are idle.
  bool await_idle_devices(size_t count, std::chrono::milliseconds timeout) {
    return test::poll_until(
      [&] { return test::count_devices(nodes(), "", {"idle"}) >= count; },
      timeout);
  }

  /// Submits with `args` and waits for the job's end (vidctl submit --wait
  /// --json); requires vidctl to exit with `status` (0: it succeeded, 1: it
  /// ended otherwise). Its result.
  json run(std::vector<std::string> args, int status = 0) {
    args.insert(args.end(), {"--wait", "--json"});
    auto r = head->vidctl(args, 60s);
    pump();
    INFO("vidctl: " << r.err << "\nthe head's log:\n"
                    << head->process().stderr_text());
    REQUIRE(r.status == status);
    return json::parse(r.out);
  }

  /// The head's log so far.
  std::string head_log() {
    return head->process().stderr_text();
  }

  std::unique_ptr<head_process> head;
  std::vector<std::unique_ptr<worker_process>> workers;
};

/// Every device of `nodes` (vidctl nodes --json) holds no slot, no memory
/// and no job.
void check_nothing_held(const json& nodes) {
  for (const auto& device : nodes) {
    INFO(device.dump());
    CHECK(device["slots_in_use"] == 0);
    CHECK(device["memory_reserved_bytes"] == 0);
    CHECK(device["running"].empty());
  }
}

} // namespace

// -- one node -----------------------------------------------------------------

TEST_CASE("a sim gang of two ranks on one node's two cpu devices meets "
          "through Gloo and succeeds at its first attempt, with a crash on "
          "rank 1 at its second, and holds nothing afterwards",
          "[gang]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  gang_cluster cluster{{"--devices", "cpu:2"}};

  auto ok = cluster.run(gang_job(2, 4, 50));
  INFO(ok.dump(1));
  CHECK(ok["state"] == "succeeded");
  // A failed rendezvous or join would have cost an attempt.
  CHECK(ok["attempts"] == 1);
  CHECK(ok["device"] == "cpu:0,cpu:1");
  CHECK(ok["node"] == "head");
  CHECK(ok["step"] == 4);
  auto id = ok["id"].get<uint64_t>();
  auto log = cluster.head_log();
  INFO("the node's log:\n" << log);
  for (auto device : {"cpu:0", "cpu:1"}) {
    CHECK(attempts_logged(log, device, id, "succeeded") == 1);
    CHECK(attempts_logged(log, device, id, "failed") == 0);
  }
  CHECK(complaints(log).empty());

  // Rank 1 crashes at step 2 of its first attempt (fault_rank: on no other
  // rank); rank 0 is aborted, and both run again.
  auto crashed =
    cluster.run(gang_job(2, 4, 50, {"fault=crash@2", "fault_rank=1"}));
  INFO(crashed.dump(1));
  CHECK(crashed["state"] == "succeeded");
  CHECK(crashed["attempts"] == 2);
  CHECK(crashed["device"] == "cpu:0,cpu:1");
  auto crashed_id = crashed["id"].get<uint64_t>();
  log = cluster.head_log();
  INFO("the node's log:\n" << log);
  // One success per rank: the second attempt's. Rank 0's first attempt,
  // aborted, reported nothing.
  for (auto device : {"cpu:0", "cpu:1"})
    CHECK(attempts_logged(log, device, crashed_id, "succeeded") == 1);
  CHECK(lines_with(log, "job " + std::to_string(crashed_id)
                          + " queued again: attempt 1 failed")
          .size()
        == 1);
  // The only complaint is the simulated crash: no rendezvous or collective
  // failed.
  auto complained = complaints(log);
  CHECK(complained.size() == 1);
  for (const auto& line : complained)
    CHECK_THAT(line, Catch::Contains("device cpu:1: worker crashed running job "
                                     + std::to_string(crashed_id)
                                     + ": simulated crash at step 2"));

  auto nodes = cluster.nodes();
  INFO(nodes.dump(1));
  REQUIRE(nodes.size() == 2);
  check_nothing_held(nodes);
  CHECK(test::count_devices(nodes, "head", {"idle"}) == 2);
}

TEST_CASE("a gang of three on a node of two cpu devices is refused at once "
          "with too_large, naming the most one node has, and nothing is "
          "queued",
          "[gang]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  gang_cluster cluster{{"--devices", "cpu:2"}};
  auto refused = cluster.head->vidctl(gang_job(3, 4, 50));
  INFO(refused.err);
  CHECK(refused.status == exit_refused);
  CHECK(refused.out.empty());
  CHECK_THAT(refused.err, Catch::Contains("too_large")
                            && Catch::Contains("needs 3 devices")
                            && Catch::Contains("the most on one node is 2")
                            && Catch::Contains("--gang-across-nodes is off"));
  CHECK(cluster.head->vidctl_json({"list", "--limit", "0"}).empty());
  check_nothing_held(cluster.nodes());
}

TEST_CASE("on four cpu devices, two gangs of three, a gang of four and 20 "
          "singles all finish at their first attempt; a gang waits behind at "
          "most max-bypass singles per gang up to it",
          "[gang]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  constexpr int max_bypass = 3;
  gang_cluster cluster{
    {"--devices", "cpu:4", "--max-bypass", std::to_string(max_bypass)}};
  auto submit = [&](std::vector<std::string> args) {
    auto r = cluster.head->vidctl(args);
    INFO(r.err);
    REQUIRE(r.status == 0);
    return std::stoull(r.out);
  };
  auto single = [&] { return gang_job(1, 3, 50); };
  std::vector<uint64_t> singles;
  std::vector<uint64_t> gangs;
  for (int i = 0; i < 20; ++i) {
    if (i == 2 || i == 3)
      gangs.push_back(submit(gang_job(3, 3, 50)));
    if (i == 8)
      gangs.push_back(submit(gang_job(4, 3, 50)));
    singles.push_back(submit(single()));
  }
  std::map<uint64_t, json> results;
  for (auto id : gangs) {
    auto r = cluster.head->vidctl({"wait", std::to_string(id), "--json"}, 60s);
    REQUIRE(r.status == 0);
    results[id] = json::parse(r.out);
  }
  for (auto id : singles) {
    auto r = cluster.head->vidctl({"wait", std::to_string(id), "--json"}, 60s);
    REQUIRE(r.status == 0);
    results[id] = json::parse(r.out);
  }
  for (auto& [id, r] : results) {
    INFO(r.dump(1));
    CHECK(r["state"] == "succeeded");
    CHECK(r["attempts"] == 1);
  }
  // Times are ISO 8601 UTC with milliseconds: they order as strings. The
  // singles behind a gang pass it at most max-bypass times while it is at
  // the head of the queue, and as many more while each gang ahead of it
  // is: a bound of max-bypass per gang up to and including it.
  for (size_t i = 0; i < gangs.size(); ++i) {
    auto gang = gangs[i];
    const auto& g = results[gang];
    int passed = 0;
    for (auto id : singles) {
      const auto& r = results[id];
      if (id > gang && r["started_at"] < g["started_at"])
        ++passed;
    }
    INFO("gang " << gang << ": " << g.dump(1));
    CHECK(passed <= max_bypass * static_cast<int>(i + 1));
  }
  check_nothing_held(cluster.nodes());
}

// -- across worker nodes ------------------------------------------------------

TEST_CASE("with --gang-across-nodes gangs of two run one rank on each of "
          "two worker nodes of one cpu device, meet through Gloo across "
          "processes, and succeed at their first attempt",
          "[gang][cluster]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  gang_cluster cluster{{"--gang-across-nodes"}};
  auto& w1 = cluster.add_worker("w1");
  auto& w2 = cluster.add_worker("w2");
  REQUIRE(cluster.await_idle_devices(2, 30s));

  // Gangs one after the other (about 0.1 s each), each met at its first
  // attempt. Before this test's commit, a rank that left its gang as soon
  // as it had joined (a sim rank keeps no communicator) sometimes failed the
  // other rank's join ("Connection closed by peer" while connecting): 1 to
  // 5 cross-node gangs in 100 by hand on a loaded machine, so the more
  // gangs here, the likelier a regression shows.
  constexpr int gangs = 24;
  std::vector<uint64_t> ids;
  for (int i = 0; i < gangs; ++i) {
    auto result = cluster.run(gang_job(2, 2, 20));
    INFO(result.dump(1));
    CHECK(result["state"] == "succeeded");
    CHECK(result["attempts"] == 1);
    CHECK(result["device"] == "cpu:0,cpu:0");
    auto nodes = split(result["node"].get<std::string>());
    CHECK(std::set<std::string>(nodes.begin(), nodes.end())
          == std::set<std::string>{"w1", "w2"});
    ids.push_back(result["id"].get<uint64_t>());
  }
  // Each node ran its rank of each gang to the end, once, and nothing
  // complained.
  for (auto* w : {&w1, &w2}) {
    auto log = w->process().stderr_text();
    INFO(w->name() << "'s log:\n" << log);
    for (auto id : ids) {
      INFO("job " << id);
      CHECK(attempts_logged(log, "cpu:0", id, "succeeded") == 1);
    }
    CHECK(complaints(log).empty());
  }
  INFO("the head's log:\n" << cluster.head_log());
  CHECK(complaints(cluster.head_log()).empty());
  check_nothing_held(cluster.nodes());
}

TEST_CASE("without --gang-across-nodes a gang of two is refused with "
          "too_large on two worker nodes of one cpu device each, though the "
          "cluster has two free devices",
          "[gang][cluster]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  gang_cluster cluster{{}};
  cluster.add_worker("w1");
  cluster.add_worker("w2");
  REQUIRE(cluster.await_idle_devices(2, 30s));
  auto refused = cluster.head->vidctl(gang_job(2, 4, 50));
  INFO(refused.err);
  CHECK(refused.status == exit_refused);
  CHECK_THAT(refused.err, Catch::Contains("too_large")
                            && Catch::Contains("the most on one node is 1")
                            && Catch::Contains("--gang-across-nodes is off"));
  CHECK(cluster.head->vidctl_json({"list", "--limit", "0"}).empty());
}

TEST_CASE("a worker node killed under a cross-node gang ends the gang's rank "
          "on the other node, and the gang runs again on the two nodes left "
          "and succeeds",
          "[gang][cluster]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  // Each worker node's own metrics show what its devices hold: an attempt
  // its device worker still runs counts as a slot in use there.
  auto metrics_ports = test::free_loopback_ports(3);
  gang_cluster cluster{{"--gang-across-nodes", "--lease-grace", "0s"}};
  std::map<std::string, uint16_t> metrics;
  for (int i = 0; i < 3; ++i) {
    auto name = "w" + std::to_string(i + 1);
    metrics[name] = metrics_ports[static_cast<size_t>(i)];
    cluster.add_worker(
      name, {"--metrics-listen", "127.0.0.1:" + std::to_string(metrics[name])});
  }
  REQUIRE(cluster.await_idle_devices(3, 30s));

  // 30 steps of 100 ms: it still runs for seconds when the kill comes.
  auto submitted = cluster.head->vidctl_json(gang_job(2, 30, 100));
  auto id = submitted["id"].get<uint64_t>();
  auto id_text = std::to_string(id);
  json first;
  // Running, and past its first step: every rank has joined.
  REQUIRE(test::poll_until(
    [&] {
      first = cluster.head->vidctl_json({"status", id_text});
      return first["state"] == "running" && first["step"].get<int>() >= 1;
    },
    30s, [&] { cluster.pump(); }));
  INFO("first attempt: " << first.dump(1));
  REQUIRE(first["attempts"] == 1);
  REQUIRE(first["step"].get<int>() < 30);
  auto ran_on = split(first["node"].get<std::string>());
  REQUIRE(ran_on.size() == 2);
  // Rank 0's node: the one that also serves the gang's rendezvous.
  const auto victim = ran_on[0];
  const auto survivor = ran_on[1];
  std::string spare;
  for (const auto& w : cluster.workers)
    if (w->name() != victim && w->name() != survivor)
      spare = w->name();
  cluster.worker(victim).process().signal(SIGKILL);
  REQUIRE(cluster.worker(victim).process().wait(10s));

  auto waited = cluster.head->vidctl({"--json", "wait", id_text}, 60s);
  cluster.pump();
  INFO("vidctl wait: " << waited.err << "\nthe head's log:\n"
                       << cluster.head_log());
  REQUIRE(waited.status == 0);
  auto result = json::parse(waited.out);
  INFO("result: " << result.dump(1));
  CHECK(result["state"] == "succeeded");
  CHECK(result["attempts"] == 2);
  auto reran_on = split(result["node"].get<std::string>());
  CHECK(std::set<std::string>(reran_on.begin(), reran_on.end())
        == std::set<std::string>{survivor, spare});
  // The head re-queued it once, for the lost node.
  auto requeued = lines_with(cluster.head_log(),
                             "job " + id_text + " queued again: attempt 1");
  REQUIRE(requeued.size() == 1);
  CHECK_THAT(requeued[0], Catch::Contains("node " + victim + " was lost"));

  // The survivor's rank of the first attempt was stopped: it never reported
  // success (only the second attempt's rank did), and its device worker
  // holds no attempt once the job is over.
  auto& kept = cluster.worker(survivor);
  auto log = kept.process().stderr_text();
  INFO(survivor << "'s log:\n" << log);
  CHECK(attempts_logged(log, "cpu:0", id, "succeeded") == 1);
  auto exposition = scrape(metrics[survivor]);
  INFO(survivor << "'s metrics:\n" << exposition);
  CHECK(
    sample(exposition, "vidnode_device_slots_in_use{device=\"cpu:0\",node=\""
                         + survivor + "\"}")
    == 0.0);
  auto spare_log = cluster.worker(spare).process().stderr_text();
  INFO(spare << "'s log:\n" << spare_log);
  CHECK(attempts_logged(spare_log, "cpu:0", id, "succeeded") == 1);

  auto nodes = cluster.nodes();
  INFO(nodes.dump(1));
  check_nothing_held(nodes);
  CHECK(test::count_devices(nodes, victim, {"lost"}) == 1);
  CHECK(test::count_devices(nodes, "", {"idle"}) == 2);
}

// -- a rank that never joins --------------------------------------------------

TEST_CASE("a rank that does not join within --gang-timeout fails its gang's "
          "attempt instead of hanging it, both devices are free afterwards, "
          "and the next gang succeeds",
          "[gang]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  gang_cluster cluster{
    {"--devices", "cpu:2", "--gang-timeout", "1s", "--max-attempts", "1"}};
  // One device loads the sim model now; the gang's rank 0 goes there (a
  // gang takes a node's devices with the model first), and its rank 1 to
  // the other device, which loads the model for 3 s: rank 0 waits for it
  // in the join, for 1 s.
  auto warm = cluster.run({"submit", "--steps", "1", "--option", "load_ms=0"});
  auto warm_device = warm["device"].get<std::string>();
  auto gang = cluster.run(gang_job(2, 2, 50, {"load_ms=3000"}), 1);
  INFO(gang.dump(1));
  CHECK(gang["state"] == "failed");
  CHECK(gang["attempts"] == 1);
  CHECK(split(gang["device"].get<std::string>()).at(0) == warm_device);
  CHECK(gang["error"]["code"] == "worker_lost");
  CHECK_THAT(gang["error"]["message"].get<std::string>(),
             Catch::Contains("rank(s) 1 of gang")
               && Catch::Contains("did not join within 1000 ms"));
  CHECK(gang["run_time_s"].get<double>() < 3.0);

  // The late device finishes its load (admission hears of it), and neither
  // device holds anything of the failed gang.
  json nodes;
  REQUIRE(test::poll_until(
    [&] {
      nodes = cluster.nodes();
      return std::all_of(nodes.begin(), nodes.end(), [](const json& device) {
        return device["models"].size() == 1
               && device["models"][0]["loads"] == 1;
      });
    },
    30s));
  INFO(nodes.dump(1));
  check_nothing_held(nodes);
  auto again = cluster.run(gang_job(2, 2, 50));
  CHECK(again["state"] == "succeeded");
  CHECK(again["attempts"] == 1);
}

// -- tiny-t2v -----------------------------------------------------------------

TEST_CASE("tiny-t2v as a gang of 2 and of 4 ranks on cpu devices writes the "
          "same video as on one device",
          "[gang][tiny-t2v]") {
  if (auto why = why_no_gloo()) {
    WARN("SKIPPED: " << *why);
    return;
  }
  gang_cluster cluster{{"--devices", "cpu:4"}};
  auto video_of = [&](int ranks) {
    auto r = cluster.run({"submit", "--model", "tiny-t2v", "--ranks",
                          std::to_string(ranks), "--width", "64", "--height",
                          "64", "--frames", "8", "--steps", "3", "--seed", "11",
                          "--prompt", "a red kite over the sea"});
    INFO(r.dump(1));
    CHECK(r["state"] == "succeeded");
    CHECK(r["attempts"] == 1);
    CHECK(split(r["device"].get<std::string>()).size()
          == static_cast<size_t>(ranks));
    return test::read_file(r["output"].get<std::string>());
  };
  auto one = video_of(1);
  REQUIRE(!one.empty());
  // The frames agree exactly (gpu_test [ranks] compares latents and
  // frames), so the encoder writes the same bytes.
  CHECK(video_of(2) == one);
  CHECK(video_of(4) == one);
  check_nothing_held(cluster.nodes());
}
