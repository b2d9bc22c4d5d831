/// A cluster of real processes on this machine: a head (`vidnode --devices
/// none`) and worker nodes (`vidnode --join`) that are killed, stopped, cut
/// off and restarted while they run jobs, and peers that send the head's
/// ports what neither a node nor a client may. Ports are picked by the
/// kernel (port 0) except where a head restarts on the ports it had. No
/// test sleeps: each polls `vidctl list/nodes --json` or reads the
/// processes' output, up to a deadline. Every process is killed and reaped,
/// and every temporary directory and network namespace removed, when its
/// test ends, also when it fails.
///
/// Tests tagged [heartbeat] run every process with `--heartbeat 200ms
/// --node-timeout 1s`: only heartbeats reveal a stopped or cut-off node
/// (CAF.md, "Remoting"). A build without those flags fails them at once,
/// saying so.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/process.hpp"
#include "support/raw_connection.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::head_process;
using test::worker_process;

namespace {

using wall_clock = std::chrono::system_clock;
using test::parse_time;
using test::time_of;
using steady_clock = std::chrono::steady_clock;

const test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};

/// The jobs the tests run: 10 steps of 100 ms, no model load, so each runs
/// for one second wherever it runs.
constexpr auto job_duration = 1s;
constexpr int32_t job_steps = 10;

/// What the [heartbeat] tests set on every process, and what they expect
/// of it.
constexpr auto heartbeat_interval = 200ms;
constexpr auto node_timeout = 1s;
const std::vector<std::string> heartbeat_flags = {"--heartbeat", "200ms",
                                                  "--node-timeout", "1s"};

/// The first delay and the cap of a worker node's backoff when it lost the
/// head (join_options).
constexpr auto rejoin_backoff = 100ms;
constexpr auto rejoin_backoff_max = 5s;

/// Scheduling noise allowed on top of a bound: process wake-ups on a
/// loaded two-core machine, and timestamps that vidctl prints in whole
/// milliseconds.
constexpr auto slack = 300ms;

runtime::job_spec timed_job() {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.steps = job_steps;
  spec.options = {{"step_ms", "100"}, {"load_ms", "0"}};
  return spec;
}

/// vidctl arguments that submit timed_job().
const std::vector<std::string> timed_job_args = {
  "submit",   "--steps",  std::to_string(job_steps), "--option", "step_ms=100",
  "--option", "load_ms=0"};

/// Milliseconds, for messages.
long long ms(wall_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// When vidctl nodes says a node was lost: its devices' last error is "node
/// lost TIME: WHY".
std::optional<wall_clock::time_point> lost_at(const json& nodes,
                                              const std::string& node) {
  for (const auto& device : nodes) {
    if (device["node"] != node || device["state"] != "lost"
        || !device["last_error"].is_string())
      continue;
    auto text = device["last_error"].get<std::string>();
    auto prefix = std::string{"node lost "};
    if (text.rfind(prefix, 0) != 0)
      continue;
    return parse_time(text.substr(prefix.size(), 24));
  }
  return std::nullopt;
}

bool is_terminal(const json& result) {
  auto state = result["state"].get<std::string>();
  return state != "queued" && state != "running";
}

/// Fails the test unless vidnode and vidctl take --heartbeat and
/// --node-timeout.
void require_heartbeat_flags() {
  for (const auto& program : {programs.vidnode, programs.vidctl}) {
    auto help = test::run_command({program, "--help"});
    if (help.out.find("--heartbeat") == std::string::npos
        || help.out.find("--node-timeout") == std::string::npos)
      FAIL(program
           << " has no --heartbeat and --node-timeout: this test needs "
              "them (without heartbeats a stopped or cut-off node is never "
              "detected)");
  }
}

/// A head and its worker nodes, every process sharing `flags`, and a
/// temporary output directory for all of them.
class test_cluster {
  // First, so destroyed last: the processes are gone before their
  // directory.
  std::vector<std::string> flags_;
  test::temp_directory outputs_{"vidnode-cluster-test"};

public:
  explicit test_cluster(std::vector<std::string> flags = {})
    : flags_(std::move(flags)) {}

  /// Starts the head (again, if one ran: the old one must have exited).
  void start_head(uint16_t port = 0, uint16_t cluster_port = 0,
                  std::string cluster_host = "127.0.0.1",
                  std::vector<std::string> args = {}) {
    head_process::options opts;
    opts.port = port;
    opts.cluster_port = cluster_port;
    opts.cluster_host = std::move(cluster_host);
    opts.args = {"--output-dir", outputs_.path(), "--node-name", "head"};
    opts.args.insert(opts.args.end(), flags_.begin(), flags_.end());
    opts.args.insert(opts.args.end(), args.begin(), args.end());
    opts.vidctl_args = flags_;
    head.reset();
    head = std::make_unique<head_process>(programs, opts);
  }

  /// Starts a worker node with two sim devices that joins the head at
  /// `join` (the head's cluster address if empty).
  worker_process& add_worker(const std::string& name,
                             std::vector<std::string> wrapper = {},
                             std::string join = "",
                             std::string log_level = "warn") {
    worker_process::options opts;
    opts.log_level = std::move(log_level);
    opts.join = join.empty() ? head->cluster_address() : join;
    opts.name = name;
    opts.devices = "sim:2";
    opts.args = {"--output-dir", outputs_.path()};
    opts.args.insert(opts.args.end(), flags_.begin(), flags_.end());
    opts.wrapper = std::move(wrapper);
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
    if (head)
      head->process().poll_output(0ms);
    for (auto& w : workers)
      w->pump();
  }

  json nodes() {
    pump();
    return head->vidctl_json({"nodes"});
  }

  json jobs() {
    pump();
    return head->vidctl_json({"list", "--limit", "0"});
  }

  /// Waits until `count` devices of `node` (of every node if empty) are
  /// idle or busy.
  bool await_devices(const std::string& node, size_t count,
                     std::chrono::milliseconds timeout) {
    return test::poll_until(
      [&] {
        return test::count_devices(nodes(), node, {"idle", "busy"}) >= count;
      },
      timeout);
  }

  /// Waits until every job has ended; their results.
  json await_jobs_ended(size_t count, std::chrono::milliseconds timeout) {
    json result;
    auto ended = test::poll_until(
      [&] {
        result = jobs();
        return result.size() >= count
               && std::all_of(result.begin(), result.end(), is_terminal);
      },
      timeout);
    INFO(result.dump(1));
    REQUIRE(ended);
    return result;
  }

  /// Waits until node `node` runs `count` jobs that each have at least half
  /// their steps to go, and at least `ended_before` jobs have ended; the
  /// running jobs' ids.
  std::set<uint64_t> await_running_on(const std::string& node, size_t count,
                                      std::chrono::milliseconds timeout,
                                      size_t ended_before = 0) {
    std::set<uint64_t> running;
    auto found = test::poll_until(
      [&] {
        running.clear();
        size_t ended = 0;
        for (const auto& job : jobs()) {
          if (is_terminal(job))
            ++ended;
          else if (job["state"] == "running" && job["node"] == node
                   && job["step"].get<int>() <= job_steps / 2)
            running.insert(job["id"].get<uint64_t>());
        }
        return running.size() >= count && ended >= ended_before;
      },
      timeout);
    REQUIRE(found);
    return running;
  }

  std::unique_ptr<head_process> head;
  std::vector<std::unique_ptr<worker_process>> workers;
};

/// A CAF client of the head's client port, in this process.
class caf_client {
public:
  /// Connects to 127.0.0.1:port; with `heartbeats`, it sends them as every
  /// process of a [heartbeat] test does (else the head drops the link).
  explicit caf_client(uint16_t port, bool heartbeats = false)
    : sys_(configure(cfg_, heartbeats)) {
    auto handle = sys_.middleman().remote_actor<runtime::admission_actor>(
      "127.0.0.1", port);
    if (!handle)
      throw std::runtime_error("cannot connect to the head: "
                               + sys_.render(handle.error()));
    admission_ = *handle;
  }

  ~caf_client() {
    admission_ = nullptr;
  }

  /// Submits `count` copies of `spec` one after the other; their ids.
  std::vector<uint64_t> submit(const runtime::job_spec& spec, size_t count) {
    std::vector<uint64_t> ids;
    caf::error refusal;
    caf::scoped_actor self{sys_};
    for (size_t i = 0; i < count && !refusal; ++i)
      self
        ->request(admission_, caf::duration{10s}, runtime::submit_atom::value,
                  spec)
        .receive([&](runtime::job_id id) { ids.push_back(id.value); },
                 [&](caf::error& err) { refusal = std::move(err); });
    if (refusal)
      throw std::runtime_error("submit refused: " + runtime::describe(refusal));
    return ids;
  }

  caf::actor_system& system() noexcept {
    return sys_;
  }

  const runtime::admission_actor& admission() const noexcept {
    return admission_;
  }

private:
  static net::process_config& configure(net::process_config& cfg,
                                        bool heartbeats) {
    if (heartbeats) {
      cfg.set("middleman.heartbeat-interval",
              caf::timespan{heartbeat_interval});
      cfg.set("middleman.connection-timeout", caf::timespan{node_timeout});
    }
    return cfg;
  }

  net::process_config cfg_;
  caf::actor_system sys_;
  runtime::admission_actor admission_;
};

/// When each job, in id order and released at its accepted_at, would start
/// on `devices` devices that each run one job at a time, taking `duration`
/// per job (a FIFO list schedule).
std::map<uint64_t, wall_clock::time_point>
list_schedule(const json& jobs, size_t devices, wall_clock::duration duration) {
  std::vector<json> sorted(jobs.begin(), jobs.end());
  std::sort(sorted.begin(), sorted.end(), [](const json& x, const json& y) {
    return x["id"].get<uint64_t>() < y["id"].get<uint64_t>();
  });
  std::priority_queue<wall_clock::time_point,
                      std::vector<wall_clock::time_point>, std::greater<>>
    free_at;
  for (size_t i = 0; i < devices; ++i)
    free_at.push(wall_clock::time_point{});
  std::map<uint64_t, wall_clock::time_point> starts;
  for (const auto& job : sorted) {
    auto start = std::max(time_of(job, "accepted_at"), free_at.top());
    free_at.pop();
    free_at.push(start + duration);
    starts[job["id"].get<uint64_t>()] = start;
  }
  return starts;
}

/// Device states of `nodes` without what running jobs change (slots and
/// memory in use, running ids, model loads): up (idle or busy), lost, ...
json device_shapes(const json& nodes) {
  json result = json::array();
  for (const auto& device : nodes) {
    auto state = device["state"].get<std::string>();
    if (state == "idle" || state == "busy")
      state = "up";
    result.push_back({{"node", device["node"]},
                      {"device", device["device"]},
                      {"state", state},
                      {"slots", device["slots"]},
                      {"memory_bytes", device["memory_bytes"]},
                      {"restarts", device["restarts"]},
                      {"last_error", device["last_error"]}});
  }
  return result;
}

/// A network namespace joined to this one by a veth pair, removed when the
/// object goes. This side is HOST_ADDRESS, the namespace NS_ADDRESS (a /30
/// of 10.231.0.0/16 chosen by the process id).
class network_namespace {
public:
  /// Creates it, or says why it cannot (not root, no CAP_NET_ADMIN, no `ip`).
  static std::unique_ptr<network_namespace> create(std::string& why_not) {
    std::unique_ptr<network_namespace> ns{new network_namespace};
    for (const char* path :
         {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
      if (::access(path, X_OK) == 0) {
        ns->ip_ = path;
        break;
      }
    if (ns->ip_.empty()) {
      why_not = "no `ip` program (iproute2) on this machine";
      return nullptr;
    }
    auto id = static_cast<unsigned>(::getpid());
    ns->name_ = "vidnode-test-" + std::to_string(id);
    ns->host_link_ = "vnh" + std::to_string(id % 1000000);
    ns->ns_link_ = "vnn" + std::to_string(id % 1000000);
    auto block = (id % 16000) * 4;
    auto prefix = "10.231." + std::to_string(block / 256) + ".";
    ns->host_address_ = prefix + std::to_string(block % 256 + 1);
    ns->ns_address_ = prefix + std::to_string(block % 256 + 2);
    auto added = ns->ip({"netns", "add", ns->name_});
    if (added.status != 0) {
      why_not = "`ip netns add` is not allowed here (needs root with "
                "CAP_NET_ADMIN): "
                + added.err;
      return nullptr;
    }
    ns->created_ = true;
    for (auto args : std::vector<std::vector<std::string>>{
           {"link", "add", ns->host_link_, "type", "veth", "peer", "name",
            ns->ns_link_},
           {"link", "set", ns->ns_link_, "netns", ns->name_},
           {"addr", "add", ns->host_address_ + "/30", "dev", ns->host_link_},
           {"link", "set", ns->host_link_, "up"},
           {"netns", "exec", ns->name_, ns->ip_, "addr", "add",
            ns->ns_address_ + "/30", "dev", ns->ns_link_},
           {"netns", "exec", ns->name_, ns->ip_, "link", "set", ns->ns_link_,
            "up"},
           {"netns", "exec", ns->name_, ns->ip_, "link", "set", "lo", "up"}}) {
      auto r = ns->ip(args);
      if (r.status != 0) {
        why_not = "cannot set up a veth pair: ip";
        for (const auto& arg : args)
          why_not += " " + arg;
        why_not += ": " + r.err;
        return nullptr;
      }
    }
    return ns;
  }

  ~network_namespace() {
    if (!created_)
      return;
    ip({"link", "del", host_link_});
    ip({"netns", "del", name_});
  }

  network_namespace(const network_namespace&) = delete;
  network_namespace& operator=(const network_namespace&) = delete;

  /// Runs a program inside the namespace: put before its argv.
  std::vector<std::string> wrapper() const {
    return {ip_, "netns", "exec", name_};
  }

  const std::string& host_address() const noexcept {
    return host_address_;
  }

  /// Cuts the link (from inside the namespace: this side keeps its
  /// address) or heals it; false if `ip` failed.
  bool cut() {
    return ip({"netns", "exec", name_, ip_, "link", "set", ns_link_, "down"})
             .status
           == 0;
  }
  bool heal() {
    return ip({"netns", "exec", name_, ip_, "link", "set", ns_link_, "up"})
             .status
           == 0;
  }

private:
  network_namespace() = default;

  test::command_result ip(std::vector<std::string> args) const {
    args.insert(args.begin(), ip_);
    return test::run_command(args, 10s);
  }

  std::string ip_;
  std::string name_;
  std::string host_link_;
  std::string ns_link_;
  std::string host_address_;
  std::string ns_address_;
  bool created_ = false;
};

} // namespace

// -- losing a node ------------------------------------------------------------

TEST_CASE("a worker node killed with SIGKILL mid-run loses no job: its "
          "running jobs re-run once on other nodes without waiting behind "
          "the queue, and each of the 60 jobs succeeds exactly once",
          "[cluster]") {
  test_cluster cluster;
  // No lease grace: the lost node's jobs are queued again at once (the
  // grace has tests of its own).
  cluster.start_head(0, 0, "127.0.0.1", {"--lease-grace", "0s"});
  for (auto name : {"w1", "w2", "w3"})
    cluster.add_worker(name);
  REQUIRE(cluster.await_devices("", 6, 30s));
  caf_client client{cluster.head->port()};
  auto submitted = client.submit(timed_job(), 60);
  REQUIRE(submitted.size() == 60);
  const std::string victim = "w2";
  // Mid-run: the first round of jobs has ended, and both of its devices are
  // busy with jobs that have at least half their steps to go.
  auto in_flight = cluster.await_running_on(victim, 2, 30s, 6);
  auto killed_at = wall_clock::now();
  cluster.worker(victim).process().signal(SIGKILL);

  auto jobs = cluster.await_jobs_ended(60, 60s);
  auto nodes = cluster.nodes();
  INFO("jobs: " << jobs.dump(1) << "\nnodes: " << nodes.dump(1));
  // Each job exactly once, all succeeded.
  REQUIRE(jobs.size() == 60);
  std::set<uint64_t> ids;
  for (const auto& job : jobs)
    ids.insert(job["id"].get<uint64_t>());
  CHECK(ids == std::set<uint64_t>(submitted.begin(), submitted.end()));
  for (const auto& job : jobs) {
    INFO("job " << job["id"]);
    CHECK(job["state"] == "succeeded");
    // The jobs that ran on the victim when it died ran again elsewhere,
    // their lost attempt counted; no other job was retried.
    auto id = job["id"].get<uint64_t>();
    if (in_flight.count(id) > 0) {
      CHECK(job["attempts"] == 2);
      CHECK(job["node"] != victim);
    } else {
      CHECK(job["attempts"] == 1);
    }
    if (job["node"] == victim)
      CHECK(time_of(job, "finished_at") < killed_at);
  }
  // The head saw the node go at once (its connection closed). The bounds
  // below use the [heartbeat] tests' node timeout, 1 s: five times stricter
  // than the default this cluster runs with, which a closed connection
  // never waits for.
  auto lost = lost_at(nodes, victim);
  REQUIRE(lost);
  CHECK(ms(*lost - killed_at) <= ms(node_timeout));
  CHECK(test::count_devices(nodes, victim, {"lost"}) == 2);
  CHECK(test::count_devices(nodes, "", {"idle"}) == 4);
  // No job waited longer than the node timeout plus one job duration more
  // than it would have on the four surviving devices alone: re-queued jobs
  // go to the front of the queue, and the lost capacity delays the others
  // by no more than that.
  auto mean_run = wall_clock::duration{0};
  for (const auto& job : jobs)
    mean_run += std::chrono::duration_cast<wall_clock::duration>(
      std::chrono::duration<double>(job["run_time_s"].get<double>()));
  mean_run /= static_cast<int>(jobs.size());
  auto ideal = list_schedule(jobs, 4, mean_run);
  for (const auto& job : jobs) {
    auto id = job["id"].get<uint64_t>();
    auto started = time_of(job, "started_at");
    INFO("job " << id << " started " << ms(started - ideal[id])
                << " ms after it would have on four devices from the start");
    CHECK(ms(started - ideal[id]) <= ms(node_timeout + job_duration));
    if (in_flight.count(id) > 0) {
      INFO("re-run " << ms(started - killed_at) << " ms after the kill");
      CHECK(ms(started - killed_at) <= ms(node_timeout + job_duration));
    }
  }
}

TEST_CASE("worker nodes rejoin a head restarted on the same ports by "
          "themselves within their backoff, and new jobs run on them",
          "[cluster]") {
  auto ports = test::free_loopback_ports(2);
  test_cluster cluster;
  cluster.start_head(ports[0], ports[1]);
  auto& w1 = cluster.add_worker("w1");
  auto& w2 = cluster.add_worker("w2");
  REQUIRE(w1.await_joins(1, 30s));
  REQUIRE(w2.await_joins(1, 30s));
  REQUIRE(cluster.await_devices("", 4, 30s));

  auto stopped_at = steady_clock::now();
  auto status = cluster.head->stop(30s);
  REQUIRE(status);
  CHECK(*status == 0);
  cluster.start_head(ports[0], ports[1]);
  auto restarted_at = steady_clock::now();
  REQUIRE(cluster.head->port() == ports[0]);
  REQUIRE(cluster.head->cluster_port() == ports[1]);
  // A worker node tries again 100 ms after it lost the head, then after
  // doubling delays up to 5 s: when the head is back, the delay then running
  // is at most the time the head was away plus the first delay.
  auto downtime = restarted_at - stopped_at;
  auto bound = std::min<steady_clock::duration>(rejoin_backoff_max,
                                                downtime + rejoin_backoff)
               + 1s;
  for (auto* w : {&w1, &w2}) {
    INFO(
      w->name()
      << " (the head was away "
      << std::chrono::duration_cast<std::chrono::milliseconds>(downtime).count()
      << " ms); its stderr: " << w->process().stderr_text());
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      restarted_at + bound - steady_clock::now());
    CHECK(w->await_joins(2, std::max(left, 0ms)));
  }
  REQUIRE(cluster.await_devices("", 4, 10s));

  // New jobs: one per device, so both nodes run some.
  caf_client client{cluster.head->port()};
  auto submitted = client.submit(timed_job(), 4);
  auto jobs = cluster.await_jobs_ended(4, 30s);
  INFO(jobs.dump(1));
  std::set<std::string> nodes_used;
  for (const auto& job : jobs) {
    CHECK(job["state"] == "succeeded");
    nodes_used.insert(job["node"].get<std::string>());
  }
  CHECK(nodes_used == std::set<std::string>{"w1", "w2"});
}

TEST_CASE("a stopped worker node (SIGSTOP) is found lost within the node "
          "timeout and its jobs finish elsewhere, and after SIGCONT it rejoins "
          "as new and no job is reported twice",
          "[cluster][heartbeat]") {
  require_heartbeat_flags();
  test_cluster cluster{heartbeat_flags};
  cluster.start_head(0, 0, "127.0.0.1", {"--lease-grace", "0s"});
  for (auto name : {"w1", "w2", "w3"})
    cluster.add_worker(name);
  REQUIRE(cluster.await_devices("", 6, 30s));
  caf_client client{cluster.head->port(), true};
  auto submitted = client.submit(timed_job(), 12);
  const std::string victim = "w2";
  auto& stopped = cluster.worker(victim);
  REQUIRE(stopped.await_joins(1, 1s));
  auto in_flight = cluster.await_running_on(victim, 2, 30s);
  auto stopped_at = wall_clock::now();
  stopped.process().signal(SIGSTOP);

  // Found lost within the node timeout (CAF checks on each heartbeat, so up
  // to one interval later).
  std::optional<wall_clock::time_point> lost;
  REQUIRE(test::poll_until(
    [&] {
      lost = lost_at(cluster.nodes(), victim);
      return lost.has_value();
    },
    node_timeout + 10s));
  CHECK(ms(*lost - stopped_at)
        <= ms(node_timeout + heartbeat_interval + slack));

  auto finished = cluster.await_jobs_ended(12, 60s);
  INFO("jobs: " << finished.dump(1));
  REQUIRE(finished.size() == 12);
  for (const auto& job : finished) {
    INFO("job " << job["id"]);
    CHECK(job["state"] == "succeeded");
    if (in_flight.count(job["id"].get<uint64_t>()) > 0) {
      CHECK(job["attempts"] == 2);
      CHECK(job["node"] != victim);
      // Queued again at once: it waited for a free device, no more.
      CHECK(ms(time_of(job, "started_at") - *lost) <= ms(job_duration + slack));
    }
  }

  stopped.process().signal(SIGCONT);
  INFO(victim << "'s stderr: " << stopped.process().stderr_text());
  CHECK(stopped.await_joins(2, node_timeout + rejoin_backoff_max + 5s));
  REQUIRE(cluster.await_devices(victim, 2, 10s));
  // Its old attempts' reports, sent when it woke up, changed nothing.
  auto after = cluster.jobs();
  CHECK(after == finished);
  // And it takes new jobs like any node.
  client.submit(timed_job(), 6);
  auto all = cluster.await_jobs_ended(18, 30s);
  INFO(all.dump(1));
  std::set<uint64_t> ids;
  for (const auto& job : all) {
    ids.insert(job["id"].get<uint64_t>());
    CHECK(job["state"] == "succeeded");
  }
  CHECK(ids.size() == 18);
}

TEST_CASE("a worker node cut off by a network partition has its jobs re-run "
          "elsewhere, and rejoins once the network heals",
          "[cluster][heartbeat]") {
  std::string why_not;
  auto ns = network_namespace::create(why_not);
  if (!ns) {
    WARN("SKIPPED: " << why_not);
    return;
  }
  require_heartbeat_flags();
  test_cluster cluster{heartbeat_flags};
  cluster.start_head(0, 0, ns->host_address(), {"--lease-grace", "0s"});
  auto& inside = cluster.add_worker("cut", ns->wrapper());
  cluster.add_worker("w1");
  REQUIRE(cluster.await_devices("", 4, 30s));
  caf_client client{cluster.head->port(), true};
  client.submit(timed_job(), 8);
  auto in_flight = cluster.await_running_on("cut", 2, 30s);
  auto cut_at = wall_clock::now();
  REQUIRE(ns->cut());

  std::optional<wall_clock::time_point> lost;
  REQUIRE(test::poll_until(
    [&] {
      lost = lost_at(cluster.nodes(), "cut");
      return lost.has_value();
    },
    node_timeout + 10s));
  CHECK(ms(*lost - cut_at) <= ms(node_timeout + heartbeat_interval + slack));
  auto finished = cluster.await_jobs_ended(8, 60s);
  INFO("jobs: " << finished.dump(1));
  for (const auto& job : finished) {
    INFO("job " << job["id"]);
    CHECK(job["state"] == "succeeded");
    if (in_flight.count(job["id"].get<uint64_t>()) > 0) {
      CHECK(job["attempts"] == 2);
      CHECK(job["node"] == "w1");
      CHECK(ms(time_of(job, "started_at") - *lost) <= ms(job_duration + slack));
    }
  }

  REQUIRE(ns->heal());
  INFO("the cut-off node's stderr: " << inside.process().stderr_text());
  // It tries again at most every 5 s; a try that began during the cut may
  // take the connect timeout to fail first.
  CHECK(inside.await_joins(2, rejoin_backoff_max + 10s + 5s));
  REQUIRE(cluster.await_devices("cut", 2, 10s));
  CHECK(cluster.jobs() == finished);
  client.submit(timed_job(), 4);
  auto all = cluster.await_jobs_ended(12, 30s);
  for (const auto& job : all)
    CHECK(job["state"] == "succeeded");
}

TEST_CASE("a killed worker node is shown as lost, with when and why, until "
          "--lost-node-ttl has passed, started again under its name it joins "
          "as new",
          "[cluster]") {
  constexpr auto ttl = 2s;
  test_cluster cluster;
  cluster.start_head(0, 0, "127.0.0.1", {"--lost-node-ttl", "2s"});
  cluster.add_worker("w1");
  cluster.add_worker("w2");
  REQUIRE(cluster.await_devices("", 4, 30s));
  auto killed_at = wall_clock::now();
  cluster.worker("w2").process().signal(SIGKILL);

  json nodes;
  REQUIRE(test::poll_until(
    [&] {
      nodes = cluster.nodes();
      return test::count_devices(nodes, "w2", {"lost"}) == 2;
    },
    10s));
  INFO(nodes.dump(1));
  CHECK(test::count_devices(nodes, "w1", {"idle"}) == 2);
  auto lost = lost_at(nodes, "w2");
  REQUIRE(lost);
  CHECK(ms(*lost - killed_at) <= ms(node_timeout));
  for (const auto& device : nodes)
    if (device["node"] == "w2")
      CHECK_THAT(device["last_error"].get<std::string>(),
                 Catch::Contains("connection closed"));
  // Forgotten once the TTL has passed (the head checks on a timer).
  REQUIRE(test::poll_until(
    [&] {
      nodes = cluster.nodes();
      return test::count_devices(nodes, "w2", {"lost", "idle", "busy"}) == 0;
    },
    ttl + 10s));
  CHECK(ms(wall_clock::now() - *lost) >= ms(ttl));
  CHECK(nodes.size() == 2);

  // Under the same name again: a new registration, with fresh devices.
  auto& again = cluster.add_worker("w2");
  REQUIRE(again.await_joins(1, 30s));
  REQUIRE(cluster.await_devices("w2", 2, 10s));
  nodes = cluster.nodes();
  CHECK(nodes.size() == 4);
  CHECK(test::count_devices(nodes, "", {"lost"}) == 0);
}

// -- refusals -----------------------------------------------------------------

TEST_CASE("a second worker node under a name that is up exits 2 within a "
          "second of trying to join, naming the name, and the first keeps "
          "its devices",
          "[cluster]") {
  test_cluster cluster;
  cluster.start_head();
  auto& first = cluster.add_worker("twin");
  REQUIRE(first.await_joins(1, 30s));
  REQUIRE(cluster.await_devices("twin", 2, 10s));
  auto before = device_shapes(cluster.nodes());

  // Counted from its log line "worker node twin serving ...; joining":
  // before it, the process loads its libraries (libtorch: about 2 s on a
  // loaded two-core machine), which says nothing about the refusal.
  auto& second = cluster.add_worker("twin", {}, "", "info");
  auto status = second.process().wait(30s);
  auto exited_at = wall_clock::now();
  INFO(second.process().stderr_text());
  REQUIRE(status);
  CHECK(*status == 2);
  auto joining_at =
    test::logged_at(second.process().stderr_text(), "worker node twin serving");
  REQUIRE(joining_at);
  CHECK(ms(exited_at - *joining_at) < 1000);
  CHECK_THAT(second.process().stderr_text(),
             Catch::Contains("twin") && Catch::Contains("--join"));
  CHECK(second.joins() == 0);

  CHECK(device_shapes(cluster.nodes()) == before);
  CHECK(first.joins() == 1);
  auto job = cluster.head->vidctl_json(
    {"submit", "--steps", "1", "--option", "load_ms=0", "--wait"});
  CHECK(job["state"] == "succeeded");
  CHECK(job["node"] == "twin");
}

TEST_CASE("a worker node pointed at the head's client port exits 2 saying "
          "it is not a cluster port",
          "[cluster]") {
  test_cluster cluster;
  cluster.start_head();
  auto& wrong = cluster.add_worker("lost-soul", {}, cluster.head->address());
  auto status = wrong.process().wait(10s);
  INFO(wrong.process().stderr_text());
  REQUIRE(status);
  CHECK(*status == 2);
  CHECK_THAT(wrong.process().stderr_text(),
             Catch::Contains("not a vidnode cluster port"));
  CHECK(cluster.nodes().empty());
}

TEST_CASE("garbage from raw TCP peers on the cluster port and on the client "
          "port changes nothing: the head keeps serving its nodes and "
          "clients",
          "[cluster]") {
  test_cluster cluster;
  cluster.start_head();
  auto& w1 = cluster.add_worker("w1");
  REQUIRE(w1.await_joins(1, 30s));
  REQUIRE(cluster.await_devices("w1", 2, 10s));
  auto before = device_shapes(cluster.nodes());

  std::vector<uint8_t> garbage(4096);
  for (size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<uint8_t>((i * 131 + 7) % 251);
  // A BASP header announcing a handshake with a payload that never comes.
  std::vector<uint8_t> half_handshake(32, 0);
  half_handshake[0] = 1;
  half_handshake[7] = 200;
  for (auto port : {cluster.head->cluster_port(), cluster.head->port()}) {
    INFO("port " << port);
    {
      test::raw_connection peer{port};
      peer.send(garbage);
      CHECK(peer.closed_by_peer());
    }
    {
      test::raw_connection peer{port};
      peer.send(half_handshake);
    }
    {
      // Connects and says nothing, then goes.
      test::raw_connection peer{port};
    }
  }

  CHECK(device_shapes(cluster.nodes()) == before);
  CHECK(w1.joins() == 1);
  auto job = cluster.head->vidctl_json(
    {"submit", "--steps", "2", "--option", "load_ms=0", "--wait"});
  CHECK(job["state"] == "succeeded");
  CHECK(job["node"] == "w1");
  CHECK(w1.joins() == 1);
}

TEST_CASE("a client that sends node messages through the gateway, or "
          "connects to the cluster port, is refused and changes nothing",
          "[cluster]") {
  using namespace runtime;
  test_cluster cluster;
  cluster.start_head();
  auto& w1 = cluster.add_worker("w1");
  REQUIRE(w1.await_joins(1, 30s));
  REQUIRE(cluster.await_devices("w1", 2, 10s));
  auto nodes_before = device_shapes(cluster.nodes());
  caf_client client{cluster.head->port()};
  auto& sys = client.system();
  // A job runs while the client tries its luck.
  auto running = client.submit(timed_job(), 1).front();
  REQUIRE(test::poll_until(
    [&] {
      auto jobs = cluster.jobs();
      return !jobs.empty() && jobs[0]["state"] == "running";
    },
    10s));

  auto gateway = caf::actor_cast<caf::actor>(client.admission());
  // Stand-ins for a supervisor and a device worker of the client's own;
  // ended however the test ends, or the client's actor system would wait
  // for it forever.
  auto impostor = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](caf::message&) {}};
  });
  std::shared_ptr<void> end_impostor{
    nullptr, [impostor](void*) {
      caf::anon_send_exit(impostor, caf::exit_reason::user_shutdown);
    }};
  actors::node_registration reg;
  reg.name = "intruder";
  reg.protocol = protocol_version;
  reg.supervisor = caf::actor_cast<actors::node_supervisor_actor>(impostor);
  reg.devices.push_back(device_info{0, device_kind::sim, 0, 80ull << 30});
  {
    caf::scoped_actor self{sys};
    // What admission would answer if the gateway passed them on.
    bool answered = false;
    auto error = [&](caf::error&) {};
    self->request(gateway, caf::duration{5s}, actors::join_atom::value, reg)
      .receive([&](actors::join_answer&) { answered = true; }, error);
    self
      ->request(gateway, caf::duration{5s}, actors::detach_atom::value,
                int32_t{0}, caf::error{})
      .receive([&](bool) { answered = true; }, error);
    self->request(gateway, caf::duration{5s}, actors::shutdown_atom::value)
      .receive([&](caf::ok_atom) { answered = true; }, error);
    CHECK_FALSE(answered);
    // Reports no one asks an answer for: a worker attaching, and forged
    // ends of the running job under every lease it might have.
    self->send(gateway, actors::attach_atom::value, reg.devices[0],
               caf::actor_cast<actors::device_worker_actor>(impostor),
               int32_t{0}, std::vector<std::string>{}, uint64_t{0});
    for (uint64_t lease = 0; lease < 16; ++lease) {
      self->send(gateway, actors::done_atom::value, job_id{running}, lease,
                 actors::finished_job{"forged", 0, {}});
      self->send(gateway, actors::failed_atom::value, job_id{running}, lease,
                 make_error(errc::out_of_memory, "forged"), uint64_t{0});
    }
    self->send_exit(gateway, caf::exit_reason::user_shutdown);
  }
  // The cluster port speaks only to nodes: vidctl and a typed client are
  // refused, and client requests to it go unanswered.
  auto on_cluster_port = test::run_command({programs.vidctl, "--connect",
                                            cluster.head->cluster_address(),
                                            "--timeout", "5s", "nodes"});
  CHECK(on_cluster_port.status != 0);
  CHECK_THAT(on_cluster_port.err,
             Catch::Contains("does not speak this version"));
  CHECK_FALSE(sys.middleman().remote_actor<admission_actor>(
    "127.0.0.1", cluster.head->cluster_port()));
  CHECK_FALSE(
    sys.middleman().remote_actor("127.0.0.1", cluster.head->cluster_port()));
  auto registry = sys.middleman().remote_actor<actors::cluster_registry_actor>(
    "127.0.0.1", cluster.head->cluster_port());
  REQUIRE(registry);
  {
    caf::scoped_actor self{sys};
    auto untyped = caf::actor_cast<caf::actor>(*registry);
    bool answered = false;
    self->request(untyped, caf::duration{5s}, submit_atom::value, timed_job())
      .receive([&](job_id) { answered = true; }, [&](caf::error&) {});
    CHECK_FALSE(answered);
    self->request(untyped, caf::duration{5s}, nodes_atom::value)
      .receive([&](std::vector<device_status>&) { answered = true; },
               [&](caf::error&) {});
    CHECK_FALSE(answered);
  }

  // The job ran to its end on its device, once.
  auto jobs = cluster.await_jobs_ended(1, 30s);
  INFO(jobs.dump(1));
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0]["state"] == "succeeded");
  CHECK(jobs[0]["attempts"] == 1);
  CHECK(jobs[0]["output"] != "forged");
  CHECK(device_shapes(cluster.nodes()) == nodes_before);
  CHECK(w1.joins() == 1);
  auto after = cluster.head->vidctl_json(
    {"submit", "--steps", "1", "--option", "load_ms=0", "--wait"});
  CHECK(after["state"] == "succeeded");
}
