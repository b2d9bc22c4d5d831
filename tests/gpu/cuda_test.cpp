// [gpu] tests: they need a CUDA device and a build of libtorch with CUDA.
// Without one, the executable says why and exits 77, which ctest reports as
// skipped. scripts/gpu-check.sh runs them on a GPU machine.

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include <ATen/ATen.h>

#include <spdlog/spdlog.h>

#include "../../gpu/src/host_costs.hpp"
#include "support/process.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/collectives.hpp"
#include "vidnode/gpu/cuda.hpp"
#include "vidnode/gpu/lanes.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/torchscript_model.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

using namespace vidnode;
using runtime::job_result;
using runtime::job_spec;
using runtime::job_state;

namespace {

struct test_config : caf::actor_system_config {
  test_config() {
    actors::add_types(*this);
  }
};

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path()
             / ("vidnode-cuda-test-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::create_directories(dir);
  return dir.string();
}

/// Runs `specs` at once through `node` and returns their results in order.
std::vector<job_result> execute_all(caf::actor_system& sys,
                                    const runtime::admission_actor& admission,
                                    const std::vector<job_spec>& specs) {
  caf::scoped_actor self{sys};
  std::vector<job_result> results(specs.size());
  // Every request is sent before the first answer is awaited.
  using handle =
    decltype(self->request(admission, std::chrono::minutes{5},
                           runtime::execute_atom::value, specs.front()));
  std::vector<handle> pending;
  for (const auto& spec : specs)
    pending.push_back(self->request(admission, std::chrono::minutes{5},
                                    runtime::execute_atom::value, spec));
  for (size_t i = 0; i < pending.size(); ++i)
    pending[i].receive([&](const job_result& r) { results[i] = r; },
                       [&](const caf::error& err) {
                         results[i].state = job_state::failed;
                         results[i].error = err;
                       });
  return results;
}

runtime::device_status device_status_of(caf::actor_system& sys,
                                        const runtime::admission_actor& a) {
  caf::scoped_actor self{sys};
  runtime::device_status found;
  self->request(a, std::chrono::seconds{10}, runtime::nodes_atom::value)
    .receive(
      [&](const std::vector<runtime::device_status>& all) {
        REQUIRE_FALSE(all.empty());
        found = all.front();
      },
      [&](const caf::error& err) { FAIL(runtime::describe(err)); });
  return found;
}

runtime::device_info cuda0() {
  runtime::device_info device;
  device.kind = runtime::device_kind::cuda;
  device.ordinal = 0;
  device.memory_bytes = 16ull << 30;
  return device;
}

job_spec tiny_job(uint64_t seed) {
  job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = "a red kite over the sea";
  spec.width = 256;
  spec.height = 256;
  spec.frames = 16;
  spec.steps = 8;
  spec.fps = 8;
  spec.seed = seed;
  return spec;
}

double ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double us(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

/// What one job run through the pipeline API made and measured.
struct pipeline_job {
  gpu::job_output output;
  gpu::run_profile profile;
  /// Wall time of its step() calls.
  std::chrono::nanoseconds steps{0};
  /// What the steps synchronised, if they did (host_costs).
  std::optional<std::string> step_syncs;
};

/// Runs `spec` through `pipeline` on the calling thread, its steps under
/// libtorch's synchronisation check when `check_syncs`.
pipeline_job run_pipeline_job(gpu::pipeline& pipeline, const job_spec& spec,
                              bool check_syncs) {
  pipeline_job job;
  gpu::device_time busy{0};
  auto run = pipeline.begin(spec, 1, busy);
  auto steps = [&] {
    for (int32_t i = 0; i < run->steps(); ++i)
      run->step(i);
  };
  auto started = std::chrono::steady_clock::now();
  if (check_syncs)
    job.step_syncs = gpu::host_costs::synchronisations_in(steps);
  else
    steps();
  job.steps = std::chrono::steady_clock::now() - started;
  job.output = run->finish(busy);
  job.profile = run->profile();
  return job;
}

/// The largest difference between two videos' bytes (255 if their sizes
/// differ).
int max_difference(const gpu::job_output& a, const gpu::job_output& b) {
  if (!a.video || !b.video || a.video->rgb.size() != b.video->rgb.size())
    return 255;
  int most = 0;
  for (size_t i = 0; i < a.video->rgb.size(); ++i)
    most = std::max(most, std::abs(int{a.video->rgb[i]} - b.video->rgb[i]));
  return most;
}

int32_t loads_of(const runtime::device_status& device,
                 const std::string& model) {
  for (const auto& m : device.models)
    if (m.model == model)
      return m.loads;
  return 0;
}

} // namespace

TEST_CASE("tiny-t2v runs on cuda:0, its measured peak becomes the next "
          "job's reservation",
          "[gpu]") {
  test_config cfg;
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.devices = "cuda:0";
  settings.output_dir = temp_dir("tiny");
  auto node = actors::local_node::start(sys, settings);
  REQUIRE(node);
  job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = "a red kite over the sea";
  spec.width = 256;
  spec.height = 256;
  spec.frames = 16;
  spec.steps = 8;
  spec.seed = 7;
  auto first = execute_all(sys, (*node)->admission(), {spec}).front();
  INFO(runtime::describe(first.error));
  REQUIRE(first.state == job_state::succeeded);
  CHECK(first.device == "cuda:0");
  CHECK(std::filesystem::exists(first.output));
  auto second = execute_all(sys, (*node)->admission(), {spec}).front();
  REQUIRE(second.state == job_state::succeeded);
  // The first reserved the model's formula; the second what the first
  // measured on the device plus headroom.
  CHECK(second.reserved_bytes != first.reserved_bytes);
  CHECK(second.reserved_bytes > 0);
  auto device = device_status_of(sys, (*node)->admission());
  CHECK(loads_of(device, "tiny-t2v") == 1);
  // The loaded weights are out of jobs' budget.
  CHECK(device.memory_reserved > 0);
  std::printf("[gpu] tiny-t2v 256x256x16, 8 steps on cuda:0: declared %s, "
              "measured and reserved next %s, weights resident %s\n",
              runtime::format_bytes(first.reserved_bytes).c_str(),
              runtime::format_bytes(second.reserved_bytes).c_str(),
              runtime::format_bytes(device.memory_reserved).c_str());
  (*node)->stop();
  std::filesystem::remove_all(settings.output_dir);
}

TEST_CASE("a real CUDA out-of-memory error is survived: the job is retried "
          "with a raised estimate and succeeds, nothing else fails, the "
          "model loads once",
          "[gpu]") {
  auto present = gpu::cuda_devices();
  REQUIRE_FALSE(present.empty());
  // Four jobs of a third of the free memory each cannot all fit; the model
  // declares 1 GiB per job, so admission lets four in at once.
  auto working_set_gib = static_cast<double>(present.front().free_bytes) / 3.2
                         / static_cast<double>(1ull << 30);
  auto dir = temp_dir("oom");
  auto model = dir + "/heavy.pt";
  char working_set[32];
  std::snprintf(working_set, sizeof(working_set), "%.2f", working_set_gib);
  auto made = test::run_command({TOY_TORCHSCRIPT_BIN, model, "--working-set",
                                 working_set, "--declare", "1"});
  INFO(made.err);
  REQUIRE(made.status == 0);

  test_config cfg;
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.devices = "cuda:0";
  settings.max_concurrency = 4;
  settings.max_attempts = 3;
  settings.output_dir = dir + "/out";
  settings.torchscript_models = {{"heavy", model}};
  auto node = actors::local_node::start(sys, settings);
  INFO((node ? std::string{} : runtime::describe(node.error())));
  REQUIRE(node);
  std::vector<job_spec> specs;
  for (uint64_t i = 0; i < 6; ++i) {
    job_spec spec;
    spec.model = "heavy";
    spec.prompt = "job " + std::to_string(i);
    spec.width = 256;
    spec.height = 256;
    spec.frames = 16;
    spec.steps = 4;
    spec.seed = i;
    specs.push_back(spec);
  }
  auto results = execute_all(sys, (*node)->admission(), specs);
  int32_t attempts = 0;
  for (const auto& r : results) {
    INFO("job " << r.id.value << ": " << runtime::to_string(r.state) << " "
                << runtime::describe(r.error));
    CHECK(r.state == job_state::succeeded);
    attempts += r.attempts;
  }
  auto device = device_status_of(sys, (*node)->admission());
  INFO("last error: " << device.last_error);
  CHECK(attempts > 6);
  CHECK(device.restarts >= 1);
  CHECK_THAT(device.last_error, Catch::Contains("out_of_memory"));
  CHECK(loads_of(device, "heavy") == 1);
  std::printf("[gpu] OOM survival: 6 jobs of %s GiB working set each, 1 GiB "
              "declared, concurrency 4: %d attempts, %d worker restart(s), "
              "model loads %d, all succeeded: %s\n",
              working_set, attempts, device.restarts, loads_of(device, "heavy"),
              std::all_of(results.begin(), results.end(),
                          [](const job_result& r) {
                            return r.state == job_state::succeeded;
                          })
                ? "yes"
                : "no");
  (*node)->stop();
  std::filesystem::remove_all(dir);
}

TEST_CASE("one NCCL rank on cuda:0 computes what one Gloo rank computes on "
          "cpu; a rank that never joins fails the join within the timeout, "
          "and a fresh gang works afterwards",
          "[gpu][collectives]") {
  using namespace std::chrono_literals;
  runtime::device_info gpu;
  gpu.kind = runtime::device_kind::cuda;
  runtime::device_info cpu;
  cpu.kind = runtime::device_kind::cpu;
  REQUIRE(gpu::collective_backend_for(gpu.kind) == "nccl");
  auto nccl_host = gpu::host_rendezvous(gpu, "127.0.0.1");
  auto nccl = gpu::join_gang(gpu, nccl_host->address(), 0, 1, 30s);
  CHECK(std::string{nccl->backend()} == "nccl");
  // The reference: one Gloo rank on cpu where the build has Gloo (a torch
  // wheel may ship no Gloo headers); else what one rank's collectives
  // return by definition.
  std::unique_ptr<gpu::rendezvous_host> gloo_host;
  std::unique_ptr<gpu::communicator> gloo;
  if (gpu::collective_backend_for(cpu.kind) == "gloo") {
    gloo_host = gpu::host_rendezvous(cpu, "127.0.0.1");
    gloo = gpu::join_gang(cpu, gloo_host->address(), 0, 1, 30s);
  } else {
    std::printf("[gpu] no Gloo in this build: NCCL is checked against "
                "world-1 identities\n");
  }
  auto cuda0 = at::Device(at::kCUDA, 0);
  auto close = [](const at::Tensor& on_gpu, const at::Tensor& on_cpu) {
    return at::allclose(on_gpu.cpu(), on_cpu, 0, 1e-6);
  };
  for (auto type : {at::kFloat, at::kBFloat16}) {
    INFO("dtype " << c10::toString(type));
    auto x = at::rand({8, 16}).to(type);
    CHECK(close(nccl->all_gather(x.to(cuda0)), gloo ? gloo->all_gather(x) : x));
    CHECK(close(nccl->all_to_all(x.to(cuda0)), gloo ? gloo->all_to_all(x) : x));
    auto summed_gpu = x.to(cuda0);
    auto summed_cpu = x.clone();
    nccl->all_reduce_sum(summed_gpu);
    if (gloo)
      gloo->all_reduce_sum(summed_cpu);
    CHECK(close(summed_gpu, summed_cpu));
  }
  nccl->barrier();
  if (gloo)
    gloo->barrier();

  auto mib = at::rand({4, 65536}, at::TensorOptions().device(cuda0));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i)
    nccl->all_reduce_sum(mib);
  std::printf("[gpu] nccl, 1 rank, all_reduce_sum of 1 MiB: %.3f ms\n",
              std::chrono::duration<double, std::milli>(
                std::chrono::steady_clock::now() - start)
                  .count()
                / 10);

  auto lonely = gpu::host_rendezvous(gpu, "127.0.0.1");
  start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(gpu::join_gang(gpu, lonely->address(), 0, 2, 2s),
                      Catch::Contains("did not join within 2000 ms"));
  auto took =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
  std::printf("[gpu] nccl, world 2 with 1 rank, timeout 2 s: the join "
              "failed after %.2f s\n",
              took);
  CHECK(took < 10);

  nccl.reset();
  auto again_host = gpu::host_rendezvous(gpu, "127.0.0.1");
  auto again = gpu::join_gang(gpu, again_host->address(), 0, 1, 30s);
  auto ones = at::ones({3}, at::TensorOptions().device(cuda0));
  again->all_reduce_sum(ones);
  CHECK(close(ones, at::ones({3})));
}

TEST_CASE("the host synchronisations and measurements on the step path cost "
          "microseconds on cuda:0",
          "[gpu][step_path]") {
  std::string why;
  auto costs = gpu::host_costs::measure(0, 200, why);
  INFO(why);
  REQUIRE(costs);
  std::printf("[gpu] host costs on cuda:0, per call, on a lane's idle "
              "stream: memory window (registry, resetPeakStats, 2x "
              "getDeviceStats) %.1f us; step events (2x cudaEventRecord) "
              "%.1f us; event read at finish %.1f us per step; idle stream "
              "sync %.1f us; 256 KiB copy to the device (begin) %.1f us; 3 "
              "MiB of frames to the host (finish) %.1f us\n",
              us(costs->memory_window), us(costs->step_events),
              us(costs->event_read), us(costs->idle_stream_sync),
              us(costs->begin_copy), us(costs->frames_copy));
  CHECK(costs->memory_window < std::chrono::milliseconds{1});
  CHECK(costs->step_events < std::chrono::milliseconds{1});
}

TEST_CASE("tiny-t2v's and a TorchScript model's steps synchronise nothing "
          "on cuda:0, and their runs report kernel time, measurement time "
          "and their peak",
          "[gpu][step_path]") {
  gpu::tiny_t2v_factory tiny;
  auto spec = tiny_job(7);
  auto pipeline = tiny.make(spec.model, cuda0());
  pipeline->load(spec);
  run_pipeline_job(*pipeline, spec, false);
  auto job = run_pipeline_job(*pipeline, spec, true);
  INFO(job.step_syncs.value_or(""));
  CHECK_FALSE(job.step_syncs);
  CHECK(job.output.peak_bytes > 0);
  CHECK(job.profile.kernel.count() > 0);
  CHECK(job.profile.memory_measurement.count() > 0);
  std::printf("[gpu] tiny-t2v 256x256x16, 8 steps, one lane: steps %.2f ms "
              "wall, kernel %.2f ms (%.0f%%), memory measurement %.1f us per "
              "job, peak %s, step synchronisations: %s\n",
              ms(job.steps), ms(job.profile.kernel),
              100.0 * ms(job.profile.kernel) / std::max(ms(job.steps), 1e-9),
              us(job.profile.memory_measurement),
              runtime::format_bytes(job.output.peak_bytes).c_str(),
              job.step_syncs ? job.step_syncs->c_str() : "none");

  auto dir = temp_dir("syncs");
  for (bool heavy : {true, false}) {
    auto model = dir + (heavy ? "/heavy.pt" : "/toy.pt");
    std::vector<std::string> argv = {TOY_TORCHSCRIPT_BIN, model};
    if (heavy)
      argv.insert(argv.end(), {"--weights", "0.0625", "--working-set", "0.05",
                               "--matmuls-per-step", "4"});
    auto made = test::run_command(argv);
    INFO(made.err);
    REQUIRE(made.status == 0);
    std::string error;
    auto factory = gpu::torchscript_factory::open("toy", model, error);
    INFO(error);
    REQUIRE(factory);
    job_spec toy = spec;
    toy.model = "toy";
    auto scripted = factory->make("toy", cuda0());
    scripted->load(toy);
    run_pipeline_job(*scripted, toy, false);
    auto toy_job = run_pipeline_job(*scripted, toy, true);
    // The example's plain denoise copies its CPU conditioning to the
    // device in every step: the model's synchronisation, not vidnode's.
    if (heavy) {
      INFO(toy_job.step_syncs.value_or(""));
      CHECK_FALSE(toy_job.step_syncs);
    }
    CHECK(toy_job.profile.kernel.count() > 0);
    std::printf("[gpu] TorchScript %s, 8 steps: steps %.2f ms wall, kernel "
                "%.2f ms, memory measurement %.1f us per job, peak %s, step "
                "synchronisations: %s\n",
                heavy ? "toy_torchscript --matmuls-per-step 4"
                      : "toy_torchscript (plain)",
                ms(toy_job.steps), ms(toy_job.profile.kernel),
                us(toy_job.profile.memory_measurement),
                runtime::format_bytes(toy_job.output.peak_bytes).c_str(),
                toy_job.step_syncs ? toy_job.step_syncs->substr(0, 120).c_str()
                                   : "none");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("two lanes on cuda:0 make the frames each job makes alone; a job "
          "whose measurements another lane overlapped reports no peak",
          "[gpu][lanes]") {
  gpu::tiny_t2v_factory tiny;
  std::vector<job_spec> specs = {tiny_job(1), tiny_job(2)};
  auto pipeline = tiny.make("tiny-t2v", cuda0());
  pipeline->load(specs.front());
  auto run_lanes = [&](bool together) {
    std::vector<pipeline_job> jobs(specs.size());
    std::vector<std::string> errors(specs.size());
    auto lane = [&](size_t i) {
      gpu::enter_lane(cuda0(), static_cast<int32_t>(i), 2);
      try {
        jobs[i] = run_pipeline_job(*pipeline, specs[i], false);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    };
    std::vector<std::thread> threads;
    for (size_t i = 0; i < specs.size(); ++i) {
      threads.emplace_back(lane, i);
      if (!together)
        threads.back().join();
    }
    for (auto& t : threads)
      if (t.joinable())
        t.join();
    for (const auto& error : errors)
      CHECK(error.empty());
    return jobs;
  };
  run_lanes(false);
  auto alone = run_lanes(false);
  auto started = std::chrono::steady_clock::now();
  auto together = run_lanes(true);
  auto wall = std::chrono::steady_clock::now() - started;
  int known = 0;
  std::chrono::nanoseconds kernel{0};
  for (size_t i = 0; i < specs.size(); ++i) {
    INFO("job " << i);
    CHECK(max_difference(together[i].output, alone[i].output) <= 1);
    auto peak = together[i].output.peak_bytes;
    // Exact when no other lane overlapped it, up to what a stream's first
    // use allocates and keeps (cuBLAS's workspace for the stream).
    auto alone_peak = alone[i].output.peak_bytes;
    CHECK(alone_peak > 0);
    auto apart = peak > alone_peak ? peak - alone_peak : alone_peak - peak;
    CHECK((peak == 0 || apart <= (256ull << 20)));
    known += peak > 0 ? 1 : 0;
    kernel += together[i].profile.kernel;
    CHECK(together[i].profile.kernel.count() > 0);
  }
  std::printf("[gpu] tiny-t2v 256x256x16, 8 steps, 2 lanes at once: %.2f s "
              "wall, kernel time %.2f s summed over the lanes; peaks known "
              "for %d of 2 jobs (alone: %s)\n",
              std::chrono::duration<double>(wall).count(), ms(kernel) / 1000.0,
              known, runtime::format_bytes(alone[0].output.peak_bytes).c_str());
}

int main(int argc, char** argv) {
  spdlog::set_level(std::getenv("VIDNODE_TEST_LOG")
                      ? spdlog::level::from_str(std::getenv("VIDNODE_TEST_LOG"))
                      : spdlog::level::warn);
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::string{argv[i]}.rfind("--list", 0) == 0)
      listing = true;
  if (!listing) {
    if (!gpu::cuda_supported()) {
      std::printf("SKIPPED: this build has no CUDA (libtorch without CUDA); "
                  "scripts/gpu-check.sh runs these on a GPU machine\n");
      return 77;
    }
    if (gpu::cuda_devices().empty()) {
      std::printf("SKIPPED: no CUDA device is visible to this process\n");
      return 77;
    }
  }
  return Catch::Session().run(argc, argv);
}
