#pragma once

/// @file
/// The one place where libtorch's exceptions become vidnode's, and where
/// device memory is measured (private to gpu/: nothing outside gpu/ includes
/// libtorch or knows its errors).

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <regex>
#include <string>

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "vidnode/gpu/collectives.hpp"
#include "vidnode/gpu/pipeline.hpp"
#include "vidnode/runtime/device.hpp"

#include "memory_windows.hpp"

namespace vidnode::gpu {

/// The size of the allocation that failed, read from libtorch's message
/// ("Tried to allocate 20.00 GiB" from CUDA, "you tried to allocate 1024
/// bytes" from the CPU allocator); 0 if the message does not say.
inline uint64_t failed_allocation_bytes(const std::string& message) {
  static const std::regex pattern{
    R"([Tt]ried to allocate ([0-9]+(?:\.[0-9]+)?) ?(B|KiB|MiB|GiB|TiB|bytes))"};
  std::smatch match;
  if (!std::regex_search(message, match, pattern))
    return 0;
  auto value = std::strtod(match[1].str().c_str(), nullptr);
  auto unit = match[2].str();
  double scale = unit == "KiB"   ? 1024.0
                 : unit == "MiB" ? 1024.0 * 1024
                 : unit == "GiB" ? 1024.0 * 1024 * 1024
                 : unit == "TiB" ? 1024.0 * 1024 * 1024 * 1024
                                 : 1.0;
  return static_cast<uint64_t>(value * scale);
}

/// Whether libtorch's message reports a device out of memory. The
/// TorchScript interpreter rethrows c10::OutOfMemoryError as a plain
/// std::runtime_error that keeps only the message.
inline bool reports_out_of_memory(const std::string& message) {
  return message.find("out of memory") != std::string::npos
         && (message.find("Tried to allocate") != std::string::npos
             || message.find("CUDA") != std::string::npos);
}

/// Where libtorch's message reports a failed host allocation: its CPU
/// allocator refused ("can't allocate memory" on Linux, "not enough memory"
/// on Windows and Android), or the TorchScript interpreter rethrew a
/// std::bad_alloc as a RuntimeError. npos if it does not.
inline size_t cpu_allocation_failure_at(const std::string& message) {
  for (const char* marker : {"DefaultCPUAllocator: can't allocate memory",
                             "DefaultCPUAllocator: not enough memory",
                             "RuntimeError: std::bad_alloc"}) {
    auto at = message.find(marker);
    if (at != std::string::npos)
      return at;
  }
  return std::string::npos;
}

/// Whether libtorch's message reports that host memory could not be
/// allocated. Only a cpu device's calls are read this way: on a CUDA
/// device, what the job reserves is device memory.
inline bool reports_cpu_allocation_failure(const std::string& message) {
  return cpu_allocation_failure_at(message) != std::string::npos;
}

/// The line of libtorch's message that reports the device (or the host)
/// out of memory, without the TorchScript traceback around it.
inline std::string out_of_memory_line(const std::string& message) {
  auto at = message.find("out of memory");
  if (at == std::string::npos)
    at = cpu_allocation_failure_at(message);
  if (at == std::string::npos)
    return message;
  auto begin = message.rfind('\n', at);
  begin = begin == std::string::npos ? 0 : begin + 1;
  auto end = message.find('\n', at);
  return message.substr(begin, end == std::string::npos ? std::string::npos
                                                        : end - begin);
}

/// Whether libtorch's message reports a CUDA error other than out of
/// memory (an illegal address, a launch failure): the device's context is
/// not trusted afterwards.
inline bool reports_cuda_error(const std::string& message) {
  return message.find("CUDA error") != std::string::npos
         || message.find("CUBLAS_STATUS") != std::string::npos
         || message.find("CUDNN_STATUS") != std::string::npos;
}

/// Runs `call`, which uses libtorch on `device`. An out-of-memory error
/// empties the CUDA cache and becomes gpu::out_of_memory with the size of
/// the allocation that failed (the worker then restarts, keeping its
/// models); on a cpu device, so does a failed host allocation (libtorch's
/// CPU allocator, std::bad_alloc; its size when the message says). A CUDA
/// error becomes a crash (std::runtime_error: the worker restarts and loads
/// its models again); any other libtorch error, including one raised inside
/// a TorchScript model, becomes a job_error (internal) for this job only.
/// vidnode's own exceptions pass through.
template <class F>
void with_torch(c10::Device device, F&& call) {
  auto ran_out = [&](const std::string& message) {
#ifdef VIDNODE_TORCH_CUDA
    if (device.is_cuda())
      c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    return out_of_memory(out_of_memory_line(message),
                         failed_allocation_bytes(message));
  };
  auto reports_oom = [&](const std::string& message) {
    return reports_out_of_memory(message)
           || (device.is_cpu() && reports_cpu_allocation_failure(message));
  };
  try {
    call();
  } catch (const job_error&) {
    throw;
  } catch (const out_of_memory&) {
    throw;
  } catch (const collective_error&) {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    throw ran_out(e.what_without_backtrace());
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    if (reports_oom(message))
      throw ran_out(message);
    if (reports_cuda_error(message))
      throw std::runtime_error("libtorch: " + message);
    throw job_error(runtime::errc::internal, "libtorch: " + message);
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    if (reports_oom(message))
      throw ran_out(message);
    if (reports_cuda_error(message))
      throw;
    throw job_error(runtime::errc::internal, "libtorch: " + message);
  } catch (const std::bad_alloc&) {
    if (!device.is_cpu())
      throw;
    throw out_of_memory("host memory exhausted (std::bad_alloc)", 0);
  }
}

/// Measures what one job (or one model load) holds and peaks at on a CUDA
/// device, from the caching allocator's statistics, and how long reading
/// them took. The statistics are the device's, shared by every lane on it,
/// so each measured call is a window in the device's memory_windows: a
/// window that no other window overlapped (one lane, or lanes that happened
/// not to overlap) is attributed to the job exactly; once one of a job's
/// windows is overlapped (another lane's call, a model loading), what the
/// job holds is unknown and peak_bytes() and held_bytes() are 0 for the
/// rest of it (admission learns nothing from the job; an out-of-memory
/// error still raises its estimate, by the failed allocation alone). Only
/// the first of overlapping windows resets the peak statistics. On other
/// devices it measures nothing (0) and takes no time. One object per job,
/// used by one thread at a time.
///
/// Cost on the step path: per call, on cuda only, one resetPeakStats and
/// one getDeviceStats before it and one getDeviceStats after it, under the
/// registry's lock and the allocator's: host work, no device
/// synchronisation. The registry alone costs 30 to 60 ns per call
/// uncontended (memory_windows_test, on a 2-core cpu machine); the whole
/// window on a GPU is printed by scripts/gpu-check.sh ("[gpu] host
/// costs"), and measurement_time() sums it per job.
class device_memory_meter {
public:
  explicit device_memory_meter(c10::Device device) : device_(device) {}

  /// Runs `call` (with_torch inside it or not) and accounts its memory.
  /// An out_of_memory from it is rethrown with the bytes this job held
  /// added to the failed allocation (when known): the least the job needs.
  template <class F>
  void measure(F&& call) {
#ifdef VIDNODE_TORCH_CUDA
    if (!device_.is_cuda()) {
      call();
      return;
    }
    // The statistics exist once CUDA is initialized (the pipelines do that
    // before loading); a call they cannot measure still runs.
    auto index = device_.index();
    auto& windows = memory_windows::of(index);
    int64_t before = 0;
    bool read = true;
    auto started = std::chrono::steady_clock::now();
    auto ticket = windows.open([&] {
      try {
        c10::cuda::CUDACachingAllocator::resetPeakStats(index);
        before = allocated(index);
      } catch (const c10::Error&) {
        read = false;
      }
    });
    measuring_ += std::chrono::steady_clock::now() - started;
    try {
      call();
    } catch (const out_of_memory& e) {
      windows.close(ticket, [] {});
      auto held = held_bytes();
      known_ = false;
      throw out_of_memory(e.what(), e.requested_bytes() + held);
    } catch (...) {
      windows.close(ticket, [] {});
      known_ = false;
      throw;
    }
    started = std::chrono::steady_clock::now();
    int64_t peak = 0;
    int64_t after = 0;
    bool clean = windows.close(ticket, [&] {
      if (!read)
        return;
      try {
        auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
        peak = static_cast<int64_t>(stats.allocated_bytes[0].peak);
        after = static_cast<int64_t>(stats.allocated_bytes[0].current);
      } catch (const c10::Error&) {
        read = false;
      }
    });
    measuring_ += std::chrono::steady_clock::now() - started;
    if (!clean || !read) {
      known_ = false;
      return;
    }
    peak_ = std::max(peak_, held_ + (peak - before));
    held_ += after - before;
#else
    call();
#endif
  }

  /// Runs `call`, which changes what the device holds without being
  /// measured (freeing a job's tensors), as a window: a job measured on
  /// another lane meanwhile learns that its window was overlapped.
  template <class F>
  void unmeasured(F&& call) {
#ifdef VIDNODE_TORCH_CUDA
    if (device_.is_cuda()) {
      auto& windows = memory_windows::of(device_.index());
      auto ticket = windows.open([] {});
      try {
        call();
      } catch (...) {
        windows.close(ticket, [] {});
        throw;
      }
      windows.close(ticket, [] {});
      known_ = false;
      return;
    }
#endif
    call();
  }

  /// The most this job held at once, in bytes; 0 when unknown (a window
  /// was overlapped, or the statistics could not be read).
  uint64_t peak_bytes() const noexcept {
    return known_ ? static_cast<uint64_t>(std::max<int64_t>(peak_, 0)) : 0;
  }

  /// What this job holds now (what its calls allocated and kept), in bytes;
  /// 0 when unknown.
  uint64_t held_bytes() const noexcept {
    return known_ ? static_cast<uint64_t>(std::max<int64_t>(held_, 0)) : 0;
  }

  /// Host time spent opening and closing windows (reading the statistics,
  /// waiting for the registry's and the allocator's locks) so far; zero on
  /// devices that are not measured.
  device_time measurement_time() const noexcept {
    return measuring_;
  }

private:
#ifdef VIDNODE_TORCH_CUDA
  static int64_t allocated(c10::DeviceIndex index) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return static_cast<int64_t>(stats.allocated_bytes[0].current);
  }
#endif

  c10::Device device_;
  int64_t held_ = 0;
  int64_t peak_ = 0;
  bool known_ = true;
  device_time measuring_{0};
};

/// Waits until all work queued on `device`, on every stream, has completed:
/// on a cuda device a device synchronisation, elsewhere nothing. For the
/// end of a pipeline's load(), once per load: the weights it wrote, on
/// whichever stream and however it copied them, are then complete for
/// every lane's stream.
inline void wait_for_device(c10::Device device) {
#ifdef VIDNODE_TORCH_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDAGuard guard{device.index()};
    c10::cuda::device_synchronize();
  }
#else
  (void)device;
#endif
}

/// The libtorch device of a cpu or cuda device.
inline c10::Device torch_device(const runtime::device_info& device) {
  if (device.kind == runtime::device_kind::cuda)
    return c10::Device(c10::DeviceType::CUDA,
                       static_cast<c10::DeviceIndex>(device.ordinal));
  return c10::Device(c10::DeviceType::CPU);
}

} // namespace vidnode::gpu
