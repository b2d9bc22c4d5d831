/// @file
/// Remote dispatch latency: the zero-work job round trip of bench_dispatch,
/// over loopback TCP between two actor systems in one process, against a
/// bare echo actor published and requested the same way in the same run.
///
/// Per scheduler configuration (applied to both systems), sequential round
/// trips from a scoped_actor and from an event-based client actor in the
/// client system; the ratio divides the node's fastest p50 by the echo's
/// fastest p50 (target: at most 2x). As in bench_dispatch, configurations
/// run in interleaved rounds, each with fresh systems, and samples are
/// pooled.
///
/// Teardown follows CAF.md: every client ends, both actors are unpublished,
/// the node stops and the echo actor is killed before the systems are
/// destroyed; a watchdog bounds the rest.
///
/// Usage: bench_remote [SCALE] (or VIDNODE_BENCH_SCALE): multiplies the
/// iteration counts.

#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/net/server.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"

#include "measurement.hpp"
#include "node_readiness.hpp"
#include "round_trips.hpp"
#include "workloads.hpp"

namespace vidnode::bench {
namespace {

constexpr double target_ratio = 2.0;
constexpr const char* loopback = "127.0.0.1";
constexpr size_t rounds = 3;

/// A config for either side: vidnode's types, the middleman, the scheduler.
class remote_config : public caf::actor_system_config {
public:
  explicit remote_config(const scheduler_choice& choice) {
    load<caf::io::middleman>();
    actors::add_types(*this);
    choice.apply(*this);
  }
};

/// The raw round trips of one configuration, pooled over rounds.
struct remote_samples {
  std::vector<int64_t> bare_scoped;
  std::vector<int64_t> bare_actor;
  std::vector<int64_t> node_scoped;
  std::vector<int64_t> node_actor;
};

/// The figures of one configuration.
using remote_outcome = latency_comparison;

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_remote: " << what << " failed: " << why << '\n';
  std::cout.flush();
  std::quick_exit(1);
}

void append(std::vector<int64_t>& into, round_trip_samples samples,
            const std::string& what) {
  if (!samples.failure.empty())
    fail(what, samples.failure);
  into.insert(into.end(), samples.nanos.begin(), samples.nanos.end());
}

/// Everything measured so far: the figures of every configuration with
/// samples, in the order of `choices`.
std::vector<remote_outcome>
figures_of(const std::vector<scheduler_choice>& choices,
           std::vector<remote_samples> samples) {
  std::vector<remote_outcome> result;
  for (size_t i = 0; i < choices.size(); ++i) {
    auto& x = samples[i];
    if (x.node_actor.empty())
      continue;
    result.push_back({choices[i].name, summarize(x.bare_scoped),
                      summarize(x.bare_actor), summarize(x.node_scoped),
                      summarize(x.node_actor)});
  }
  return result;
}

void print(const std::vector<remote_outcome>& outcomes, size_t measured,
           size_t warmup) {
  std::cout << "## bench_remote\n\n";
  print_latency_table(
    outcomes, target_ratio,
    "Remote dispatch latency over loopback TCP: zero-work sim job vs "
    "published echo ("
      + grouped(static_cast<double>(measured))
      + " sequential round trips per row, in " + std::to_string(rounds)
      + " rounds after " + grouped(static_cast<double>(warmup))
      + " warm-up each)");
}

void record(const std::vector<remote_outcome>& outcomes) {
  for (const auto& x : outcomes)
    record_summary({"remote p50, " + x.scheduler, fixed(x.node_p50()) + " us",
                    fixed(x.bare_p50()) + " us (echo)",
                    fixed(x.ratio(), 2) + "x", "<= 2x",
                    x.ratio() <= target_ratio});
}

/// Runs one round of `choice` in a fresh pair of actor systems and adds its
/// samples to `into`. `report` prints what was measured so far; the
/// teardown watchdog calls it if the systems do not shut down.
void measure(const scheduler_choice& choice, round_trip_counts counts,
             remote_samples& into, const std::function<void()>& report) {
  teardown_watchdog watchdog{report};
  remote_config server_cfg{choice};
  remote_config client_cfg{choice};
  caf::actor_system server{server_cfg};
  caf::actor_system client{client_cfg};
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.devices = "sim:1";
  auto node = actors::local_node::start(server, settings);
  if (!node)
    fail("starting the node", server.render(node.error()));
  if (!await_devices(server, (*node)->admission(), 1))
    fail("starting the node", "devices did not attach");
  auto echo_actor = server.spawn(echo);
  auto& server_mm = server.middleman();
  // Published as vidnode publishes it: behind its gateway.
  auto gateway = net::server::start(server, (*node)->admission(), loopback, 0);
  auto echo_port = server_mm.publish(echo_actor, 0, loopback);
  if (!gateway || !echo_port)
    fail("publishing",
         server.render(gateway ? echo_port.error() : gateway.error()));
  auto node_port = (*gateway)->port();
  {
    // Every handle to the other system and every client ends in this
    // scope, before the teardown.
    auto& client_mm = client.middleman();
    auto remote_node =
      client_mm.remote_actor<runtime::admission_actor>(loopback, node_port);
    auto remote_echo = client_mm.remote_actor(loopback, *echo_port);
    if (!remote_node || !remote_echo)
      fail("connecting", client.render(remote_node ? remote_echo.error()
                                                   : remote_node.error()));
    auto job = zero_work_job();
    auto execute = runtime::execute_atom::value;
    append(into.bare_scoped,
           scoped_round_trips<int32_t>(client, *remote_echo, counts,
                                       accept_echo, int32_t{1}),
           "bare remote round trips (scoped_actor)");
    append(into.node_scoped,
           scoped_round_trips<runtime::job_result>(
             client, *remote_node, counts, accept_succeeded, execute, job),
           "node remote round trips (scoped_actor)");
    append(into.bare_actor,
           actor_round_trips<int32_t>(client, *remote_echo, counts, accept_echo,
                                      int32_t{1}),
           "bare remote round trips (client actor)");
    append(into.node_actor,
           actor_round_trips<runtime::job_result>(
             client, *remote_node, counts, accept_succeeded, execute, job),
           "node remote round trips (client actor)");
  }
  watchdog.arm(std::chrono::seconds{15});
  server_mm.unpublish(echo_actor, *echo_port);
  if (auto err = (*node)->stop())
    fail("stopping the node", server.render(err));
  (*gateway)->stop();
  caf::anon_send_exit(echo_actor, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  auto factor = scale(argc, argv);
  // Per round: 1,000 round trips per row.
  round_trip_counts counts{scaled(200, factor), scaled(1000, factor, 100)};
  auto choices = scheduler_choices();
  std::vector<remote_samples> samples(choices.size());
  auto report = [&] {
    auto outcomes = figures_of(choices, samples);
    print(outcomes, counts.measured * rounds, counts.warmup);
    record(outcomes);
  };
  for (size_t round = 0; round < rounds; ++round)
    for (size_t i = 0; i < choices.size(); ++i)
      measure(choices[i], counts, samples[i], report);
  report();
  return 0;
}
