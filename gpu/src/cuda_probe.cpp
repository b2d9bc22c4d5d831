#include "vidnode/gpu/cuda.hpp"

#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace vidnode::gpu {

#ifdef VIDNODE_TORCH_CUDA

bool cuda_supported() noexcept {
  return true;
}

std::vector<cuda_device> cuda_devices() {
  std::vector<cuda_device> result;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return result;
  }
  for (int i = 0; i < count; ++i) {
    c10::cuda::CUDAGuard guard{static_cast<c10::DeviceIndex>(i)};
    cuda_device device;
    device.ordinal = i;
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, i) == cudaSuccess)
      device.name = properties.name;
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    device.free_bytes = free_bytes;
    device.total_bytes = total_bytes;
    result.push_back(std::move(device));
  }
  return result;
}

#else

bool cuda_supported() noexcept {
  return false;
}

std::vector<cuda_device> cuda_devices() {
  return {};
}

#endif

} // namespace vidnode::gpu
