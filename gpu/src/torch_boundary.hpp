#pragma once

/// @file
/// The one place where libtorch's exceptions become vidnode's, and where
/// device memory is measured (private to gpu/: nothing outside gpu/ includes
/// libtorch or knows its errors).

#include <algorithm>
#include <cstdlib>
#include <new>
#include <regex>
#include <string>

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "vidnode/gpu/collectives.hpp"
#include "vidnode/gpu/pipeline.hpp"
#include "vidnode/runtime/device.hpp"

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
/// device, from the caching allocator's statistics. A device's calls run
/// one at a time on its worker's thread, so what a call allocates belongs
/// to the job that made it, even while other jobs' steps interleave. On
/// other devices it measures nothing (0).
class device_memory_meter {
public:
  explicit device_memory_meter(c10::Device device) : device_(device) {}

  /// Runs `call` (with_torch inside it or not) and accounts its memory.
  /// An out_of_memory from it is rethrown with the bytes this job held
  /// added to the failed allocation: the least the job needs.
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
    int64_t before = 0;
    bool measured = true;
    try {
      c10::cuda::CUDACachingAllocator::resetPeakStats(index);
      before = allocated(index);
    } catch (const c10::Error&) {
      measured = false;
    }
    try {
      call();
    } catch (const out_of_memory& e) {
      throw out_of_memory(
        e.what(), e.requested_bytes()
                    + static_cast<uint64_t>(std::max<int64_t>(held_, 0)));
    }
    if (!measured)
      return;
    try {
      auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
      auto peak = static_cast<int64_t>(stats.allocated_bytes[0].peak);
      auto after = static_cast<int64_t>(stats.allocated_bytes[0].current);
      peak_ = std::max(peak_, held_ + (peak - before));
      held_ += after - before;
    } catch (const c10::Error&) {
    }
#else
    call();
#endif
  }

  /// The most this job held at once, in bytes.
  uint64_t peak_bytes() const noexcept {
    return static_cast<uint64_t>(std::max<int64_t>(peak_, 0));
  }

  /// What this job holds now (what its calls allocated and kept), in bytes.
  uint64_t held_bytes() const noexcept {
    return static_cast<uint64_t>(std::max<int64_t>(held_, 0));
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
};

/// The libtorch device of a cpu or cuda device.
inline c10::Device torch_device(const runtime::device_info& device) {
  if (device.kind == runtime::device_kind::cuda)
    return c10::Device(c10::DeviceType::CUDA,
                       static_cast<c10::DeviceIndex>(device.ordinal));
  return c10::Device(c10::DeviceType::CPU);
}

} // namespace vidnode::gpu
