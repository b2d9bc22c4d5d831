/// @file
/// The burst that a serverless Python handler loses (../shared/anchors/,
/// copied as bench/serverless_handler_baseline.py): 20 simultaneous
/// requests on one GPU, each holding a 10 GiB working set and doing 2,000
/// bf16 matrix products with a model of 2 GiB of weights. Here the model is
/// a TorchScript file that does the same work (examples/toy_torchscript.cpp
/// --weights 2 --working-set 10 --matmuls-per-step 100, 20 steps), served by
/// a node with one cuda device:
///
/// - with vidnode's defaults (one job at a time per device);
/// - with max-concurrency 8 and no memory estimate from the model (1 GiB
///   assumed), so admission lets too much in, jobs run out of memory, and
///   the learned estimates and retries must save every one of them.
///
/// It prints jobs succeeded and failed, out-of-memory errors, model loads
/// and the makespan, for scripts/gpu-check.sh to set beside the baseline's
/// run on the same machine. Needs a CUDA device; says why and exits 0
/// without one.

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/cuda.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"

#include "measurement.hpp"
#include "support/process.hpp"

namespace vidnode::bench {
namespace {

constexpr size_t burst = 20;

struct burst_outcome {
  size_t succeeded = 0;
  size_t failed = 0;
  int32_t out_of_memory = 0;
  int32_t loads = 0;
  double makespan_s = 0;
  double first_answer_s = 0;
};

burst_outcome run_burst(const std::string& model, int32_t concurrency,
                        const std::filesystem::path& dir) {
  net::process_config cfg;
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.devices = "cuda:0";
  settings.max_concurrency = concurrency;
  settings.max_attempts = 5;
  settings.output_dir = (dir / "out").string();
  settings.torchscript_models = {{"handler", model}};
  auto node = actors::local_node::start(sys, settings);
  if (!node) {
    std::cerr << "bench_gpu_burst: " << runtime::describe(node.error()) << "\n";
    std::exit(1);
  }
  caf::scoped_actor self{sys};
  auto started = clock_type::now();
  for (size_t i = 0; i < burst; ++i) {
    runtime::job_spec spec;
    spec.model = "handler";
    spec.prompt = "request " + std::to_string(i);
    spec.width = 64;
    spec.height = 64;
    spec.frames = 8;
    spec.steps = 20;
    spec.seed = i;
    self->send((*node)->admission(), runtime::execute_atom::value, spec);
  }
  burst_outcome out;
  for (size_t i = 0; i < burst; ++i)
    self->receive(
      [&](runtime::job_result& r) {
        if (out.first_answer_s == 0)
          out.first_answer_s =
            std::chrono::duration<double>(clock_type::now() - started).count();
        if (r.state == runtime::job_state::succeeded)
          ++out.succeeded;
        else
          ++out.failed;
      },
      [&](caf::error&) { ++out.failed; });
  out.makespan_s =
    std::chrono::duration<double>(clock_type::now() - started).count();
  self
    ->request((*node)->admission(), std::chrono::seconds{10},
              runtime::nodes_atom::value)
    .receive(
      [&](const std::vector<runtime::device_status>& devices) {
        for (const auto& device : devices) {
          out.out_of_memory += device.restarts;
          for (const auto& m : device.models)
            if (m.model == "handler")
              out.loads += m.loads;
        }
      },
      [](caf::error&) {});
  (*node)->stop();
  return out;
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  std::cout << "## bench_gpu_burst\n\n";
  if (vidnode::gpu::cuda_devices().empty()) {
    std::cout << "skipped: no CUDA device (or a build without CUDA)\n\n";
    return 0;
  }
  auto dir = std::filesystem::temp_directory_path()
             / ("vidnode-bench-gpu-burst-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto model = (dir / "handler.pt").string();
  auto made = vidnode::test::run_command(
    {TOY_TORCHSCRIPT_BIN, model, "--weights", "2", "--working-set", "10",
     "--matmuls-per-step", "100", "--declare", "0"},
    std::chrono::minutes{5});
  if (made.status != 0) {
    std::cerr << "bench_gpu_burst: writing the model failed: " << made.err
              << "\n";
    return 1;
  }
  markdown_table table{{"run", "ok", "failed", "out of memory", "model loads",
                        "first answer s", "makespan s"}};
  auto add = [&](const std::string& name, const burst_outcome& o) {
    table.add({name, std::to_string(o.succeeded), std::to_string(o.failed),
               std::to_string(o.out_of_memory), std::to_string(o.loads),
               fixed(o.first_answer_s, 2), fixed(o.makespan_s, 2)});
    std::cout << "vidnode " << name << ": ok=" << o.succeeded
              << " failed=" << o.failed << " oom=" << o.out_of_memory
              << " model_loads=" << o.loads
              << " makespan=" << fixed(o.makespan_s, 2) << "s\n";
  };
  add("defaults (max-concurrency 1)", run_burst(model, 1, dir));
  add("max-concurrency 8, no estimate", run_burst(model, 8, dir));
  std::cout << "\n";
  table.print("20 simultaneous handler-sized jobs (2 GiB weights, 10 GiB "
              "working set, 2,000 bf16 8192x4096x4096 products) on cuda:0");
  std::filesystem::remove_all(dir);
  (void)argc;
  (void)argv;
  return 0;
}
