#include "host_costs.hpp"

#include <algorithm>
#include <exception>

#include <ATen/ATen.h>

#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "step_timer.hpp"
#include "torch_boundary.hpp"

namespace vidnode::gpu::host_costs {

namespace {

using clock_type = std::chrono::steady_clock;

#ifdef VIDNODE_TORCH_CUDA
/// Mean time of `call` over `rounds` calls, after one to warm up.
template <class F>
std::chrono::nanoseconds mean_of(int32_t rounds, F&& call) {
  call();
  auto started = clock_type::now();
  for (int32_t i = 0; i < rounds; ++i)
    call();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now()
                                                              - started)
         / rounds;
}
#endif

} // namespace

std::optional<figures> measure(int32_t ordinal, int32_t rounds,
                               std::string& why) {
#ifdef VIDNODE_TORCH_CUDA
  rounds = std::max(rounds, 1);
  try {
    c10::Device device{c10::DeviceType::CUDA,
                       static_cast<c10::DeviceIndex>(ordinal)};
    c10::cuda::CUDAGuard device_guard{device.index()};
    c10::cuda::CUDAStreamGuard stream_guard{
      c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())};
    auto stream = c10::cuda::getCurrentCUDAStream(device.index());
    auto on_device = at::TensorOptions().device(device);
    auto initialised = at::empty({1}, on_device);
    figures f;
    device_memory_meter meter{device};
    f.memory_window = mean_of(rounds, [&] { meter.measure([] {}); });
    step_timer timer{device};
    timer.reserve(rounds + 1);
    f.step_events = mean_of(rounds, [&] { timer.time([] {}); });
    stream.synchronize();
    auto started = clock_type::now();
    auto kernel = timer.total();
    f.event_read = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     clock_type::now() - started)
                   / (rounds + 1);
    (void)kernel;
    f.idle_stream_sync = mean_of(rounds, [&] { stream.synchronize(); });
    auto noise = at::randn({4, 16, 32, 32});
    at::Tensor copy;
    f.begin_copy = mean_of(rounds, [&] { copy = noise.to(device); });
    auto frames = at::zeros({16, 256, 256, 3}, on_device.dtype(at::kByte));
    f.frames_copy = mean_of(rounds, [&] { copy = frames.to(at::kCPU); });
    return f;
  } catch (const std::exception& e) {
    why = e.what();
    return std::nullopt;
  }
#else
  (void)ordinal;
  (void)rounds;
  why = "this build's libtorch has no CUDA";
  return std::nullopt;
#endif
}

std::optional<std::string>
synchronisations_in(const std::function<void()>& work) {
  std::optional<std::string> found;
#ifdef VIDNODE_TORCH_CUDA
  auto& state = c10::cuda::warning_state();
  auto before = state.get_sync_debug_mode();
  state.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  try {
    work();
  } catch (const std::exception& e) {
    found = e.what();
  }
  state.set_sync_debug_mode(before);
#else
  try {
    work();
  } catch (const std::exception& e) {
    found = e.what();
  }
#endif
  return found;
}

} // namespace vidnode::gpu::host_costs
