/// @file
/// Saturation: how close a node keeps its devices to fully busy.
///
/// M jobs of a fixed duration (4 steps of 50 ms, no load) are submitted at
/// once to a node with N sim devices and one slot each. The ideal makespan
/// is M * duration / N. Reported per scheduler configuration:
/// - makespan / ideal, the makespan running from the first job's acceptance
///   to the last job's end as the admission actor recorded them
///   (target: at most 1.02);
/// - the idle gap between consecutive jobs of a device, from the results'
///   timestamps: next.started_at - prev.finished_at (target: under 1 ms).
///   Both timestamps are taken by the admission actor, so the gap is the
///   admission's own turnaround; the hops to and from the worker show up in
///   the run overhead instead (run_time beyond the nominal duration);
/// - the CPU time the whole process used while the jobs ran, as a share of
///   one core: what the scheduler costs while devices compute (sim jobs do
///   no work, so it is all overhead).
///
/// Usage: bench_saturation [SCALE] (or VIDNODE_BENCH_SCALE): multiplies the
/// number of jobs (rounded to a multiple of the device count, at least one
/// per device).

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"

#include "measurement.hpp"
#include "node_readiness.hpp"

namespace vidnode::bench {
namespace {

/// User plus system CPU time of the whole process so far, in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

constexpr int32_t devices = 4;
constexpr int32_t steps = 4;
constexpr int32_t step_ms = 50;
constexpr double makespan_target = 1.02;
constexpr double gap_target_us = 1000.0;

/// What one configuration measured.
struct saturation_outcome {
  std::string scheduler;
  size_t jobs = 0;
  double ideal_ms = 0;
  double makespan_ms = 0;
  double gap_mean_us = 0;
  double gap_max_us = 0;
  /// Mean run_time beyond the nominal duration, per job.
  double run_overhead_mean_us = 0;
  /// Process CPU time while the jobs ran, per second of makespan (1.0 is
  /// one core busy).
  double cpu_cores = 0;

  double ratio() const {
    return makespan_ms / ideal_ms;
  }
};

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_saturation: " << what << " failed: " << why << '\n';
  std::exit(1);
}

double micros(caf::timespan x) {
  return static_cast<double>(x.count()) / 1000.0;
}

runtime::job_spec fixed_duration_job(size_t index) {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.prompt = "saturation job " + std::to_string(index);
  spec.steps = steps;
  spec.options = {{"step_ms", std::to_string(step_ms)}, {"load_ms", "0"}};
  return spec;
}

/// Submits every job, then waits for each result.
std::vector<runtime::job_result> run_jobs(caf::actor_system& sys,
                                          const runtime::admission_actor& node,
                                          size_t count) {
  caf::scoped_actor self{sys};
  std::vector<runtime::job_id> ids;
  for (size_t i = 0; i < count; ++i)
    self
      ->request(node, caf::infinite, runtime::submit_atom::value,
                fixed_duration_job(i))
      .receive([&](runtime::job_id id) { ids.push_back(id); },
               [&](caf::error& err) { fail("submit", sys.render(err)); });
  std::vector<runtime::job_result> results;
  for (auto id : ids)
    self
      ->request(node, caf::infinite, runtime::wait_atom::value, id,
                caf::timespan{0})
      .receive(
        [&](runtime::job_result& result) {
          if (result.state != runtime::job_state::succeeded)
            fail("job " + runtime::to_string(id),
                 runtime::to_string(result.state));
          results.push_back(std::move(result));
        },
        [&](caf::error& err) { fail("wait", sys.render(err)); });
  return results;
}

saturation_outcome measure(const scheduler_choice& choice, size_t jobs) {
  caf::actor_system_config cfg;
  actors::add_types(cfg);
  choice.apply(cfg);
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.devices = "sim:" + std::to_string(devices);
  settings.max_concurrency = 1;
  auto node = actors::local_node::start(sys, settings);
  if (!node)
    fail("starting the node", sys.render(node.error()));
  if (!await_devices(sys, (*node)->admission(), devices))
    fail("starting the node", "devices did not attach");
  auto cpu_before = process_cpu_seconds();
  auto wall_before = clock_type::now();
  auto results = run_jobs(sys, (*node)->admission(), jobs);
  auto cpu_used = process_cpu_seconds() - cpu_before;
  auto wall_used =
    std::chrono::duration<double>(clock_type::now() - wall_before).count();
  if (auto err = (*node)->stop())
    fail("stopping the node", sys.render(err));
  saturation_outcome out;
  out.scheduler = choice.name;
  out.jobs = jobs;
  auto duration = caf::timespan{std::chrono::milliseconds{steps * step_ms}};
  out.ideal_ms =
    micros(duration) * static_cast<double>(jobs) / devices / 1000.0;
  auto first = results.front().accepted_at;
  auto last = results.front().finished_at;
  std::map<std::string, std::vector<const runtime::job_result*>> by_device;
  double overhead = 0;
  for (const auto& r : results) {
    first = std::min(first, r.accepted_at);
    last = std::max(last, r.finished_at);
    by_device[r.device].push_back(&r);
    overhead += micros(r.run_time - duration);
  }
  out.makespan_ms = micros(last - first) / 1000.0;
  out.cpu_cores = cpu_used / wall_used;
  out.run_overhead_mean_us = overhead / static_cast<double>(results.size());
  double gap_sum = 0;
  size_t gaps = 0;
  for (auto& [device, runs] : by_device) {
    std::sort(runs.begin(), runs.end(),
              [](auto x, auto y) { return x->started_at < y->started_at; });
    for (size_t i = 1; i < runs.size(); ++i) {
      auto gap = micros(runs[i]->started_at - runs[i - 1]->finished_at);
      gap_sum += gap;
      out.gap_max_us = std::max(out.gap_max_us, gap);
      ++gaps;
    }
  }
  out.gap_mean_us = gaps > 0 ? gap_sum / static_cast<double>(gaps) : 0;
  return out;
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  auto per_device = scaled(10, scale(argc, argv));
  auto jobs = per_device * static_cast<size_t>(devices);
  std::vector<saturation_outcome> outcomes;
  for (const auto& choice : scheduler_choices())
    outcomes.push_back(measure(choice, jobs));
  std::cout << "## bench_saturation\n\n";
  markdown_table table{{"scheduler", "makespan ms", "ideal ms",
                        "makespan / ideal", "met? (<= 1.02)", "gap mean us",
                        "gap max us", "met? (max < 1000 us)",
                        "run overhead per job us", "CPU (cores)"}};
  for (const auto& x : outcomes)
    table.add({x.scheduler, fixed(x.makespan_ms), fixed(x.ideal_ms),
               fixed(x.ratio(), 3), verdict(x.ratio() <= makespan_target),
               fixed(x.gap_mean_us), fixed(x.gap_max_us),
               verdict(x.gap_max_us < gap_target_us),
               fixed(x.run_overhead_mean_us), fixed(x.cpu_cores, 2)});
  table.print(std::to_string(jobs) + " jobs of " + std::to_string(steps) + " x "
              + std::to_string(step_ms) + " ms on " + std::to_string(devices)
              + " sim devices, one slot each");
  for (const auto& x : outcomes) {
    record_summary({"saturation makespan, " + x.scheduler,
                    fixed(x.makespan_ms) + " ms", fixed(x.ideal_ms) + " ms",
                    fixed(x.ratio(), 3) + "x", "<= 1.02x",
                    x.ratio() <= makespan_target});
    record_summary(
      {"saturation idle gap (max), " + x.scheduler,
       fixed(x.gap_max_us) + " us (mean " + fixed(x.gap_mean_us) + ")", "0 us",
       "-", "< 1000 us", x.gap_max_us < gap_target_us});
  }
  return 0;
}
