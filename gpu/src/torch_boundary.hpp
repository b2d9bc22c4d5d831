#pragma once

/// @file
/// The one place where libtorch's exceptions become vidnode's (private to
/// gpu/: nothing outside gpu/ includes libtorch or knows its errors).

#include <c10/util/Exception.h>

#ifdef VIDNODE_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "vidnode/gpu/pipeline.hpp"

namespace vidnode::gpu {

/// Runs `call`, which uses libtorch. A c10::OutOfMemoryError empties the
/// CUDA cache and becomes gpu::out_of_memory (the worker then restarts);
/// any other c10::Error becomes a job_error (internal) for this job only.
/// vidnode's own exceptions pass through.
template <class F>
void with_torch(F&& call) {
  try {
    call();
  } catch (const job_error&) {
    throw;
  } catch (const out_of_memory&) {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
#ifdef VIDNODE_TORCH_CUDA
    c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    throw out_of_memory(e.what_without_backtrace(), 0);
  } catch (const c10::Error& e) {
    throw job_error(runtime::errc::internal,
                    std::string{"libtorch: "} + e.what_without_backtrace());
  }
}

} // namespace vidnode::gpu
