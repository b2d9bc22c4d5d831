/// @file
/// tiny-t2v on one device: jobs per second through a node, against the
/// same jobs run directly through the pipeline API (the model loaded once,
/// jobs back to back, each video encoded before the next job starts), in
/// the same run; and the device's idle gap between consecutive jobs: the
/// next job's started_at minus the previous job's computed_at, both taken
/// by the admission actor (target: under 1 ms).
///
/// Usage: bench_tiny_t2v [SCALE [DEVICE]]: SCALE (or VIDNODE_BENCH_SCALE)
/// multiplies the number of jobs; DEVICE is cpu (the default: 128x128, 8
/// frames, 4 steps) or cuda (cuda:0; 256x256, 16 frames, 8 steps).

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/cuda.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"

#include "measurement.hpp"

namespace vidnode::bench {
namespace {

constexpr double gap_target_us = 1000.0;

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

/// Seconds to run `jobs` jobs directly through the pipeline.
double direct(size_t jobs, const std::filesystem::path& dir) {
  gpu::tiny_t2v_factory factory;
  runtime::device_info device;
  device.kind =
    on_cuda ? runtime::device_kind::cuda : runtime::device_kind::cpu;
  auto pipeline = factory.make("tiny-t2v", device);
  pipeline->load(job(0));
  auto started = clock_type::now();
  for (size_t i = 0; i < jobs; ++i) {
    auto spec = job(i + 1);
    gpu::device_time busy{0};
    auto run = pipeline->begin(spec, 1, busy);
    for (int32_t s = 0; s < run->steps(); ++s)
      run->step(s);
    auto out = run->finish(busy);
    auto path =
      (dir
       / ("direct-" + std::to_string(i) + "." + gpu::video_file_extension()))
        .string();
    if (auto err = gpu::write_video(path, *out.video))
      fail("encoding", *err);
  }
  return std::chrono::duration<double>(clock_type::now() - started).count();
}

struct node_outcome {
  double seconds = 0;
  double gap_mean_us = 0;
  double gap_max_us = 0;
};

/// Runs `jobs` jobs through a node with one device.
node_outcome through_node(size_t jobs, const std::filesystem::path& dir) {
  net::process_config cfg;
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.devices = on_cuda ? "cuda:0" : "cpu:1";
  settings.output_dir = dir.string();
  auto node = actors::local_node::start(sys, settings);
  if (!node)
    fail("starting the node", runtime::describe(node.error()));
  caf::scoped_actor self{sys};
  // Load the model first, as the direct run does.
  self
    ->request((*node)->admission(), caf::infinite, runtime::execute_atom::value,
              job(0))
    .receive([](runtime::job_result&) {},
             [](caf::error& err) { fail("warm-up", runtime::describe(err)); });
  auto started = clock_type::now();
  for (size_t i = 0; i < jobs; ++i)
    self->send((*node)->admission(), runtime::execute_atom::value, job(i + 1));
  std::vector<runtime::job_result> results;
  for (size_t i = 0; i < jobs; ++i)
    self->receive(
      [&](runtime::job_result& r) {
        if (r.state != runtime::job_state::succeeded)
          fail("a job", runtime::describe(r.error));
        results.push_back(std::move(r));
      },
      [](caf::error& err) { fail("a job", runtime::describe(err)); });
  node_outcome out;
  out.seconds =
    std::chrono::duration<double>(clock_type::now() - started).count();
  std::sort(results.begin(), results.end(),
            [](auto& x, auto& y) { return x.started_at < y.started_at; });
  double sum = 0;
  for (size_t i = 1; i < results.size(); ++i) {
    auto gap = std::chrono::duration<double, std::micro>(
                 results[i].started_at - results[i - 1].computed_at)
                 .count();
    sum += gap;
    out.gap_max_us = std::max(out.gap_max_us, gap);
  }
  if (results.size() > 1)
    out.gap_mean_us = sum / static_cast<double>(results.size() - 1);
  (*node)->stop();
  return out;
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
  if (argc > 2 && !on_cuda && std::string{argv[2]} != "cpu") {
    std::cerr << "usage: bench_tiny_t2v [SCALE [cpu|cuda]]\n";
    return 2;
  }
  if (on_cuda && vidnode::gpu::cuda_devices().empty()) {
    std::cout << "## bench_tiny_t2v\n\nskipped: no CUDA device (or a build "
                 "without CUDA)\n\n";
    return 0;
  }
  auto jobs = scaled(on_cuda ? 20 : 6, scale(argc, argv), 2);
  const std::string where = on_cuda ? "cuda" : "cpu";
  auto dir = std::filesystem::temp_directory_path() / "vidnode-bench-tiny-t2v";
  std::filesystem::create_directories(dir);
  auto bare = direct(jobs, dir);
  auto node = through_node(jobs, dir);
  std::filesystem::remove_all(dir);
  auto bare_rate = static_cast<double>(jobs) / bare;
  auto node_rate = static_cast<double>(jobs) / node.seconds;
  std::cout << "## bench_tiny_t2v\n\n";
  markdown_table table{{"run", "jobs", "seconds", "jobs/s", "vs direct",
                        "idle gap mean us", "idle gap max us",
                        "met? (max < 1000 us)"}};
  table.add({"direct: pipeline API, back to back", std::to_string(jobs),
             fixed(bare, 2), fixed(bare_rate, 3), "1.00x", "-", "-", "-"});
  table.add({"vidnode: one " + where + " device", std::to_string(jobs),
             fixed(node.seconds, 2), fixed(node_rate, 3),
             fixed(node_rate / bare_rate, 2) + "x", fixed(node.gap_mean_us),
             fixed(node.gap_max_us), verdict(node.gap_max_us < gap_target_us)});
  table.print(std::string{on_cuda ? "tiny-t2v jobs (256x256, 16 frames, 8 "
                                    "steps) on cuda:0"
                                  : "tiny-t2v jobs (128x128, 8 frames, 4 "
                                    "steps) on one cpu device"}
              + ", model loaded beforehand");
  record_summary({"tiny-t2v on " + where + ", jobs/s",
                  fixed(node_rate, 3) + " jobs/s",
                  fixed(bare_rate, 3) + " jobs/s (direct)",
                  fixed(node_rate / bare_rate, 2) + "x", "-", true});
  record_summary(
    {"tiny-t2v on " + where + ", idle gap between jobs (max)",
     fixed(node.gap_max_us) + " us (mean " + fixed(node.gap_mean_us) + ")",
     "0 us", "-", "< 1000 us", node.gap_max_us < gap_target_us});
  return 0;
}
