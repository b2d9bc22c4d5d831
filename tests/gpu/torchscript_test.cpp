#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "gpu/torch_allocations.hpp"
#include "support/process.hpp"
#include "support/pipelines.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/torchscript_model.hpp"

using namespace vidnode;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path()
          / ("vidnode-ts-" + std::to_string(getpid()) + "-" + name))
    .string();
}

/// Writes the example TorchScript model (examples/toy_torchscript.cpp).
std::string toy_model(bool broken = false) {
  auto path = temp_path(broken ? "broken.pt" : "toy.pt");
  std::vector<std::string> argv = {TOY_TORCHSCRIPT_BIN, path};
  if (broken)
    argv.push_back("--broken");
  auto r = test::run_command(argv);
  INFO(r.err);
  REQUIRE(r.status == 0);
  return path;
}

runtime::job_spec toy_job(uint64_t seed) {
  runtime::job_spec spec;
  spec.model = "toy";
  spec.prompt = "a boat";
  spec.width = 64;
  spec.height = 32;
  spec.frames = 5;
  spec.steps = 3;
  spec.fps = 10;
  spec.seed = seed;
  return spec;
}

} // namespace

TEST_CASE("a TorchScript model that follows the contract makes frames of the "
          "requested shape, the same for the same seed",
          "[torch][torchscript]") {
  auto path = toy_model();
  std::string error;
  auto factory = gpu::torchscript_factory::open("toy", path, error);
  INFO(error);
  REQUIRE(factory);
  CHECK(factory->serves("toy"));
  CHECK_FALSE(factory->serves("tiny-t2v"));
  auto frames = test::generate_on_cpu(*factory, toy_job(1));
  CHECK(frames.frames == 5);
  CHECK(frames.width == 64);
  CHECK(frames.height == 32);
  CHECK(frames.fps == 10);
  CHECK(frames.rgb.size() == size_t{5} * 32 * 64 * 3);
  CHECK(test::generate_on_cpu(*factory, toy_job(1)).rgb == frames.rgb);
  CHECK(test::generate_on_cpu(*factory, toy_job(2)).rgb != frames.rgb);
  // The file's estimate_bytes: frames * height * width * 64 + 64 MiB.
  CHECK(factory->estimate_peak_bytes(toy_job(1))
        == uint64_t{5} * 32 * 64 * 64 + (64ull << 20));
  std::filesystem::remove(path);
}

TEST_CASE("a TorchScript model runs on one device: ranks above 1 are "
          "refused by validate and by begin_rank with invalid_request",
          "[torch][torchscript][ranks]") {
  auto path = toy_model();
  std::string error;
  auto factory = gpu::torchscript_factory::open("toy", path, error);
  INFO(error);
  REQUIRE(factory);
  auto spec = toy_job(1);
  spec.ranks = 2;
  auto why = factory->validate(spec);
  REQUIRE(why);
  CHECK_THAT(*why,
             Catch::StartsWith("ranks: ") && Catch::Contains("got ranks 2"));
  runtime::device_info cpu;
  cpu.kind = runtime::device_kind::cpu;
  cpu.memory_bytes = 8ull << 30;
  auto pipeline = factory->make("toy", cpu);
  pipeline->load(spec);
  gpu::device_time busy{0};
  try {
    pipeline->begin_rank(spec, 1, 0, 2, nullptr, busy);
    FAIL("nothing thrown");
  } catch (const gpu::job_error& e) {
    CHECK(e.code() == runtime::errc::invalid_request);
  }
  std::filesystem::remove(path);
}

TEST_CASE("a TorchScript file that breaks the contract, or is missing or not "
          "TorchScript at all, is refused with a clear error",
          "[torch][torchscript]") {
  std::string error;
  auto broken = toy_model(true);
  CHECK_FALSE(gpu::torchscript_factory::open("bad", broken, error));
  CHECK_THAT(error, Catch::Contains("lacks the method decode"));
  std::filesystem::remove(broken);
  CHECK_FALSE(
    gpu::torchscript_factory::open("gone", temp_path("missing.pt"), error));
  CHECK_THAT(error, Catch::Contains("cannot load"));
  auto garbage = temp_path("garbage.pt");
  std::ofstream{garbage} << "not a model";
  CHECK_FALSE(gpu::torchscript_factory::open("junk", garbage, error));
  CHECK_THAT(error, Catch::Contains("cannot load"));
  std::filesystem::remove(garbage);
}

TEST_CASE("a catalog refuses a TorchScript model under a name already taken",
          "[torch][torchscript]") {
  auto path = toy_model();
  gpu::catalog_options options;
  options.torchscript_models = {{"tiny-t2v", path}};
  std::string error;
  CHECK_FALSE(gpu::model_catalog::make(options, error));
  CHECK_THAT(error, Catch::Contains("already taken"));
  options.torchscript_models = {{"toy", path}};
  auto catalog = gpu::model_catalog::make(options, error);
  REQUIRE(catalog);
  CHECK(catalog->find("toy") != nullptr);
  CHECK(catalog->find("sim") != nullptr);
  std::filesystem::remove(path);
}

TEST_CASE("a TorchScript job that cannot allocate its tensors on a cpu device "
          "fails with out_of_memory, the bytes it asked for and only the "
          "allocator's line",
          "[torch][torchscript]") {
  auto path = temp_path("greedy.pt");
  test::write_greedy_model(path, test::unmappable_bytes);
  std::string error;
  auto factory = gpu::torchscript_factory::open("greedy", path, error);
  INFO(error);
  REQUIRE(factory);
  runtime::device_info cpu;
  cpu.kind = runtime::device_kind::cpu;
  cpu.memory_bytes = 8ull << 30;
  auto spec = toy_job(1);
  spec.model = "greedy";
  auto pipeline = factory->make(spec.model, cpu);
  pipeline->load(spec);
  gpu::device_time busy{0};
  auto run = pipeline->begin(spec, 1, busy);
  try {
    run->step(0);
    FAIL("nothing thrown");
  } catch (const gpu::out_of_memory& e) {
    CHECK(e.requested_bytes() == static_cast<uint64_t>(test::unmappable_bytes));
    std::string what = e.what();
    CHECK_THAT(what, Catch::StartsWith("RuntimeError: ")
                       && Catch::Contains(
                         "DefaultCPUAllocator: can't allocate "
                         "memory: you tried to allocate "
                         + std::to_string(test::unmappable_bytes) + " bytes"));
    CHECK(what.find('\n') == std::string::npos);
  }
  std::filesystem::remove(path);
}
