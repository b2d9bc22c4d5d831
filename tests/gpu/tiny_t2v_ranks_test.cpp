// tiny-t2v as a gang: Ulysses sequence parallelism over cpu devices, each
// rank on its own thread with its own pipeline and a real Gloo
// communicator on 127.0.0.1.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../gpu/src/tiny_t2v_hooks.hpp"
#include "vidnode/gpu/collectives.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"

using namespace vidnode;
using namespace std::chrono_literals;

namespace {

runtime::device_info cpu(int32_t rank) {
  runtime::device_info device;
  device.index = rank;
  device.kind = runtime::device_kind::cpu;
  device.ordinal = rank;
  device.memory_bytes = 8ull << 30;
  return device;
}

runtime::job_spec gang_job(int32_t ranks) {
  runtime::job_spec spec;
  spec.model = "tiny-t2v";
  spec.prompt = "waves breaking on a rocky shore";
  spec.width = 64;
  spec.height = 64;
  spec.frames = 8;
  spec.steps = 4;
  spec.fps = 8;
  spec.seed = 1234;
  spec.ranks = ranks;
  return spec;
}

/// What a gang made: the whole final latent (the ranks' parts in rank
/// order) and rank 0's video.
struct gang_outcome {
  std::vector<float> latent;
  std::optional<gpu::video_frames> video;
  /// Whether a rank other than 0 returned a video.
  bool others_returned_video = false;
};

/// One rank's part: its communicator and its pipeline's run.
struct rank_outcome {
  std::vector<float> latent;
  gpu::job_output output;
};

/// Joins the gang of rank 0's `address` as `rank` of `world`.
std::shared_ptr<gpu::communicator> join(const std::string& address,
                                        int32_t rank, int32_t world) {
  return gpu::join_gang(cpu(rank), address, rank, world, 30s);
}

/// Runs `spec` on `world` cpu devices: one rank (begin) when `world` is 1,
/// else `world` ranks on threads (begin_rank), each with its own pipeline.
gang_outcome run_gang(const runtime::job_spec& spec, int32_t world) {
  gpu::tiny_t2v_factory factory;
  auto run_rank = [&](int32_t rank, const std::string& address) {
    auto pipeline = factory.make("tiny-t2v", cpu(rank));
    pipeline->load(spec);
    gpu::device_time busy{0};
    auto run = world == 1
                 ? pipeline->begin(spec, 1, busy)
                 : pipeline->begin_rank(spec, 1, rank, world,
                                        join(address, rank, world), busy);
    for (int32_t i = 0; i < run->steps(); ++i)
      run->step(i);
    rank_outcome out;
    out.latent = gpu::tiny_t2v_hooks::latent(*run);
    out.output = run->finish(busy);
    return out;
  };
  std::vector<rank_outcome> ranks;
  if (world == 1) {
    ranks.push_back(run_rank(0, {}));
  } else {
    auto host = gpu::host_rendezvous(cpu(0), "127.0.0.1");
    std::vector<std::future<rank_outcome>> pending;
    for (int32_t rank = 0; rank < world; ++rank)
      pending.push_back(
        std::async(std::launch::async, run_rank, rank, host->address()));
    for (auto& rank : pending)
      ranks.push_back(rank.get());
  }
  gang_outcome out;
  for (size_t rank = 0; rank < ranks.size(); ++rank) {
    out.latent.insert(out.latent.end(), ranks[rank].latent.begin(),
                      ranks[rank].latent.end());
    if (rank > 0 && ranks[rank].output.video)
      out.others_returned_video = true;
  }
  out.video = std::move(ranks[0].output.video);
  return out;
}

/// Whether cpu devices can form a gang here (WARNs the reason if not).
bool have_cpu_gangs() {
  if (!gpu::torch_available()) {
    WARN("SKIPPED: this build has no libtorch");
    return false;
  }
  if (gpu::collective_backend_for(runtime::device_kind::cpu).empty()) {
    WARN("SKIPPED: this build has no Gloo backend (libgloo-dev)");
    return false;
  }
  return true;
}

float max_abs_difference(const std::vector<float>& x,
                         const std::vector<float>& y) {
  float most = 0;
  for (size_t i = 0; i < x.size(); ++i)
    most = std::max(most, std::abs(x[i] - y[i]));
  return most;
}

int max_level_difference(const std::vector<uint8_t>& x,
                         const std::vector<uint8_t>& y) {
  int most = 0;
  for (size_t i = 0; i < x.size(); ++i)
    most = std::max(most, std::abs(int{x[i]} - int{y[i]}));
  return most;
}

} // namespace

TEST_CASE("a gang of 2 or 4 tiny-t2v ranks makes the video one rank makes: "
          "latents within 1e-4 and frames within one level",
          "[torch][ranks]") {
  if (!have_cpu_gangs())
    return;
  auto single = run_gang(gang_job(1), 1);
  REQUIRE(single.video);
  REQUIRE(single.latent.size() == size_t{8} * 4 * 8 * 8);
  for (int32_t world : {2, 4}) {
    INFO(world << " ranks");
    auto gang = run_gang(gang_job(world), world);
    REQUIRE(gang.video);
    CHECK_FALSE(gang.others_returned_video);
    REQUIRE(gang.latent.size() == single.latent.size());
    auto latent_difference = max_abs_difference(gang.latent, single.latent);
    CHECK(latent_difference <= 1e-4f);
    CHECK(gang.video->frames == 8);
    CHECK(gang.video->width == 64);
    CHECK(gang.video->height == 64);
    CHECK(gang.video->fps == 8);
    REQUIRE(gang.video->rgb.size() == single.video->rgb.size());
    auto level_difference =
      max_level_difference(gang.video->rgb, single.video->rgb);
    CHECK(level_difference <= 1);
    std::printf("[ranks] tiny-t2v 64x64, 8 frames, 4 steps as %d Gloo ranks "
                "against one: latent max abs difference %g, frames max %d "
                "levels\n",
                world, static_cast<double>(latent_difference),
                level_difference);
  }
}

TEST_CASE("tiny-t2v refuses ranks that do not divide its 4 attention heads "
          "and the frames",
          "[torch][ranks]") {
  gpu::tiny_t2v_factory factory;
  auto spec = gang_job(3);
  spec.frames = 16;
  auto why = factory.validate(spec);
  REQUIRE(why);
  CHECK(*why
        == "ranks: tiny-t2v splits 4 attention heads and the frames over the "
           "ranks; ranks must divide 4 and frames (got ranks 3, frames 16)");
  spec.ranks = 8;
  CHECK(factory.validate(spec));
  spec.ranks = 4;
  spec.frames = 6;
  CHECK(factory.validate(spec));
  spec.ranks = 2;
  CHECK_FALSE(factory.validate(spec));
  spec.ranks = 1;
  spec.frames = 7;
  CHECK_FALSE(factory.validate(spec));
  // Each rank of a gang holds less than one rank alone.
  CHECK(factory.estimate_peak_bytes(gang_job(4))
        < factory.estimate_peak_bytes(gang_job(1)));
}

namespace {

/// A pipeline that does not override begin_rank.
class single_device_pipeline : public gpu::pipeline {
public:
  gpu::device_time load(const runtime::job_spec&) override {
    return gpu::device_time{0};
  }
  std::unique_ptr<gpu::job_run> begin(const runtime::job_spec&, int32_t,
                                      gpu::device_time&) override {
    return nullptr;
  }
};

runtime::errc refusal_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const gpu::job_error& e) {
    return e.code();
  }
  return runtime::errc{};
}

} // namespace

TEST_CASE("begin_rank refuses a gang with invalid_request where the pipeline "
          "does not run one, and tiny-t2v without a communicator for every "
          "rank",
          "[torch][ranks]") {
  gpu::device_time busy{0};
  single_device_pipeline plain;
  CHECK(
    refusal_of([&] { plain.begin_rank(gang_job(2), 1, 0, 2, nullptr, busy); })
    == runtime::errc::invalid_request);
  if (!gpu::torch_available()) {
    WARN("skipped: this build has no libtorch");
    return;
  }
  gpu::tiny_t2v_factory factory;
  auto pipeline = factory.make("tiny-t2v", cpu(0));
  pipeline->load(gang_job(2));
  CHECK(refusal_of(
          [&] { pipeline->begin_rank(gang_job(2), 1, 0, 2, nullptr, busy); })
        == runtime::errc::invalid_request);
  auto odd = gang_job(3);
  CHECK(refusal_of([&] { pipeline->begin_rank(odd, 1, 0, 3, nullptr, busy); })
        == runtime::errc::invalid_request);
  CHECK(refusal_of(
          [&] { pipeline->begin_rank(gang_job(2), 1, 2, 2, nullptr, busy); })
        == runtime::errc::invalid_request);
  // One rank needs no communicator: begin_rank(0 of 1) is begin.
  auto run = pipeline->begin_rank(gang_job(1), 1, 0, 1, nullptr, busy);
  REQUIRE(run);
  CHECK(run->steps() == 4);
}

TEST_CASE("a rank whose communicator goes away mid-job makes the other "
          "rank's next step throw collective_error promptly",
          "[torch][ranks]") {
  if (!have_cpu_gangs())
    return;
  gpu::tiny_t2v_factory factory;
  auto spec = gang_job(2);
  auto host = gpu::host_rendezvous(cpu(0), "127.0.0.1");
  auto address = host->address();
  auto leaver = std::async(std::launch::async, [&] {
    auto pipeline = factory.make("tiny-t2v", cpu(1));
    pipeline->load(spec);
    gpu::device_time busy{0};
    auto run = pipeline->begin_rank(spec, 1, 1, 2, join(address, 1, 2), busy);
    run->step(0);
    run.reset(); // the run held the only reference to the communicator
  });
  auto pipeline = factory.make("tiny-t2v", cpu(0));
  pipeline->load(spec);
  gpu::device_time busy{0};
  auto run = pipeline->begin_rank(spec, 1, 0, 2, join(address, 0, 2), busy);
  run->step(0);
  leaver.get(); // rank 1 has left

  auto started = std::chrono::steady_clock::now();
  std::string what;
  try {
    run->step(1);
  } catch (const gpu::collective_error& e) {
    what = e.what();
  }
  std::chrono::duration<double> took =
    std::chrono::steady_clock::now() - started;
  std::printf("[ranks] rank 1 left after step 0: rank 0's step 1 failed "
              "after %.3f s (timeout 30 s): %s\n",
              took.count(), what.c_str());
  CHECK_FALSE(what.empty());
  CHECK(took < 10s);
}
