/// A cluster under mutual TLS, as real processes on 127.0.0.1: a head
/// (`--devices none`), worker nodes of two sim devices each and vidctl, with
/// certificates of one cluster CA made at test time by scripts/make-certs.sh
/// (support/certificates.hpp). Worker nodes whose TLS does not match the
/// head's, in every way, must exit 2 within seconds saying why; one that
/// finds nothing listening must keep trying (join_options, cluster.hpp). No
/// test sleeps: each reads the processes' output or polls vidctl up to a
/// deadline. Processes are killed and reaped, and temporary directories
/// removed, when a test ends, also when it fails.

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/certificates.hpp"
#include "support/cluster_process.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::certificates;
using test::head_process;
using test::worker_process;
using strings = std::vector<std::string>;
using wall_clock = std::chrono::system_clock;
using steady_clock = std::chrono::steady_clock;

namespace {

const test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};

strings operator+(strings a, const strings& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

long long ms(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// Jobs of half a second (10 steps of 50 ms, no model load).
const strings short_job = {"submit",     "--steps",  "10",       "--option",
                           "step_ms=50", "--option", "load_ms=0"};

/// What a worker node says when it gives up after its connections were
/// closed during the handshake (join_options::handshake_failure_limit, 3 by
/// default), after "the connection to the head at HOST:PORT".
const std::string cut_three_times =
  "was closed during the handshake 3 times in a row: TLS is on at one end "
  "only, or one end does not trust the other's certificate";

/// A head and worker nodes sharing a certificate directory (a CA, and
/// certificates for the head, w1, w2 and a client) and an output directory.
class tls_cluster {
  // First, so destroyed last: the processes are gone before their files.
  certificates certs_{
    {"--node", "head", "--node", "w1", "--node", "w2", "--client", "client"}};
  test::temp_directory outputs_{"vidnode-tls-cluster-test"};

public:
  const certificates& certs() const noexcept {
    return certs_;
  }

  /// Starts a head (again, if one ran: the old one must have exited), with
  /// the head's certificate unless `tls` is false; vidctl then gets the
  /// client's certificate or none.
  head_process& start_head(bool tls = true, uint16_t port = 0,
                           uint16_t cluster_port = 0) {
    head_process::options opts;
    opts.port = port;
    opts.cluster_port = cluster_port;
    opts.args = {"--output-dir", outputs_.path(), "--node-name", "head"};
    if (tls) {
      opts.args = opts.args + certs_.flags("head");
      opts.vidctl_args = certs_.flags("client");
    }
    head.reset();
    head = std::make_unique<head_process>(programs, opts);
    return *head;
  }

  /// Starts worker node `name` (two sim devices) with vidnode arguments
  /// `tls`, joining `join` (the head's cluster port if empty).
  worker_process& add_worker(const std::string& name, const strings& tls,
                             const std::string& join = "",
                             const std::string& log_level = "warn") {
    worker_process::options opts;
    opts.join = join.empty() ? head->cluster_address() : join;
    opts.name = name;
    opts.devices = "sim:2";
    opts.log_level = log_level;
    opts.args = strings{"--output-dir", outputs_.path()} + tls;
    workers.push_back(std::make_unique<worker_process>(programs, opts));
    return *workers.back();
  }

  json nodes() {
    for (auto& w : workers)
      w->pump();
    return head->vidctl_json({"nodes"});
  }

  json jobs() {
    for (auto& w : workers)
      w->pump();
    return head->vidctl_json({"list", "--limit", "0"});
  }

  /// Waits until worker nodes' devices are idle or busy: `count` in all.
  bool await_devices(size_t count, std::chrono::milliseconds timeout) {
    return test::poll_until(
      [&] {
        return test::count_devices(nodes(), "", {"idle", "busy"}) == count;
      },
      timeout);
  }

  std::unique_ptr<head_process> head;
  std::vector<std::unique_ptr<worker_process>> workers;
};

/// The line of `log` that starts with `prefix`, or "".
std::string line_starting(const std::string& log, const std::string& prefix) {
  std::istringstream lines{log};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(prefix, 0) == 0)
      return line;
  return {};
}

/// Checks that worker node `w` (started with --log-level info) exited with
/// status 2 within `limit` of its log line "worker node NAME serving ...;
/// joining", without having joined, saying on one line that the head at
/// `head` were closed during the handshake and what it itself runs (`with TLS`
/// or `without TLS`). Returns how long it took.
std::chrono::milliseconds check_gave_up(worker_process& w,
                                        const std::string& head,
                                        const std::string& runs,
                                        std::chrono::milliseconds limit) {
  auto status = w.process().wait(30s);
  auto exited_at = wall_clock::now();
  auto log = w.process().stderr_text();
  INFO(w.name() << "'s stderr:\n" << log);
  REQUIRE(status);
  CHECK(*status == 2);
  CHECK(w.joins() == 0);
  auto message = line_starting(log, "vidnode: --join: ");
  CHECK_THAT(message, Catch::Contains("the connection to the head at " + head
                                      + " " + cut_three_times)
                        && Catch::Contains("this node runs " + runs)
                        && Catch::Contains("--tls-cert, --tls-key and "
                                           "--tls-ca"));
  auto joining = test::logged_at(log, "worker node " + w.name() + " serving");
  REQUIRE(joining);
  auto took =
    std::chrono::duration_cast<std::chrono::milliseconds>(exited_at - *joining);
  CHECK(took < limit);
  return took;
}

} // namespace

TEST_CASE("a TLS cluster of a head, two worker nodes and vidctl runs jobs "
          "on both nodes, refuses nodes and clients without the cluster's "
          "certificates and keeps serving",
          "[cluster][tls]") {
  tls_cluster cluster;
  auto& head = cluster.start_head();
  auto& w1 = cluster.add_worker("w1", cluster.certs().flags("w1"));
  auto& w2 = cluster.add_worker("w2", cluster.certs().flags("w2"));
  REQUIRE(w1.await_joins(1, 30s));
  REQUIRE(w2.await_joins(1, 30s));
  REQUIRE(cluster.await_devices(4, 30s));

  std::set<uint64_t> submitted;
  for (int i = 0; i < 12; ++i)
    submitted.insert(head.vidctl_json(short_job)["id"].get<uint64_t>());
  REQUIRE(submitted.size() == 12);
  json jobs;
  auto ended = test::poll_until(
    [&] {
      jobs = cluster.jobs();
      return jobs.size() == 12
             && std::all_of(jobs.begin(), jobs.end(), [](const json& job) {
                  return job["state"] != "queued" && job["state"] != "running";
                });
    },
    60s);
  INFO(jobs.dump(1));
  REQUIRE(ended);
  std::set<std::string> ran_on;
  for (const auto& job : jobs) {
    CHECK(job["state"] == "succeeded");
    CHECK(submitted.count(job["id"].get<uint64_t>()) == 1);
    ran_on.insert(job["node"].get<std::string>());
  }
  CHECK(ran_on == std::set<std::string>{"w1", "w2"});
  // Each node's devices show the sim model loaded for the jobs they ran.
  std::set<std::string> loaded_on;
  for (const auto& device : cluster.nodes())
    for (const auto& model : device["models"])
      if (model["model"] == "sim" && model["loads"].get<int>() > 0)
        loaded_on.insert(device["node"].get<std::string>());
  CHECK(loaded_on == std::set<std::string>{"w1", "w2"});

  // Worker nodes that cannot complete the handshake: another CA's
  // certificate (refused by the head's CA, and refusing the head's), the
  // same trusting both CAs (refused by the head alone), and none. Started
  // at once; each is timed from its own first try.
  certificates other{{"--node", "w3"}};
  auto trusting_both = other.flags_trusting_also("w3", cluster.certs());
  auto& other_ca =
    cluster.add_worker("other-ca", other.flags("w3"), "", "info");
  auto& trusts_us = cluster.add_worker("trusts-us", trusting_both, "", "info");
  auto& plain = cluster.add_worker("plain", {}, "", "info");
  for (auto* w : {&other_ca, &trusts_us})
    WARN(w->name()
         << " gave up in "
         << check_gave_up(*w, head.cluster_address(), "with TLS", 3s).count()
         << " ms");
  WARN(
    "plain gave up in "
    << check_gave_up(plain, head.cluster_address(), "without TLS", 3s).count()
    << " ms");

  auto started = steady_clock::now();
  auto plain_vidctl = test::run_command(
    {VIDCTL_BIN, "--connect", head.address(), "--timeout", "30s", "nodes"});
  INFO(plain_vidctl.err);
  CHECK(plain_vidctl.status == 3);
  CHECK_THAT(plain_vidctl.err, Catch::Contains("closed during the handshake"));
  CHECK(steady_clock::now() - started < 3s);

  auto nodes = cluster.nodes();
  INFO(nodes.dump(1));
  CHECK(nodes.size() == 4);
  CHECK(test::count_devices(nodes, "w1", {"idle"}) == 2);
  CHECK(test::count_devices(nodes, "w2", {"idle"}) == 2);
  auto after = head.vidctl_json(short_job + strings{"--wait"});
  CHECK(after["state"] == "succeeded");
  CHECK((after["node"] == "w1" || after["node"] == "w2"));
  CHECK(w1.joins() == 1);
  CHECK(w2.joins() == 1);
}

TEST_CASE("a TLS worker node pointed at a plain head exits 2 within seconds "
          "saying why, and the head keeps serving",
          "[cluster][tls]") {
  tls_cluster cluster;
  auto& head = cluster.start_head(false);
  auto& w1 = cluster.add_worker("w1", cluster.certs().flags("w1"), "", "info");
  auto took = check_gave_up(w1, head.cluster_address(), "with TLS", 3s);
  WARN("gave up in " << took.count() << " ms");
  CHECK(cluster.nodes().empty());
}

TEST_CASE("a TLS worker node keeps trying while nothing listens, joins its "
          "head once it is up, and gives up with exit 2 when the head comes "
          "back without TLS",
          "[cluster][tls]") {
  auto ports = test::free_loopback_ports(2);
  auto cluster_address = "127.0.0.1:" + std::to_string(ports[1]);
  tls_cluster cluster;
  auto& w1 =
    cluster.add_worker("w1", cluster.certs().flags("w1"), cluster_address);
  // Nothing listens: the node retries (100 ms, then doubling), saying why.
  auto refused = [&] {
    auto log = w1.process().stderr_text();
    size_t n = 0;
    for (auto at = log.find("Connection refused"); at != std::string::npos;
         at = log.find("Connection refused", at + 1))
      ++n;
    return n;
  };
  REQUIRE(test::poll_until([&] { return refused() >= 4; }, 30s,
                           [&] { w1.process().poll_output(500ms); }));
  REQUIRE_FALSE(w1.process().wait(0ms));

  cluster.start_head(true, ports[0], ports[1]);
  // The delay then running is at most 1.6 s (the fifth), plus the head's
  // own start-up.
  REQUIRE(w1.await_joins(1, 10s));
  REQUIRE(cluster.await_devices(2, 10s));

  auto status = cluster.head->stop(30s);
  REQUIRE(status);
  CHECK(*status == 0);
  auto& plain_head = cluster.start_head(false, ports[0], ports[1]);
  auto plain_up = steady_clock::now();
  // Three cut handshakes, the backoff up to 5 s before each.
  auto exit = w1.process().wait(20s);
  auto took = steady_clock::now() - plain_up;
  auto log = w1.process().stderr_text();
  INFO("w1's stderr:\n" << log);
  REQUIRE(exit);
  CHECK(*exit == 2);
  CHECK(w1.joins() == 1);
  CHECK_THAT(line_starting(log, "vidnode: --join: "),
             Catch::Contains("the connection to the head at " + cluster_address
                             + " " + cut_three_times)
               && Catch::Contains("this node runs with TLS"));
  CHECK_THAT(log, Catch::Contains("lost the head at " + cluster_address));
  WARN("gave up " << ms(took) << " ms after the plain head was up");
  CHECK(plain_head.vidctl({"nodes"}).status == 0);
}
