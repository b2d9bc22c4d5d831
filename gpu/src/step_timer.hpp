#pragma once

/// @file
/// The kernel time of a run's steps, for job_run::profile() (private to
/// gpu/).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <c10/core/Device.h>

#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "vidnode/gpu/pipeline.hpp"

namespace vidnode::gpu {

/// Sums the kernel time of a run's steps. On a cuda device: the time
/// between two CUDA events recorded on the calling thread's current stream
/// (the lane's) before and after each step's work, read once by total()
/// after the run's last work on that stream has completed, so timing adds
/// no synchronisation to the step path (two cudaEventRecord calls per
/// step; events are created when the run begins). On other devices: the
/// wall time of the steps' work (what a cpu device's kernels take, as they
/// run on the calling thread). One object per run, used by one thread at a
/// time; every call that touches CUDA belongs inside with_torch (its errors
/// are c10::Error).
class step_timer {
public:
  explicit step_timer(c10::Device device) : device_(device) {}

  step_timer(const step_timer&) = delete;
  step_timer& operator=(const step_timer&) = delete;

  ~step_timer() {
#ifdef VIDNODE_TORCH_CUDA
    if (events_.empty())
      return;
    try {
      c10::cuda::CUDAGuard guard{device_.index()};
      for (auto event : events_)
        (void)cudaEventDestroy(event);
    } catch (...) {
      // A device that is gone has taken its events with it.
    }
#endif
  }

  /// Makes the events for `steps` steps ahead of the first (cuda), so that
  /// creating them stays off the step path.
  void reserve(int32_t steps) {
#ifdef VIDNODE_TORCH_CUDA
    if (device_.is_cuda())
      make_events(2 * static_cast<size_t>(std::max(steps, 0)));
#else
    (void)steps;
#endif
  }

  /// Runs `step` (one step's work) and times it.
  template <class F>
  void time(F&& step) {
#ifdef VIDNODE_TORCH_CUDA
    if (device_.is_cuda()) {
      make_events(2 * (timed_ + 1));
      auto stream = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
      C10_CUDA_CHECK(cudaEventRecord(events_[2 * timed_], stream));
      step();
      C10_CUDA_CHECK(cudaEventRecord(events_[2 * timed_ + 1], stream));
      ++timed_;
      return;
    }
#endif
    auto started = std::chrono::steady_clock::now();
    step();
    wall_ += std::chrono::steady_clock::now() - started;
    ++timed_;
  }

  /// The kernel time of the steps timed so far. On cuda, call it once the
  /// stream has synchronised (after the frames were copied to the host):
  /// then it only reads the events; an event not yet complete is waited
  /// for (cudaEventSynchronize), which only a run that never copies to the
  /// host (a gang's rank other than 0) needs, once per job.
  device_time total() {
#ifdef VIDNODE_TORCH_CUDA
    if (device_.is_cuda()) {
      c10::cuda::CUDAGuard guard{device_.index()};
      double ms = 0;
      for (size_t i = 0; i < timed_; ++i) {
        auto start = events_[2 * i];
        auto end = events_[2 * i + 1];
        auto ready = cudaEventQuery(end);
        if (ready == cudaErrorNotReady) {
          (void)cudaGetLastError();
          C10_CUDA_CHECK(cudaEventSynchronize(end));
        } else {
          C10_CUDA_CHECK(ready);
        }
        float elapsed = 0;
        C10_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, end));
        ms += elapsed;
      }
      return std::chrono::duration_cast<device_time>(
        std::chrono::duration<double, std::milli>(ms));
    }
#endif
    return std::chrono::duration_cast<device_time>(wall_);
  }

private:
#ifdef VIDNODE_TORCH_CUDA
  void make_events(size_t count) {
    if (events_.size() >= count)
      return;
    c10::cuda::CUDAGuard guard{device_.index()};
    events_.reserve(count);
    while (events_.size() < count) {
      cudaEvent_t event{};
      C10_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDefault));
      events_.push_back(event);
    }
  }

  /// Two per step: before and after its work.
  std::vector<cudaEvent_t> events_;
#endif

  c10::Device device_;
  size_t timed_ = 0;
  std::chrono::steady_clock::duration wall_{0};
};

} // namespace vidnode::gpu
