#include "vidnode/runtime/device.hpp"

namespace vidnode::runtime {

const char* to_string(device_kind kind) noexcept {
  switch (kind) {
    case device_kind::sim:
      return "sim";
    case device_kind::cpu:
      return "cpu";
    case device_kind::cuda:
      return "cuda";
  }
  return "unknown";
}

std::string device_info::name() const {
  return std::string{to_string(kind)} + ":" + std::to_string(ordinal);
}

} // namespace vidnode::runtime
