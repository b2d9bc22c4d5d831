#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/gpu/devices.hpp"

using vidnode::gpu::default_sim_memory_bytes;
using vidnode::gpu::parse_devices;
using vidnode::runtime::device_info;
using vidnode::runtime::device_kind;

namespace {

std::vector<device_info> parsed(const std::string& spec) {
  std::vector<device_info> devices;
  std::string error;
  INFO("'" << spec << "'");
  CHECK(parse_devices(spec, devices, error));
  CHECK(error.empty());
  return devices;
}

} // namespace

TEST_CASE("auto gives every CUDA device present, else one cpu device",
          "[devices]") {
  auto devices = parsed("auto");
  auto gpus = vidnode::gpu::cuda_devices();
  if (gpus.empty()) {
    REQUIRE(devices.size() == 1);
    CHECK(devices[0].kind == device_kind::cpu);
    CHECK(devices[0].name() == "cpu:0");
  } else {
    REQUIRE(devices.size() == gpus.size());
    CHECK(devices[0].kind == device_kind::cuda);
    CHECK(devices[0].name() == "cuda:0");
  }
  CHECK(devices[0].memory_bytes > 0);
}

TEST_CASE("sim:N gives N sim devices numbered from zero with the default "
          "memory",
          "[devices]") {
  auto devices = parsed("sim:4");
  REQUIRE(devices.size() == 4);
  for (int32_t i = 0; i < 4; ++i) {
    auto& d = devices[static_cast<size_t>(i)];
    CHECK(d.index == i);
    CHECK(d.ordinal == i);
    CHECK(d.kind == device_kind::sim);
    CHECK(d.memory_bytes == default_sim_memory_bytes);
    CHECK(d.name() == "sim:" + std::to_string(i));
  }
  CHECK(default_sim_memory_bytes == 80ull << 30);
}

TEST_CASE("sim:N:MEM gives every sim device that memory", "[devices]") {
  auto devices = parsed("sim:2:16GiB");
  REQUIRE(devices.size() == 2);
  for (auto& d : devices)
    CHECK(d.memory_bytes == 16ull << 30);
}

TEST_CASE("cpu:N shares the host's memory between N devices", "[devices]") {
  auto one = parsed("cpu:1");
  auto two = parsed("cpu:2");
  REQUIRE(one.size() == 1);
  REQUIRE(two.size() == 2);
  CHECK(two[0].kind == device_kind::cpu);
  CHECK(two[1].name() == "cpu:1");
  CHECK(two[0].memory_bytes == one[0].memory_bytes / 2);
  CHECK(two[1].memory_bytes == two[0].memory_bytes);
  auto sized = parsed("cpu:3:512MiB");
  REQUIRE(sized.size() == 3);
  CHECK(sized[2].memory_bytes == 512ull << 20);
}

TEST_CASE("device counts from 1 to 64 are accepted", "[devices]") {
  CHECK(parsed("sim:1").size() == 1);
  CHECK(parsed("sim:64").size() == 64);
}

TEST_CASE("a malformed device spec is refused with the reason", "[devices]") {
  struct bad_spec {
    std::string spec;
    std::string reason;
  };
  std::vector<bad_spec> cases = {
    {"", "expected auto"},
    {"sim", "expected auto"},
    {"sim:1:2GiB:3", "expected auto"},
    {"gpu:1", "unknown device kind 'gpu'"},
    {"sim:0", "from 1 to 64"},
    {"sim:65", "from 1 to 64"},
    {"sim:x", "from 1 to 64"},
    {"sim:2x", "from 1 to 64"},
    {"sim:-1", "from 1 to 64"},
    {"sim:2:lots", "not a memory size"},
    {"sim:2:0", "not a memory size"},
    {"cpu:2:", "not a memory size"},
  };
  for (auto& c : cases) {
    std::vector<device_info> devices;
    std::string error;
    auto ok = parse_devices(c.spec, devices, error);
    INFO("'" << c.spec << "' gave '" << error << "'");
    CHECK_FALSE(ok);
    CHECK(error.rfind("'" + c.spec + "': ", 0) == 0);
    CHECK(error.find(c.reason) != std::string::npos);
  }
}

namespace {

using vidnode::gpu::cuda_device;

std::vector<cuda_device> two_gpus() {
  cuda_device a;
  a.ordinal = 0;
  a.free_bytes = 78ull << 30;
  a.total_bytes = 80ull << 30;
  cuda_device b = a;
  b.ordinal = 1;
  b.free_bytes = 40ull << 30;
  return {a, b};
}

constexpr uint64_t reserve = 2ull << 30;

} // namespace

TEST_CASE("cuda devices get their free memory less the reserve",
          "[devices][cuda]") {
  for (auto spec : {"cuda", "cuda:all", "auto"}) {
    INFO(spec);
    std::vector<device_info> devices;
    std::string error;
    REQUIRE(parse_devices(spec, two_gpus(), reserve, devices, error));
    REQUIRE(devices.size() == 2);
    CHECK(devices[0].kind == device_kind::cuda);
    CHECK(devices[0].name() == "cuda:0");
    CHECK(devices[0].memory_bytes == 76ull << 30);
    CHECK(devices[1].name() == "cuda:1");
    CHECK(devices[1].index == 1);
    CHECK(devices[1].memory_bytes == 38ull << 30);
  }
}

TEST_CASE("cuda:ORDINALS picks devices in the order given, MEMORY caps them",
          "[devices][cuda]") {
  std::vector<device_info> devices;
  std::string error;
  REQUIRE(parse_devices("cuda:1,0:20GiB", two_gpus(), reserve, devices, error));
  REQUIRE(devices.size() == 2);
  CHECK(devices[0].index == 0);
  CHECK(devices[0].ordinal == 1);
  CHECK(devices[0].name() == "cuda:1");
  CHECK(devices[0].memory_bytes == 20ull << 30);
  CHECK(devices[1].name() == "cuda:0");
}

TEST_CASE("bad cuda specs are refused with the reason", "[devices][cuda]") {
  struct bad_spec {
    std::string spec;
    std::string reason;
  };
  std::vector<bad_spec> cases = {
    {"cuda:2", "there is no cuda:2 (2 CUDA devices visible)"},
    {"cuda:0,0", "cuda:0 is listed twice"},
    {"cuda:x", "'x' is not a device ordinal"},
    {"cuda:-1", "'-1' is not a device ordinal"},
    {"cuda:1:39GiB", "cuda:1 has 38GiB to give"},
    {"cuda:0:lots", "'lots' is not a memory size"},
    {"cuda:0:1GiB:x", "expected cuda"},
  };
  for (const auto& c : cases) {
    INFO(c.spec);
    std::vector<device_info> devices;
    std::string error;
    CHECK_FALSE(parse_devices(c.spec, two_gpus(), reserve, devices, error));
    CHECK_THAT(error, Catch::Contains(c.reason));
  }
  auto tight = two_gpus();
  tight[1].free_bytes = 1ull << 30;
  std::vector<device_info> devices;
  std::string error;
  CHECK_FALSE(parse_devices("cuda", tight, reserve, devices, error));
  CHECK_THAT(error, Catch::Contains("cuda:1 has only 1GiB free, no more "
                                    "than the reserve of 2GiB"));
}

TEST_CASE("without a visible CUDA device, auto is one cpu device and cuda is "
          "refused",
          "[devices][cuda]") {
  std::vector<device_info> devices;
  std::string error;
  REQUIRE(parse_devices("auto", {}, reserve, devices, error));
  REQUIRE(devices.size() == 1);
  CHECK(devices[0].kind == device_kind::cpu);
  CHECK_FALSE(parse_devices("cuda:0", {}, reserve, devices, error));
  CHECK_THAT(error, Catch::Contains(vidnode::gpu::cuda_supported()
                                      ? "no CUDA device is visible"
                                      : "built without CUDA"));
}
