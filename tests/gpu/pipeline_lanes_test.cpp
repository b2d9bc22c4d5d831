// Pipelines shared by a device's lanes: begin() and the runs' calls from
// several threads at once, as the device worker makes them with
// --max-concurrency above 1 (gpu::enter_lane on each thread).

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "support/process.hpp"
#include "vidnode/gpu/lanes.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/torchscript_model.hpp"

using namespace vidnode;

namespace {

runtime::device_info cpu_device() {
  runtime::device_info device;
  device.kind = runtime::device_kind::cpu;
  device.memory_bytes = 8ull << 30;
  return device;
}

/// What one job made and measured.
struct job_outcome {
  std::vector<uint8_t> rgb;
  gpu::run_profile profile;
};

/// Runs `spec` to the end through `pipeline` on the calling thread.
job_outcome run_job(gpu::pipeline& pipeline, const runtime::job_spec& spec) {
  gpu::device_time busy{0};
  auto run = pipeline.begin(spec, 1, busy);
  for (int32_t i = 0; i < run->steps(); ++i)
    run->step(i);
  auto out = run->finish(busy);
  job_outcome outcome;
  if (out.video)
    outcome.rgb = std::move(out.video->rgb);
  outcome.profile = run->profile();
  return outcome;
}

/// Makes threads wait until all of them are ready, so that their jobs
/// start together.
class start_line {
public:
  explicit start_line(size_t threads) : waiting_(threads) {}

  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock{mutex_};
    if (--waiting_ == 0) {
      ready_.notify_all();
      return;
    }
    ready_.wait(lock, [&] { return waiting_ == 0; });
  }

private:
  std::mutex mutex_;
  std::condition_variable ready_;
  size_t waiting_;
};

/// Runs `specs` through one loaded `pipeline`, job i on lane i of a thread
/// of its own: all at once when `together`, else one after another (each
/// still on its lane's thread, so with the same intra-op threads). Any
/// exception from a job fails the test.
std::vector<job_outcome>
run_on_lanes(gpu::pipeline& pipeline,
             const std::vector<runtime::job_spec>& specs, bool together) {
  auto lanes = static_cast<int32_t>(specs.size());
  std::vector<job_outcome> outcomes(specs.size());
  std::vector<std::string> errors(specs.size());
  start_line start{together ? specs.size() : 1};
  auto lane = [&](size_t i) {
    gpu::enter_lane(cpu_device(), static_cast<int32_t>(i), lanes);
    if (together)
      start.arrive_and_wait();
    try {
      outcomes[i] = run_job(pipeline, specs[i]);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  };
  if (together) {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < specs.size(); ++i)
      threads.emplace_back(lane, i);
    for (auto& t : threads)
      t.join();
  } else {
    for (size_t i = 0; i < specs.size(); ++i)
      std::thread{lane, i}.join();
  }
  for (const auto& error : errors)
    CHECK(error.empty());
  return outcomes;
}

/// Runs `specs` alone, then at once, `rounds` times, and checks that every
/// job made the same frames both ways and measured its kernel time.
void check_lanes_agree(
  const std::function<std::unique_ptr<gpu::pipeline>()>& make,
  const std::vector<runtime::job_spec>& specs, int rounds) {
  auto alone_pipeline = make();
  auto alone = run_on_lanes(*alone_pipeline, specs, false);
  for (size_t i = 0; i < specs.size(); ++i) {
    INFO("job " << i << " alone");
    REQUIRE_FALSE(alone[i].rgb.empty());
    CHECK(alone[i].profile.kernel.count() > 0);
    CHECK(alone[i].profile.memory_measurement.count() == 0);
  }
  for (int round = 0; round < rounds; ++round) {
    // A fresh pipeline each round: its first calls (a TorchScript graph
    // executor's profiling and optimisation) race too.
    auto shared = make();
    auto together = run_on_lanes(*shared, specs, true);
    for (size_t i = 0; i < specs.size(); ++i) {
      INFO("round " << round << ", job " << i << " of " << specs.size()
                    << " at once");
      CHECK(together[i].rgb == alone[i].rgb);
      CHECK(together[i].profile.kernel.count() > 0);
    }
  }
}

runtime::job_spec tiny_job(uint64_t seed, const std::string& prompt) {
  runtime::job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = prompt;
  spec.width = 64;
  spec.height = 48;
  spec.frames = 4;
  spec.steps = 3;
  spec.fps = 8;
  spec.seed = seed;
  return spec;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path()
          / ("vidnode-lanes-" + std::to_string(getpid()) + "-" + name))
    .string();
}

} // namespace

TEST_CASE("tiny-t2v jobs run at once on the threads of one cpu pipeline make "
          "the frames each makes alone",
          "[torch][lanes]") {
  if (!gpu::torch_available()) {
    WARN("SKIPPED: this build has no libtorch");
    return;
  }
  gpu::tiny_t2v_factory factory;
  std::vector<runtime::job_spec> specs = {
    tiny_job(1, "a lighthouse at dusk"), tiny_job(2, "a lighthouse at dusk"),
    tiny_job(3, "a red fox in snow"), tiny_job(1, "a red fox in snow")};
  check_lanes_agree(
    [&] {
      auto pipeline = factory.make("tiny-t2v", cpu_device());
      pipeline->load(specs.front());
      return pipeline;
    },
    specs, 3);
}

TEST_CASE("TorchScript jobs run at once on the threads of one cpu pipeline "
          "make the frames each makes alone",
          "[torch][torchscript][lanes]") {
  auto path = temp_path("toy.pt");
  auto made = test::run_command({TOY_TORCHSCRIPT_BIN, path});
  INFO(made.err);
  REQUIRE(made.status == 0);
  std::string error;
  auto factory = gpu::torchscript_factory::open("toy", path, error);
  INFO(error);
  REQUIRE(factory);
  std::vector<runtime::job_spec> specs;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    runtime::job_spec spec;
    spec.model = "toy";
    spec.prompt = "job " + std::to_string(seed * 11);
    spec.width = 64;
    spec.height = 32;
    spec.frames = 5;
    spec.steps = 12;
    spec.fps = 10;
    spec.seed = seed;
    specs.push_back(spec);
  }
  check_lanes_agree(
    [&] {
      auto pipeline = factory->make("toy", cpu_device());
      pipeline->load(specs.front());
      return pipeline;
    },
    specs, 3);
  std::filesystem::remove(path);
}
