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

TEST_CASE("auto gives one cpu device with memory", "[devices]") {
  auto devices = parsed("auto");
  REQUIRE(devices.size() == 1);
  CHECK(devices[0].kind == device_kind::cpu);
  CHECK(devices[0].name() == "cpu:0");
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
    {"cuda:0", "not supported"},
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
