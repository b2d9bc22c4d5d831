#include "vidnode/gpu/devices.hpp"

#include <unistd.h>

#include <optional>

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

namespace {

bool parse_cuda(const std::string& spec, const std::vector<std::string>& parts,
                const std::vector<cuda_device>& present,
                uint64_t cuda_reserve_bytes,
                std::vector<runtime::device_info>& devices,
                std::string& error) {
  const char* usage = "expected cuda, cuda:all or cuda:0,1 with an optional "
                      ":MEMORY (e.g. cuda:0:40GiB)";
  if (parts.size() > 3) {
    error = "'" + spec + "': " + usage;
    return false;
  }
  if (present.empty()) {
    error = cuda_supported()
              ? "'" + spec + "': no CUDA device is visible to this process"
              : "'" + spec
                  + "': this vidnode was built without CUDA (libtorch "
                    "without CUDA, or no libtorch); use cpu:N or sim:N";
    return false;
  }
  std::vector<const cuda_device*> chosen;
  auto ordinals = parts.size() >= 2 ? parts[1] : std::string{"all"};
  if (ordinals == "all" || ordinals.empty()) {
    for (const auto& device : present)
      chosen.push_back(&device);
  } else {
    for (const auto& text : split(ordinals, ',')) {
      int ordinal = -1;
      try {
        size_t used = 0;
        ordinal = std::stoi(text, &used);
        if (used != text.size())
          ordinal = -1;
      } catch (...) {
        ordinal = -1;
      }
      if (ordinal < 0) {
        error =
          "'" + spec + "': '" + text + "' is not a device ordinal; " + usage;
        return false;
      }
      const cuda_device* found = nullptr;
      for (const auto& device : present)
        if (device.ordinal == ordinal)
          found = &device;
      if (found == nullptr) {
        error = "'" + spec + "': there is no cuda:" + text + " ("
                + std::to_string(present.size()) + " CUDA device"
                + (present.size() == 1 ? "" : "s") + " visible)";
        return false;
      }
      for (auto* other : chosen)
        if (other == found) {
          error = "'" + spec + "': cuda:" + text + " is listed twice";
          return false;
        }
      chosen.push_back(found);
    }
  }
  std::optional<uint64_t> wanted;
  if (parts.size() == 3) {
    wanted = runtime::parse_bytes(parts[2]);
    if (!wanted || *wanted == 0) {
      error = "'" + spec + "': '" + parts[2]
              + "' is not a memory size (e.g. 40GiB, 512MiB)";
      return false;
    }
  }
  devices.clear();
  for (auto* device : chosen) {
    auto name = "cuda:" + std::to_string(device->ordinal);
    if (device->free_bytes <= cuda_reserve_bytes) {
      error = "'" + spec + "': " + name + " has only "
              + runtime::format_bytes(device->free_bytes)
              + " free, no more than the reserve of "
              + runtime::format_bytes(cuda_reserve_bytes);
      return false;
    }
    auto budget = device->free_bytes - cuda_reserve_bytes;
    if (wanted) {
      if (*wanted > budget) {
        error = "'" + spec + "': " + name + " has "
                + runtime::format_bytes(budget) + " to give ("
                + runtime::format_bytes(device->free_bytes)
                + " free less the reserve), less than "
                + runtime::format_bytes(*wanted);
        return false;
      }
      budget = *wanted;
    }
    runtime::device_info info;
    info.index = static_cast<int32_t>(devices.size());
    info.kind = runtime::device_kind::cuda;
    info.ordinal = device->ordinal;
    info.memory_bytes = budget;
    devices.push_back(info);
  }
  return true;
}

} // namespace

bool parse_devices(const std::string& spec,
                   std::vector<runtime::device_info>& devices,
                   std::string& error, uint64_t cuda_reserve_bytes) {
  std::vector<cuda_device> present;
  if (spec == "auto" || spec == "cuda" || spec.rfind("cuda:", 0) == 0)
    present = cuda_devices();
  return parse_devices(spec, present, cuda_reserve_bytes, devices, error);
}

bool parse_devices(const std::string& spec,
                   const std::vector<cuda_device>& present,
                   uint64_t cuda_reserve_bytes,
                   std::vector<runtime::device_info>& devices,
                   std::string& error) {
  using runtime::device_kind;
  const char* usage = "expected auto, none, cuda[:0,1][:MEMORY], "
                      "cpu:N[:MEMORY] or sim:N[:MEMORY] (N from 1 to 64, e.g. "
                      "sim:4:16GiB)";
  if (spec == "none") {
    devices.clear();
    return true;
  }
  if (spec == "auto" && !present.empty())
    return parse_cuda(spec, {"cuda"}, present, cuda_reserve_bytes, devices,
                      error);
  auto parts =
    spec == "auto" ? std::vector<std::string>{"cpu", "1"} : split(spec, ':');
  if (!parts.empty() && parts[0] == "cuda")
    return parse_cuda(spec, parts, present, cuda_reserve_bytes, devices, error);
  if (parts.size() < 2 || parts.size() > 3) {
    error = "'" + spec + "': " + usage;
    return false;
  }
  device_kind kind;
  if (parts[0] == "sim") {
    kind = device_kind::sim;
  } else if (parts[0] == "cpu") {
    kind = device_kind::cpu;
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
