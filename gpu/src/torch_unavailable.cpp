#include "vidnode/gpu/tiny_t2v.hpp"

// Built when libtorch was not found: the node serves the sim models only.

namespace vidnode::gpu {

bool torch_available() noexcept {
  return false;
}

std::optional<std::string> save_tiny_t2v_weights(const std::string&) {
  return "this vidnode was built without libtorch";
}

} // namespace vidnode::gpu
