#include "vidnode/gpu/devices.hpp"

#include <unistd.h>

#include "vidnode/runtime/units.hpp"

namespace vidnode::gpu {

namespace {

uint64_t physical_memory_bytes() {
  auto pages = sysconf(_SC_PHYS_PAGES);
  auto page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0)
    return 8ull << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string::size_type start = 0;
  for (;;) {
    auto pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos - start));
    if (pos == std::string::npos)
      return parts;
    start = pos + 1;
  }
}

} // namespace

bool parse_devices(const std::string& spec,
                   std::vector<runtime::device_info>& devices,
                   std::string& error) {
  using runtime::device_kind;
  const char* usage = "expected auto, cpu:N[:MEMORY] or sim:N[:MEMORY] "
                      "(N from 1 to 64, e.g. sim:4:16GiB)";
  auto parts =
    spec == "auto" ? std::vector<std::string>{"cpu", "1"} : split(spec, ':');
  if (parts.size() < 2 || parts.size() > 3) {
    error = "'" + spec + "': " + usage;
    return false;
  }
  device_kind kind;
  if (parts[0] == "sim") {
    kind = device_kind::sim;
  } else if (parts[0] == "cpu") {
    kind = device_kind::cpu;
  } else if (parts[0] == "cuda") {
    error = "'" + spec + "': cuda devices are not supported by this build yet";
    return false;
  } else {
    error = "'" + spec + "': unknown device kind '" + parts[0] + "'; " + usage;
    return false;
  }
  int count = 0;
  try {
    size_t used = 0;
    count = std::stoi(parts[1], &used);
    if (used != parts[1].size())
      count = 0;
  } catch (...) {
    count = 0;
  }
  if (count < 1 || count > 64) {
    error = "'" + spec + "': device count must be from 1 to 64";
    return false;
  }
  uint64_t memory = kind == device_kind::sim
                      ? default_sim_memory_bytes
                      : physical_memory_bytes() / static_cast<uint64_t>(count);
  if (parts.size() == 3) {
    auto parsed = runtime::parse_bytes(parts[2]);
    if (!parsed || *parsed == 0) {
      error = "'" + spec + "': '" + parts[2]
              + "' is not a memory size (e.g. 16GiB, 512MiB)";
      return false;
    }
    memory = *parsed;
  }
  devices.clear();
  for (int i = 0; i < count; ++i) {
    runtime::device_info info;
    info.index = i;
    info.kind = kind;
    info.ordinal = i;
    info.memory_bytes = memory;
    devices.push_back(info);
  }
  return true;
}

} // namespace vidnode::gpu
