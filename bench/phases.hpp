#pragma once

/// @file
/// Where a job's time goes, for the benchmarks that run real models
/// (bench_tiny_t2v, bench_gpu_burst): the phases a node's device worker
/// reports for each attempt (actors::job_phases, heard through a
/// node_observer), the plain loop they are measured against (the pipeline
/// API driven by one C++ loop, no actors: the floor vidnode can reach), and
/// the table that sets the two side by side.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node_observer.hpp"
#include "vidnode/gpu/pipeline.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/runtime/job.hpp"

#include "measurement.hpp"

namespace vidnode::bench {

/// Collects every succeeded attempt's phases (node_observer::attempt_phases).
class phase_recorder : public actors::node_observer {
public:
  void attempt_phases(const std::string&, runtime::device_kind,
                      const actors::job_phases& phases) override {
    std::lock_guard<std::mutex> guard{mtx_};
    phases_.push_back(phases);
  }

  /// The phases heard since the last call.
  std::vector<actors::job_phases> take() {
    std::lock_guard<std::mutex> guard{mtx_};
    return std::exchange(phases_, {});
  }

private:
  std::mutex mtx_;
  std::vector<actors::job_phases> phases_;
};

/// Milliseconds.
inline double ms(caf::timespan x) {
  return std::chrono::duration<double, std::milli>(x).count();
}

/// What the plain loop spent, summed over its jobs (the same phases as
/// job_phases where the loop has them).
struct loop_phases {
  size_t jobs = 0;
  caf::timespan prepare{0};
  caf::timespan steps{0};
  caf::timespan kernel{0};
  caf::timespan memory_measurement{0};
  caf::timespan decode{0};
  /// On the encoders' threads.
  caf::timespan encode{0};
  /// Between one job's finish() and the next one's begin() (handing the
  /// video to its encoder's thread; none after the last job).
  caf::timespan gap{0};
  caf::timespan gap_max{0};
  size_t gaps = 0;
  /// begin() to finish() returned, per job.
  caf::timespan on_device{0};

  loop_phases& operator+=(const loop_phases& x) {
    jobs += x.jobs;
    prepare += x.prepare;
    steps += x.steps;
    kernel += x.kernel;
    memory_measurement += x.memory_measurement;
    decode += x.decode;
    encode += x.encode;
    gap += x.gap;
    gap_max = std::max(gap_max, x.gap_max);
    gaps += x.gaps;
    on_device += x.on_device;
    return *this;
  }
};

/// What one plain-loop run took.
struct loop_outcome {
  /// First begin() to the last video written.
  double seconds = 0;
  loop_phases phases;
};

/// Runs `specs` through `pipeline` (loaded already) one after another on
/// the calling thread: begin, every step, finish; each video is then
/// written on a thread of its own, as a device worker's encoder does, while
/// the loop goes on with the next job. Returns once every video is written;
/// exits the process if anything fails.
inline loop_outcome plain_loop(gpu::pipeline& pipeline,
                               const std::vector<runtime::job_spec>& specs,
                               const std::filesystem::path& dir) {
  using std::chrono::duration_cast;
  loop_outcome out;
  std::mutex mtx;
  std::optional<std::string> failure;
  std::vector<std::thread> encoders;
  encoders.reserve(specs.size());
  auto started = clock_type::now();
  auto last_finish = started;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto t0 = clock_type::now();
    if (i > 0) {
      auto gap = duration_cast<caf::timespan>(t0 - last_finish);
      out.phases.gap += gap;
      out.phases.gap_max = std::max(out.phases.gap_max, gap);
      out.phases.gaps += 1;
    }
    gpu::device_time busy{0};
    auto run = pipeline.begin(specs[i], 1, busy);
    auto t1 = clock_type::now();
    for (int32_t s = 0; s < run->steps(); ++s)
      run->step(s);
    auto t2 = clock_type::now();
    auto output = run->finish(busy);
    auto t3 = clock_type::now();
    last_finish = t3;
    auto profile = run->profile();
    out.phases.jobs += 1;
    out.phases.prepare += duration_cast<caf::timespan>(t1 - t0);
    out.phases.steps += duration_cast<caf::timespan>(t2 - t1);
    out.phases.decode += duration_cast<caf::timespan>(t3 - t2);
    out.phases.on_device += duration_cast<caf::timespan>(t3 - t0);
    out.phases.kernel += duration_cast<caf::timespan>(profile.kernel);
    out.phases.memory_measurement +=
      duration_cast<caf::timespan>(profile.memory_measurement);
    if (!output.video)
      continue;
    auto path = (dir
                 / ("loop-" + std::to_string(specs[i].seed) + "."
                    + gpu::video_file_extension()))
                  .string();
    encoders.emplace_back([&, path, video = std::move(*output.video)] {
      auto e0 = clock_type::now();
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      auto err = gpu::write_video(path, video);
      auto took = duration_cast<caf::timespan>(clock_type::now() - e0);
      std::lock_guard<std::mutex> guard{mtx};
      out.phases.encode += took;
      if (err && !failure)
        failure = *err;
    });
  }
  for (auto& t : encoders)
    t.join();
  out.seconds =
    std::chrono::duration<double>(clock_type::now() - started).count();
  if (failure) {
    std::cerr << "plain loop: encoding failed: " << *failure << '\n';
    std::exit(1);
  }
  return out;
}

/// What a node's attempts spent, from their job_phases and job_results.
struct node_phases {
  std::vector<actors::job_phases> phases;
  /// Sums over the results: started to finished, started to computed.
  caf::timespan wall{0};
  caf::timespan on_device{0};
  size_t results = 0;
  /// The device's idle gaps: a job's started_at minus the previous one's
  /// computed_at (by start), within each batch.
  caf::timespan gap{0};
  caf::timespan gap_max{0};
  size_t gaps = 0;

  /// Adds one batch of results of one device (its gaps counted within it).
  void add(std::vector<runtime::job_result> batch) {
    std::sort(batch.begin(), batch.end(),
              [](auto& x, auto& y) { return x.started_at < y.started_at; });
    for (size_t i = 0; i < batch.size(); ++i) {
      wall += batch[i].finished_at - batch[i].started_at;
      on_device += batch[i].computed_at - batch[i].started_at;
      results += 1;
      if (i == 0)
        continue;
      auto g = batch[i].started_at - batch[i - 1].computed_at;
      gap += g;
      gap_max = std::max(gap_max, g);
      gaps += 1;
    }
  }
};

/// Prints a node's phases (mean per attempt and share of the attempt's wall
/// time, started to finished) beside the plain loop's.
inline void print_phase_table(const std::string& caption, const node_phases& n,
                              const loop_phases& loop) {
  actors::job_phases sum;
  for (const auto& p : n.phases) {
    sum.load += p.load;
    sum.prepare += p.prepare;
    sum.steps += p.steps;
    sum.kernel += p.kernel;
    sum.memory_measurement += p.memory_measurement;
    sum.decode += p.decode;
    sum.handoff += p.handoff;
    sum.encode += p.encode;
  }
  auto attempts = static_cast<double>(std::max<size_t>(n.phases.size(), 1));
  auto results = static_cast<double>(std::max<size_t>(n.results, 1));
  auto jobs = static_cast<double>(std::max<size_t>(loop.jobs, 1));
  auto wall_ms = ms(n.wall) / results;
  auto mean = [&](caf::timespan x) { return ms(x) / attempts; };
  auto share = [&](double x) {
    return wall_ms > 0 ? fixed(100.0 * x / wall_ms) + "%" : std::string{"-"};
  };
  auto loop_mean = [&](caf::timespan x) { return fixed(ms(x) / jobs, 2); };
  markdown_table table{
    {"phase", "vidnode ms per attempt (mean)",
     "share of the attempt's wall time", "plain loop ms per job (mean)"}};
  auto row = [&](const std::string& name, caf::timespan x, std::string other) {
    table.add({name, fixed(mean(x), 2), share(mean(x)), std::move(other)});
  };
  row("load", sum.load, "- (loaded before)");
  row("prepare (begin)", sum.prepare, loop_mean(loop.prepare));
  row("steps", sum.steps, loop_mean(loop.steps));
  row("of which kernel", sum.kernel, loop_mean(loop.kernel));
  row("of which memory measurement", sum.memory_measurement,
      loop_mean(loop.memory_measurement));
  row("decode (finish)", sum.decode, loop_mean(loop.decode));
  row("handoff (between the worker's pipeline calls)", sum.handoff, "-");
  row("encode (off the device)", sum.encode, loop_mean(loop.encode));
  auto phased = mean(sum.load + sum.prepare + sum.steps + sum.decode
                     + sum.handoff + sum.encode);
  table.add({"in no phase (wall less the phases above)",
             fixed(wall_ms - phased, 2), share(wall_ms - phased), "-"});
  table.add({"attempt wall time (started to finished)", fixed(wall_ms, 2),
             "100%", "-"});
  table.add({"on the device (started to computed; loop: begin to finish)",
             fixed(ms(n.on_device) / results, 2),
             share(ms(n.on_device) / results), loop_mean(loop.on_device)});
  auto gaps = static_cast<double>(std::max<size_t>(n.gaps, 1));
  auto loop_gaps = static_cast<double>(std::max<size_t>(loop.gaps, 1));
  table.add({"idle gap between jobs (mean / max; loop: finish to next begin)",
             fixed(ms(n.gap) / gaps, 3) + " / " + fixed(ms(n.gap_max), 3), "-",
             fixed(ms(loop.gap) / loop_gaps, 3) + " / "
               + fixed(ms(loop.gap_max), 3)});
  table.print(caption + "; " + std::to_string(n.phases.size())
              + " attempts' phases heard through node_observer::"
                "attempt_phases (zeros: the worker did not time that phase)");
}

/// The median of `xs` (not empty).
inline double median_of(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

} // namespace vidnode::bench
