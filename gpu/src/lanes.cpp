#include "vidnode/gpu/lanes.hpp"

#include <algorithm>

#ifdef VIDNODE_HAVE_TORCH
#include <ATen/Parallel.h>
#endif
#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace vidnode::gpu {

namespace {

#ifdef VIDNODE_HAVE_TORCH
/// The process's intra-op threads as the first lane found them: lanes set
/// their own threads' count (and at::set_num_threads also sets the count new
/// threads start with), so later lanes must not read it back.
int32_t process_intra_op_threads() {
  static const int32_t threads = std::max(1, at::get_num_threads());
  return threads;
}
#endif

} // namespace

bool runs_in_lanes(runtime::device_kind kind) noexcept {
  return kind == runtime::device_kind::cpu
         || kind == runtime::device_kind::cuda;
}

int32_t enter_lane(const runtime::device_info& device, int32_t lane,
                   int32_t lanes) {
  (void)lane;
#ifdef VIDNODE_HAVE_TORCH
  if (device.kind == runtime::device_kind::cpu) {
    auto share = std::max(1, process_intra_op_threads() / std::max(1, lanes));
    at::set_num_threads(share);
    return share;
  }
#ifdef VIDNODE_TORCH_CUDA
  if (device.kind == runtime::device_kind::cuda) {
    auto index = static_cast<c10::DeviceIndex>(device.ordinal);
    c10::cuda::setCurrentCUDAStream(
      c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
    return 0;
  }
#endif
#else
  (void)device;
  (void)lanes;
#endif
  return 0;
}

} // namespace vidnode::gpu
