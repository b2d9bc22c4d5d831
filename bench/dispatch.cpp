/// @file
/// Dispatch latency and throughput of one node, against bare CAF.
///
/// For each scheduler configuration (measurement.hpp), in a fresh
/// actor_system:
/// - latency: sequential round trips of a zero-work sim job
///   (`execute, spec -> result`: accepted, queued, placed, run on a pooled
///   sim worker, finished, answered) against sequential round trips to a
///   pooled echo actor, each from a scoped_actor and from an event-based
///   client actor; the ratio judged divides the node's fastest p50 by the
///   fastest bare p50 of the same configuration (target: at most 4x); the
///   ratio to the bare round trip of the same kind of client is shown
///   beside it;
/// - throughput: zero-work jobs pipelined from several client actors through
///   the admission actor with its full bookkeeping (records, deadlines,
///   result retention), against the same clients pipelining to the echo
///   actor (target: at least 100,000 jobs/s).
///
/// The configurations are measured in interleaved rounds (each round starts
/// a fresh system per configuration) and the samples of all rounds pooled,
/// so that a burst of load from elsewhere on the machine does not land on
/// one configuration only.
///
/// Usage: bench_dispatch [SCALE] (or VIDNODE_BENCH_SCALE): multiplies the
/// iteration counts.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"

#include "measurement.hpp"
#include "node_readiness.hpp"
#include "round_trips.hpp"
#include "workloads.hpp"

namespace vidnode::bench {
namespace {

constexpr double latency_target_ratio = 4.0;
constexpr double throughput_target = 100000.0;
constexpr size_t rounds = 3;

/// The node every configuration runs: 4 sim devices with 8 slots each, a
/// queue that never refuses, and the default result retention (10,000
/// results for an hour), so finished records are expired as jobs go.
runtime::node_settings node_config() {
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.devices = "sim:4";
  settings.max_concurrency = 8;
  settings.queue_size = 1u << 20;
  return settings;
}

/// The raw measurements of one configuration, pooled over rounds.
struct configuration_samples {
  std::vector<int64_t> bare_scoped;
  std::vector<int64_t> bare_actor;
  std::vector<int64_t> node_scoped;
  std::vector<int64_t> node_actor;
  pipeline_outcome bare_pipeline;
  pipeline_outcome node_pipeline;
};

/// The figures of one configuration.
struct configuration_outcome : latency_comparison {
  pipeline_outcome bare_pipeline;
  pipeline_outcome node_pipeline;
};

/// Fails the benchmark with `why` (a benchmark that measured something
/// broken must not print a figure).
[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_dispatch: " << what << " failed: " << why << '\n';
  std::exit(1);
}

void append(std::vector<int64_t>& into, round_trip_samples samples,
            const std::string& what) {
  if (!samples.failure.empty())
    fail(what, samples.failure);
  into.insert(into.end(), samples.nanos.begin(), samples.nanos.end());
}

void append(pipeline_outcome& into, const pipeline_outcome& outcome,
            const std::string& what) {
  if (!outcome.failure.empty())
    fail(what, outcome.failure);
  into.merge(outcome);
}

/// Runs one round of `choice` in a fresh actor_system and adds its samples.
void measure(const scheduler_choice& choice, round_trip_counts counts,
             pipeline_shape shape, configuration_samples& into) {
  caf::actor_system_config cfg;
  actors::add_types(cfg);
  choice.apply(cfg);
  caf::actor_system sys{cfg};
  auto node = actors::local_node::start(sys, node_config());
  if (!node)
    fail("starting the node", sys.render(node.error()));
  auto admission = (*node)->admission();
  if (!await_devices(sys, admission, (*node)->devices().size()))
    fail("starting the node", "devices did not attach");
  auto echo_actor = sys.spawn(echo);
  auto job = zero_work_job();
  auto execute = runtime::execute_atom::value;
  append(into.bare_scoped,
         scoped_round_trips<int32_t>(sys, echo_actor, counts, accept_echo,
                                     int32_t{1}),
         "bare round trips (scoped_actor)");
  append(into.node_scoped,
         scoped_round_trips<runtime::job_result>(
           sys, admission, counts, accept_succeeded, execute, job),
         "node round trips (scoped_actor)");
  append(into.bare_actor,
         actor_round_trips<int32_t>(sys, echo_actor, counts, accept_echo,
                                    int32_t{1}),
         "bare round trips (client actor)");
  append(into.node_actor,
         actor_round_trips<runtime::job_result>(sys, admission, counts,
                                                accept_succeeded, execute, job),
         "node round trips (client actor)");
  append(into.bare_pipeline,
         pipelined_requests<int32_t>(sys, echo_actor, shape, accept_echo,
                                     int32_t{1}),
         "bare pipelined requests");
  append(into.node_pipeline,
         pipelined_requests<runtime::job_result>(
           sys, admission, shape, accept_succeeded, execute, job),
         "node pipelined jobs");
  if (auto err = (*node)->stop())
    fail("stopping the node", sys.render(err));
  caf::anon_send_exit(echo_actor, caf::exit_reason::user_shutdown);
}

configuration_outcome figures_of(const std::string& scheduler,
                                 configuration_samples& samples) {
  configuration_outcome out;
  out.scheduler = scheduler;
  out.bare_scoped = summarize(samples.bare_scoped);
  out.bare_actor = summarize(samples.bare_actor);
  out.node_scoped = summarize(samples.node_scoped);
  out.node_actor = summarize(samples.node_actor);
  out.bare_pipeline = samples.bare_pipeline;
  out.node_pipeline = samples.node_pipeline;
  return out;
}

void print_latency(const std::vector<configuration_outcome>& outcomes,
                   size_t measured, size_t warmup) {
  print_latency_table(outcomes, latency_target_ratio,
                      "Dispatch latency: zero-work sim job vs bare CAF echo ("
                        + grouped(static_cast<double>(measured))
                        + " sequential round trips per row, in "
                        + std::to_string(rounds) + " rounds after "
                        + grouped(static_cast<double>(warmup))
                        + " warm-up each)");
}

void print_throughput(const std::vector<configuration_outcome>& outcomes,
                      pipeline_shape shape) {
  markdown_table table{{"scheduler", "bare echo req/s", "vidnode jobs/s",
                        "vidnode / bare", "met? (>= 100,000 jobs/s)"}};
  for (const auto& x : outcomes) {
    auto node_rate = x.node_pipeline.rate();
    table.add({x.scheduler, grouped(x.bare_pipeline.rate()), grouped(node_rate),
               fixed(node_rate / x.bare_pipeline.rate(), 2) + "x",
               verdict(node_rate >= throughput_target)});
  }
  table.print("Dispatch throughput: "
              + grouped(static_cast<double>(shape.requests * rounds))
              + " zero-work jobs via execute per row, in "
              + std::to_string(rounds) + " rounds, from "
              + std::to_string(shape.clients) + " client actors with "
              + std::to_string(shape.window)
              + " outstanding each (node: sim:4, 8 slots per device)");
}

void record(const std::vector<configuration_outcome>& outcomes) {
  for (const auto& x : outcomes) {
    auto ratio = x.ratio();
    record_summary({"dispatch p50, " + x.scheduler, fixed(x.node_p50()) + " us",
                    fixed(x.bare_p50()) + " us", fixed(ratio, 2) + "x", "<= 4x",
                    ratio <= latency_target_ratio});
  }
  for (const auto& x : outcomes) {
    auto rate = x.node_pipeline.rate();
    record_summary({"dispatch throughput, " + x.scheduler,
                    grouped(rate) + " jobs/s",
                    grouped(x.bare_pipeline.rate()) + " req/s (echo)",
                    fixed(rate / x.bare_pipeline.rate(), 2) + "x",
                    ">= 100,000 jobs/s", rate >= throughput_target});
  }
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  auto factor = scale(argc, argv);
  // Per round: 7,000 round trips per row and 70,000 pipelined jobs.
  round_trip_counts counts{scaled(1000, factor), scaled(7000, factor, 100)};
  pipeline_shape shape{4, 64, scaled(70000, factor, 1000)};
  auto choices = scheduler_choices();
  std::vector<configuration_samples> samples(choices.size());
  for (size_t round = 0; round < rounds; ++round)
    for (size_t i = 0; i < choices.size(); ++i)
      measure(choices[i], counts, shape, samples[i]);
  std::vector<configuration_outcome> outcomes;
  for (size_t i = 0; i < choices.size(); ++i)
    outcomes.push_back(figures_of(choices[i].name, samples[i]));
  std::cout << "## bench_dispatch (" << hardware_threads()
            << " hardware threads)\n\n";
  print_latency(outcomes, counts.measured * rounds, counts.warmup);
  print_throughput(outcomes, shape);
  auto best = [&](const char* what, auto figure, bool lowest,
                  const char* unit) {
    auto x = std::min_element(
      outcomes.begin(), outcomes.end(), [&](const auto& x, const auto& y) {
        return lowest ? figure(x) < figure(y) : figure(x) > figure(y);
      });
    std::cout << "- " << what << ": " << x->scheduler << " ("
              << (lowest ? fixed(figure(*x)) : grouped(figure(*x))) << ' '
              << unit << ")\n";
  };
  std::cout << "Fastest configuration per figure:\n\n";
  best(
    "vidnode p50, any client", [](const auto& x) { return x.node_p50(); }, true,
    "us");
  best(
    "vidnode p50, scoped_actor client",
    [](const auto& x) { return x.node_scoped.p50_us; }, true, "us");
  best(
    "vidnode p50, event-based client",
    [](const auto& x) { return x.node_actor.p50_us; }, true, "us");
  best(
    "vidnode throughput", [](const auto& x) { return x.node_pipeline.rate(); },
    false, "jobs/s");
  std::cout << '\n';
  record(outcomes);
  return 0;
}
