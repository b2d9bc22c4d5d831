/// @file
/// tiny-t2v on one device (tiny_t2v_phases.cpp): the same jobs through a
/// node and through the plain loop (the pipeline API driven by one C++
/// loop, the model loaded once, each video written on a thread of its own
/// as the node's worker does: the floor vidnode can reach), in the same
/// run, several rounds alternating which goes first (target: vidnode's
/// makespan at most 1.02x the loop's); the device's idle gap between
/// consecutive jobs (the next job's started_at minus the previous job's
/// computed_at, both taken by the admission actor; target: under 1 ms);
/// and where a job's time goes (the phases the device worker reports,
/// actors::job_phases, beside the loop's). On cpu, lanes: small jobs on
/// one device with max-concurrency 2 and one intra-op thread per lane
/// against max-concurrency 1 with one thread (target: at least 1.7x).
///
/// Then, on cpu only, sequence parallelism: one job of 256x256, 32 frames,
/// 8 steps (where compute dominates) as a gang of 2 ranks on cpu:0 and
/// cpu:1 (Gloo on 127.0.0.1, each rank on its own thread, torch's intra-op
/// threads set to 1 for the process, so one core each) against the same
/// job on one rank with one thread, in the same run, alternating which goes
/// first, several rounds (medians); target: at least 1.7x. It prints the
/// share of the gang's step time spent in collectives (the all-to-alls,
/// waiting for the other rank included), timed inside the run, and the CPU
/// time of each rank's thread against the one rank's: on a machine whose
/// cores are shared with other work the wall-clock ratio falls short of
/// what the ranks' work allows, and the CPU times show by how much.
///
/// Usage: bench_tiny_t2v [SCALE [DEVICE [SECTION]]]: SCALE (or
/// VIDNODE_BENCH_SCALE)
/// multiplies the number of jobs and rounds; DEVICE is cpu (the default:
/// 128x128, 8 frames, 4 steps) or cuda (cuda:0; 256x256, 16 frames, 8
/// steps; no lanes section (bench_gpu_burst has the GPU's), no ranks
/// section: one GPU cannot host two NCCL ranks); SECTION (default: all)
/// runs one section alone: loop (vidnode against the plain loop), lanes or
/// ranks.

#include <time.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/collectives.hpp"
#include "vidnode/gpu/cuda.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"

#include "../gpu/src/tiny_t2v_hooks.hpp"
#include "measurement.hpp"
#include "tiny_t2v_phases.hpp"

namespace vidnode::bench {
namespace {

/// Whether the run is on cuda:0 rather than cpu:0.
bool on_cuda = false;

runtime::job_spec job(uint64_t seed) {
  runtime::job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = "a red fox running through snow";
  spec.width = on_cuda ? 256 : 128;
  spec.height = on_cuda ? 256 : 128;
  spec.frames = on_cuda ? 16 : 8;
  spec.steps = on_cuda ? 8 : 4;
  spec.fps = 8;
  spec.seed = seed;
  return spec;
}

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_tiny_t2v: " << what << " failed: " << why << '\n';
  std::exit(1);
}

// -- sequence parallelism ----------------------------------------------------

constexpr double ranks_target = 1.7;

runtime::job_spec ranks_job(uint64_t seed, int32_t ranks) {
  runtime::job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = "a red fox running through snow";
  spec.width = 256;
  spec.height = 256;
  spec.frames = 32;
  spec.steps = 8;
  spec.fps = 8;
  spec.seed = seed;
  spec.ranks = ranks;
  return spec;
}

runtime::device_info cpu_device(int32_t ordinal) {
  runtime::device_info device;
  device.index = ordinal;
  device.kind = runtime::device_kind::cpu;
  device.ordinal = ordinal;
  device.memory_bytes = 8ull << 30;
  return device;
}

struct ranks_outcome {
  size_t rounds = 0;
  /// Medians of the rounds' job times (begin to finish), in seconds.
  double single_seconds = 0;
  double gang_seconds = 0;
  /// The lowest and highest of the rounds' ratios single / gang.
  double ratio_min = 0;
  double ratio_max = 0;
  /// The fastest round of each (the least disturbed by other work).
  double single_best = 0;
  double gang_best = 0;
  /// Medians of the CPU time of the thread that ran the job, or each
  /// rank's (the cores' work, whatever else ran on the machine).
  double single_cpu_seconds = 0;
  double rank_cpu_seconds[2] = {0, 0};
  /// Collectives' share of step time, and of finish time (decode and
  /// gather), per rank over every round.
  double step_share[2] = {0, 0};
  double finish_share[2] = {0, 0};
  /// torch's intra-op threads as each rank's thread saw them.
  int32_t rank_threads[2] = {0, 0};
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

/// CPU time of the calling thread, in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec)
         + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// What one job (or one rank of it) took.
struct job_measure {
  gpu::tiny_t2v_hooks::run_timing timing;
  /// CPU time of the thread that ran it.
  double cpu_seconds = 0;
};

/// Runs one job (or one rank of it) to the end on the calling thread.
job_measure run_job(gpu::pipeline& pipeline, const runtime::job_spec& spec,
                    int32_t rank, std::shared_ptr<gpu::communicator> gang) {
  auto cpu_started = thread_cpu_seconds();
  gpu::device_time busy{0};
  auto world = gang ? gang->world() : 1;
  auto run =
    gang ? pipeline.begin_rank(spec, 1, rank, world, std::move(gang), busy)
         : pipeline.begin(spec, 1, busy);
  for (int32_t i = 0; i < run->steps(); ++i)
    run->step(i);
  auto out = run->finish(busy);
  if (rank == 0 && !out.video)
    fail("the gang", "rank 0 returned no video");
  return {gpu::tiny_t2v_hooks::timing(*run),
          thread_cpu_seconds() - cpu_started};
}

ranks_outcome sequence_parallel(size_t rounds) {
  // One core per rank: the ranks share torch's intra-op threads.
  gpu::tiny_t2v_hooks::set_intra_op_threads(1);
  gpu::tiny_t2v_factory factory;
  auto single = factory.make("tiny-t2v", cpu_device(0));
  single->load(ranks_job(0, 1));
  std::unique_ptr<gpu::pipeline> ranks[2];
  std::shared_ptr<gpu::communicator> gang[2];
  auto host = gpu::host_rendezvous(cpu_device(0), "127.0.0.1");
  {
    std::future<void> joined[2];
    for (int32_t r = 0; r < 2; ++r)
      joined[r] = std::async(std::launch::async, [&, r] {
        ranks[r] = factory.make("tiny-t2v", cpu_device(r));
        ranks[r]->load(ranks_job(0, 2));
        gang[r] = gpu::join_gang(cpu_device(r), host->address(), r, 2,
                                 std::chrono::seconds{60});
      });
    for (auto& j : joined)
      j.get();
  }
  ranks_outcome out;
  out.rounds = rounds;
  std::vector<double> single_cpu;
  std::vector<double> rank_cpu[2];
  auto run_single = [&](uint64_t seed, bool counted) {
    auto started = clock_type::now();
    auto m = run_job(*single, ranks_job(seed, 1), 0, nullptr);
    if (counted)
      single_cpu.push_back(m.cpu_seconds);
    return std::chrono::duration<double>(clock_type::now() - started).count();
  };
  gpu::tiny_t2v_hooks::run_timing totals[2];
  auto run_gang = [&](uint64_t seed, bool counted) {
    auto started = clock_type::now();
    std::future<job_measure> pending[2];
    for (int32_t r = 0; r < 2; ++r)
      pending[r] = std::async(std::launch::async, [&, r] {
        out.rank_threads[r] = gpu::tiny_t2v_hooks::intra_op_threads();
        return run_job(*ranks[r], ranks_job(seed, 2), r, gang[r]);
      });
    for (int32_t r = 0; r < 2; ++r) {
      auto m = pending[r].get();
      if (!counted)
        continue;
      rank_cpu[r].push_back(m.cpu_seconds);
      totals[r].steps += m.timing.steps;
      totals[r].step_collectives += m.timing.step_collectives;
      totals[r].finish += m.timing.finish;
      totals[r].finish_collectives += m.timing.finish_collectives;
    }
    return std::chrono::duration<double>(clock_type::now() - started).count();
  };
  // Warm-up: the first job of each pays for the allocator and oneDNN's
  // kernels.
  run_single(1, false);
  run_gang(1, false);
  std::vector<double> singles;
  std::vector<double> gangs;
  std::vector<double> ratios;
  for (size_t i = 0; i < rounds; ++i) {
    auto seed = 100 + i;
    double one = 0;
    double two = 0;
    if (i % 2 == 0) {
      one = run_single(seed, true);
      two = run_gang(seed, true);
    } else {
      two = run_gang(seed, true);
      one = run_single(seed, true);
    }
    singles.push_back(one);
    gangs.push_back(two);
    ratios.push_back(one / two);
  }
  out.single_seconds = median(singles);
  out.gang_seconds = median(gangs);
  out.ratio_min = *std::min_element(ratios.begin(), ratios.end());
  out.ratio_max = *std::max_element(ratios.begin(), ratios.end());
  out.single_best = *std::min_element(singles.begin(), singles.end());
  out.gang_best = *std::min_element(gangs.begin(), gangs.end());
  out.single_cpu_seconds = median(single_cpu);
  for (int32_t r = 0; r < 2; ++r) {
    out.rank_cpu_seconds[r] = median(rank_cpu[r]);
    auto share = [](auto part, auto whole) {
      return whole.count() > 0 ? static_cast<double>(part.count())
                                   / static_cast<double>(whole.count())
                               : 0.0;
    };
    out.step_share[r] = share(totals[r].step_collectives, totals[r].steps);
    out.finish_share[r] = share(totals[r].finish_collectives, totals[r].finish);
  }
  return out;
}

void print_ranks(const ranks_outcome& x) {
  auto ratio = x.single_seconds / x.gang_seconds;
  auto percent = [](double share) { return fixed(share * 100.0) + "%"; };
  auto busiest_rank_cpu =
    std::max(x.rank_cpu_seconds[0], x.rank_cpu_seconds[1]);
  markdown_table table{{"run", "rounds", "seconds per job (median)",
                        "vs one rank", "CPU seconds per job, per rank",
                        "collectives' share of step time",
                        "of finish time (decode + gather)", "met? (>= 1.7x)"}};
  table.add({"one rank, 1 intra-op thread", std::to_string(x.rounds),
             fixed(x.single_seconds, 2), "1.00x",
             fixed(x.single_cpu_seconds, 2), "-", "-", "-"});
  table.add({"gang of 2 ranks (Gloo), 1 intra-op thread each",
             std::to_string(x.rounds), fixed(x.gang_seconds, 2),
             fixed(ratio, 2) + "x (rounds " + fixed(x.ratio_min, 2) + "x-"
               + fixed(x.ratio_max, 2) + "x; fastest rounds "
               + fixed(x.single_best, 2) + " s / " + fixed(x.gang_best, 2)
               + " s = " + fixed(x.single_best / x.gang_best, 2) + "x)",
             fixed(x.rank_cpu_seconds[0], 2) + ", "
               + fixed(x.rank_cpu_seconds[1], 2) + " (one rank's / the "
               + "busier: " + fixed(x.single_cpu_seconds / busiest_rank_cpu, 2)
               + "x)",
             "rank 0 " + percent(x.step_share[0]) + ", rank 1 "
               + percent(x.step_share[1]),
             "rank 0 " + percent(x.finish_share[0]) + ", rank 1 "
               + percent(x.finish_share[1]),
             verdict(ratio >= ranks_target)});
  table.print("tiny-t2v sequence parallelism (256x256, 32 frames, 8 steps) "
              "on cpu devices, "
              + std::to_string(hardware_threads())
              + " hardware threads; intra-op threads seen by the ranks: "
              + std::to_string(x.rank_threads[0]) + ", "
              + std::to_string(x.rank_threads[1])
              + ". The collectives' share includes waiting for the other "
                "rank; on a machine whose cores are busy with other work, "
                "compare the CPU seconds too");
  record_summary({"tiny-t2v, 2 ranks against 1 on cpu (1 core each)",
                  fixed(x.gang_seconds, 2) + " s/job (collectives "
                    + percent(std::max(x.step_share[0], x.step_share[1]))
                    + " of step time)",
                  fixed(x.single_seconds, 2) + " s/job (one rank)",
                  fixed(ratio, 2) + "x", ">= 1.7x", ratio >= ranks_target});
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  if (!vidnode::gpu::torch_available()) {
    std::cout << "## bench_tiny_t2v\n\nskipped: this build has no libtorch\n\n";
    return 0;
  }
  on_cuda = argc > 2 && std::string{argv[2]} == "cuda";
  std::string section = argc > 3 ? argv[3] : "all";
  auto runs = [&](const char* name) {
    return section == "all" || section == name;
  };
  if ((argc > 2 && !on_cuda && std::string{argv[2]} != "cpu")
      || !(runs("loop") || runs("lanes") || runs("ranks"))) {
    std::cerr << "usage: bench_tiny_t2v [SCALE [cpu|cuda [loop|lanes|ranks]]]\n";
    return 2;
  }
  if (on_cuda && vidnode::gpu::cuda_devices().empty()) {
    std::cout << "## bench_tiny_t2v\n\nskipped: no CUDA device (or a build "
                 "without CUDA)\n\n";
    return 0;
  }
  auto factor = scale(argc, argv);
  // The node's log lines (three a job) would drown the tables.
  spdlog::set_level(spdlog::level::warn);
  std::cout << "## bench_tiny_t2v\n\n";
  if (runs("loop"))
    vidnode_against_plain_loop(
      job(0),
      on_cuda ? vidnode::runtime::device_kind::cuda
              : vidnode::runtime::device_kind::cpu,
      on_cuda ? "256x256, 16 frames, 8 steps" : "128x128, 8 frames, 4 steps",
      scaled(on_cuda ? 20 : 12, factor, 4), scaled(on_cuda ? 6 : 12, factor, 2));
  if (on_cuda || !(runs("lanes") || runs("ranks")))
    return 0;
  if (runs("lanes"))
    lanes_on_cpu(scaled(24, factor, 8), scaled(3, factor, 2));
  if (!runs("ranks"))
    return 0;
  if (vidnode::gpu::collective_backend_for(vidnode::runtime::device_kind::cpu)
        .empty()) {
    std::cout << "### tiny-t2v sequence parallelism\n\nskipped: this build "
                 "has no Gloo backend for cpu gangs\n\n";
    return 0;
  }
  print_ranks(sequence_parallel(scaled(4, factor, 2)));
  return 0;
}
