#include "vidnode/gpu/tiny_t2v.hpp"

#include <stdexcept>

#include "tiny_t2v_hooks.hpp"

// Built when libtorch was not found: the node serves the sim models only.

namespace vidnode::gpu {

bool torch_available() noexcept {
  return false;
}

std::optional<std::string> save_tiny_t2v_weights(const std::string&) {
  return "this vidnode was built without libtorch";
}

namespace tiny_t2v_hooks {

std::vector<float> latent(const job_run&) {
  throw std::invalid_argument("not a tiny-t2v run: built without libtorch");
}

run_timing timing(const job_run&) {
  throw std::invalid_argument("not a tiny-t2v run: built without libtorch");
}

void set_intra_op_threads(int32_t) {}

int32_t intra_op_threads() {
  return 1;
}

std::optional<std::string> save_old_layout_weights(const std::string&) {
  return "this vidnode was built without libtorch";
}

} // namespace tiny_t2v_hooks

} // namespace vidnode::gpu
