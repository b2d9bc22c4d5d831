/// @file
/// bench_tiny_t2v on one device: vidnode against the plain loop, with the
/// phase breakdown, and lanes (see tiny_t2v_phases.hpp).

#include "tiny_t2v_phases.hpp"

#include <time.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/cuda.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"

#include "../gpu/src/tiny_t2v_hooks.hpp"
#include "measurement.hpp"
#include "phases.hpp"

namespace vidnode::bench {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_tiny_t2v: " << what << " failed: " << why << '\n';
  std::exit(1);
}

/// `count` jobs like `base`, seeds from `first_seed` on.
std::vector<runtime::job_spec> batch(const runtime::job_spec& base,
                                     uint64_t first_seed, size_t count) {
  std::vector<runtime::job_spec> specs(count, base);
  for (size_t i = 0; i < count; ++i)
    specs[i].seed = first_seed + i;
  return specs;
}

/// A node with one device, started on its own actor system.
class bench_node {
public:
  bench_node(const std::string& devices, int32_t concurrency,
             const std::filesystem::path& dir,
             std::shared_ptr<actors::node_observer> events)
    : sys_(cfg_), self_(sys_) {
    runtime::node_settings settings;
    settings.node_name = "bench";
    settings.devices = devices;
    settings.max_concurrency = concurrency;
    settings.output_dir = dir.string();
    auto node =
      actors::local_node::start(sys_, settings, nullptr, nullptr, events);
    if (!node)
      fail("starting the node", runtime::describe(node.error()));
    node_ = std::move(*node);
  }

  ~bench_node() {
    node_->stop();
  }

  /// Sends every job of `specs` at once; returns their results once every
  /// one succeeded, and the seconds from the first send to the last result.
  std::vector<runtime::job_result>
  run(const std::vector<runtime::job_spec>& specs, double& seconds) {
    auto started = clock_type::now();
    for (const auto& spec : specs)
      self_->send(node_->admission(), runtime::execute_atom::value, spec);
    std::vector<runtime::job_result> results;
    results.reserve(specs.size());
    for (size_t i = 0; i < specs.size(); ++i)
      self_->receive(
        [&](runtime::job_result& r) {
          if (r.state != runtime::job_state::succeeded)
            fail("a job", runtime::describe(r.error));
          results.push_back(std::move(r));
        },
        [](caf::error& err) { fail("a job", runtime::describe(err)); });
    seconds =
      std::chrono::duration<double>(clock_type::now() - started).count();
    return results;
  }

private:
  net::process_config cfg_;
  caf::actor_system sys_;
  caf::scoped_actor self_;
  std::unique_ptr<actors::local_node> node_;
};

/// CPU time of the whole process, in seconds.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec)
         + static_cast<double>(ts.tv_nsec) * 1e-9;
}

runtime::device_info device_of(runtime::device_kind kind) {
  runtime::device_info device;
  device.kind = kind;
  device.memory_bytes = 8ull << 30;
  if (kind == runtime::device_kind::cuda) {
    auto cuda = gpu::cuda_devices();
    if (!cuda.empty())
      device.memory_bytes = cuda.front().total_bytes;
  }
  return device;
}

} // namespace

void vidnode_against_plain_loop(const runtime::job_spec& base,
                                runtime::device_kind kind,
                                const std::string& shape, size_t jobs,
                                size_t rounds) {
  auto on_cuda = kind == runtime::device_kind::cuda;
  auto where = std::string{on_cuda ? "cuda:0" : "one cpu device"};
  auto dir =
    std::filesystem::temp_directory_path() / "vidnode-bench-tiny-t2v-phases";
  std::filesystem::create_directories(dir);
  // The plain loop: the catalog's factory, the model loaded once.
  auto catalog = gpu::model_catalog::builtin();
  auto factory = catalog->find(base.model);
  if (factory == nullptr)
    fail("the plain loop", "no factory serves " + base.model);
  auto pipeline = factory->make(base.model, device_of(kind));
  pipeline->load(base);
  // vidnode: one device, the same model, loaded by a first job.
  auto recorder = std::make_shared<phase_recorder>();
  bench_node node{on_cuda ? "cuda:0" : "cpu:1", 1, dir / "node", recorder};
  double ignored = 0;
  node.run(batch(base, 1, 2), ignored);
  plain_loop(*pipeline, batch(base, 1, 2), dir / "loop");
  recorder->take();
  std::vector<double> loop_s;
  std::vector<double> node_s;
  std::vector<double> ratios;
  std::vector<double> cpu_ratios;
  loop_phases loop;
  node_phases measured;
  markdown_table rounds_table{{"round", "first", "plain loop s (CPU s)",
                               "vidnode s (CPU s)", "vidnode / plain loop",
                               "CPU: vidnode / plain loop"}};
  for (size_t r = 0; r < rounds; ++r) {
    auto specs = batch(base, 1000 * (r + 1), jobs);
    double node_seconds = 0;
    double node_cpu = 0;
    double loop_cpu = 0;
    loop_outcome looped;
    auto run_node = [&] {
      auto cpu = process_cpu_seconds();
      measured.add(node.run(specs, node_seconds));
      node_cpu = process_cpu_seconds() - cpu;
    };
    auto run_loop = [&] {
      auto cpu = process_cpu_seconds();
      looped = plain_loop(*pipeline, specs, dir / "loop");
      loop_cpu = process_cpu_seconds() - cpu;
    };
    if (r % 2 == 0) {
      run_loop();
      run_node();
    } else {
      run_node();
      run_loop();
    }
    loop += looped.phases;
    loop_s.push_back(looped.seconds);
    node_s.push_back(node_seconds);
    ratios.push_back(node_seconds / looped.seconds);
    cpu_ratios.push_back(node_cpu / loop_cpu);
    rounds_table.add(
      {std::to_string(r + 1), r % 2 == 0 ? "plain loop" : "vidnode",
       fixed(looped.seconds, 3) + " (" + fixed(loop_cpu, 3) + ")",
       fixed(node_seconds, 3) + " (" + fixed(node_cpu, 3) + ")",
       fixed(ratios.back(), 3) + "x", fixed(cpu_ratios.back(), 3) + "x"});
  }
  measured.phases = recorder->take();
  std::filesystem::remove_all(dir);
  auto ratio = median_of(ratios);
  auto met = ratio <= 1.02;
  auto loop_rate = static_cast<double>(jobs) / median_of(loop_s);
  auto node_rate = static_cast<double>(jobs) / median_of(node_s);
  auto gap_max_us = ms(measured.gap_max) * 1000.0;
  auto gap_mean_us = ms(measured.gap) * 1000.0
                     / static_cast<double>(std::max<size_t>(measured.gaps, 1));
  markdown_table table{{"run", "jobs per round", "rounds",
                        "makespan s (median)", "jobs/s", "vs plain loop",
                        "idle gap mean us", "idle gap max us",
                        "met? (<= 1.02x; gap < 1000 us)"}};
  table.add({"plain loop: pipeline API, encoder threads", std::to_string(jobs),
             std::to_string(rounds), fixed(median_of(loop_s), 3),
             fixed(loop_rate, 2), "1.00x", "-", "-", "-"});
  table.add(
    {"vidnode: " + where, std::to_string(jobs), std::to_string(rounds),
     fixed(median_of(node_s), 3), fixed(node_rate, 2),
     fixed(ratio, 3) + "x (rounds "
       + fixed(*std::min_element(ratios.begin(), ratios.end()), 3) + "x-"
       + fixed(*std::max_element(ratios.begin(), ratios.end()), 3) + "x)",
     fixed(gap_mean_us), fixed(gap_max_us),
     verdict(met && gap_max_us < 1000.0)});
  table.print("tiny-t2v jobs (" + shape + ") on " + where
              + ": vidnode against the plain loop (the same jobs through the "
                "pipeline API in one C++ loop, each video written on a "
                "thread of its own while the next job computes), model "
                "loaded in both beforehand, same run; ratio: the median of "
                "the rounds' vidnode / plain loop");
  rounds_table.print(
    "the rounds (which went first alternates); CPU s: the process's CPU "
    "time during the run (every thread: compute, encoders, actors), median "
    "of the CPU ratios "
    + fixed(median_of(cpu_ratios), 3) + "x");
  print_phase_table("where a tiny-t2v job's time goes on " + where, measured,
                    loop);
  auto where_short = std::string{on_cuda ? "cuda" : "cpu"};
  record_summary({"tiny-t2v on " + where_short
                    + ", makespan against the "
                      "plain loop",
                  fixed(node_rate, 2) + " jobs/s",
                  fixed(loop_rate, 2) + " jobs/s (plain loop)",
                  fixed(ratio, 3) + "x", "<= 1.02x", met});
  record_summary(
    {"tiny-t2v on " + where_short + ", idle gap between jobs (max)",
     fixed(gap_max_us) + " us (mean " + fixed(gap_mean_us) + ")", "0 us", "-",
     "< 1000 us", gap_max_us < 1000.0});
}

/// Jobs/s of `threads` threads (one intra-op thread each) that share
/// `specs` through `pipeline`, computing only: begin, steps, finish,
/// no video written, no actors. What this machine's cores give the lanes'
/// work at most.
double compute_only(gpu::pipeline& pipeline,
                    const std::vector<runtime::job_spec>& specs,
                    int32_t threads) {
  std::atomic<size_t> next{0};
  auto started = clock_type::now();
  std::vector<std::thread> workers;
  for (int32_t t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      // One intra-op thread each, as a lane of 2 gets from 2.
      gpu::tiny_t2v_hooks::set_intra_op_threads(1);
      for (auto i = next++; i < specs.size(); i = next++) {
        gpu::device_time busy{0};
        auto run = pipeline.begin(specs[i], 1, busy);
        for (int32_t k = 0; k < run->steps(); ++k)
          run->step(k);
        run->finish(busy);
      }
    });
  for (auto& w : workers)
    w.join();
  std::chrono::duration<double> took = clock_type::now() - started;
  return static_cast<double>(specs.size()) / took.count();
}

void lanes_on_cpu(size_t jobs, size_t rounds) {
  runtime::job_spec base;
  base.model = "tiny-t2v";
  base.prompt = "a red fox running through snow";
  base.width = 64;
  base.height = 64;
  base.frames = 8;
  base.steps = 4;
  base.fps = 8;
  auto dir =
    std::filesystem::temp_directory_path() / "vidnode-bench-tiny-t2v-lanes";
  // jobs/s of a fresh node with `lanes` lanes, the process's intra-op
  // threads set to `threads` before it starts.
  // The cores each configuration kept busy: the process's CPU time over
  // the wall time of its runs (2 lanes can only beat 1 with 2 cores free).
  double cpu[3] = {0, 0, 0};
  double wall[3] = {0, 0, 0};
  auto run = [&](int32_t lanes, int32_t threads, uint64_t seed) {
    gpu::tiny_t2v_hooks::set_intra_op_threads(threads);
    bench_node node{"cpu:1", lanes, dir, nullptr};
    double seconds = 0;
    // Warm-up: every lane runs a job or two first.
    node.run(batch(base, 1, static_cast<size_t>(2 * lanes)), seconds);
    auto cpu_before = process_cpu_seconds();
    node.run(batch(base, seed, jobs), seconds);
    auto k = lanes == 2 ? 2 : threads == 2 ? 1 : 0;
    cpu[k] += process_cpu_seconds() - cpu_before;
    wall[k] += seconds;
    return static_cast<double>(jobs) / seconds;
  };
  auto cores = [&](int k) { return fixed(cpu[k] / wall[k], 2); };
  std::vector<double> one;
  std::vector<double> two;
  std::vector<double> one_wide;
  std::vector<double> ratios;
  for (size_t r = 0; r < rounds; ++r) {
    auto seed = 1000 * (r + 1);
    double a = 0;
    double b = 0;
    if (r % 2 == 0) {
      a = run(1, 1, seed);
      b = run(2, 2, seed);
    } else {
      b = run(2, 2, seed);
      a = run(1, 1, seed);
    }
    // For reference, once: one lane with both threads (what the two lanes'
    // threads give one job at a time).
    if (r == 0)
      one_wide.push_back(run(1, 2, seed));
    one.push_back(a);
    two.push_back(b);
    ratios.push_back(b / a);
  }
  // The machine's ceiling for the same work: the jobs' computation alone
  // on one thread and on two, alternating.
  gpu::tiny_t2v_hooks::set_intra_op_threads(1);
  std::vector<double> ceiling;
  {
    auto catalog = gpu::model_catalog::builtin();
    auto pipeline = catalog->find(base.model)
                      ->make(base.model, device_of(runtime::device_kind::cpu));
    pipeline->load(base);
    auto specs = batch(base, 7, jobs);
    compute_only(*pipeline, specs, 2);
    for (size_t r = 0; r < rounds; ++r) {
      auto one_thread = compute_only(*pipeline, specs, 1);
      auto two_threads = compute_only(*pipeline, specs, 2);
      ceiling.push_back(two_threads / one_thread);
    }
  }
  std::filesystem::remove_all(dir);
  auto ratio = median_of(ratios);
  markdown_table table{{"run", "jobs per round", "rounds", "jobs/s (median)",
                        "vs 1 lane", "cores busy (process CPU s / wall s)",
                        "met? (>= 1.7x)"}};
  table.add({"max-concurrency 1, 1 intra-op thread", std::to_string(jobs),
             std::to_string(rounds), fixed(median_of(one), 2), "1.00x",
             cores(0), "-"});
  table.add({"for reference: max-concurrency 1, 2 intra-op threads",
             std::to_string(jobs), "1", fixed(median_of(one_wide), 2),
             fixed(median_of(one_wide) / median_of(one), 2) + "x", cores(1),
             "-"});
  table.add(
    {"max-concurrency 2, 2 intra-op threads (1 per lane)", std::to_string(jobs),
     std::to_string(rounds), fixed(median_of(two), 2),
     fixed(ratio, 2) + "x (rounds "
       + fixed(*std::min_element(ratios.begin(), ratios.end()), 2) + "x-"
       + fixed(*std::max_element(ratios.begin(), ratios.end()), 2) + "x)",
     cores(2), verdict(ratio >= 1.7)});
  table.add({"the machine's ceiling: the jobs' computation alone (pipeline "
             "API, no video, no actors) on 2 threads against 1",
             std::to_string(jobs), std::to_string(rounds), "-",
             fixed(median_of(ceiling), 2) + "x", "-", "-"});
  table.print("lanes: small tiny-t2v jobs (64x64, 8 frames, 4 steps) on one "
              "cpu device, "
              + std::to_string(hardware_threads())
              + " hardware threads, each run a fresh node (which of the "
                "first two goes first alternates; the reference runs third "
                "in the first round)");
  record_summary({"tiny-t2v lanes on cpu: 2 lanes of 1 thread against 1",
                  fixed(median_of(two), 2) + " jobs/s",
                  fixed(median_of(one), 2) + " jobs/s (1 lane)",
                  fixed(ratio, 2) + "x", ">= 1.7x", ratio >= 1.7});
}

} // namespace vidnode::bench
