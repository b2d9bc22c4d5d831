// gpu/'s one boundary for libtorch's exceptions (a private header of gpu/,
// tested directly: the messages below are libtorch's own wording).

// Before Catch: if a libtorch header defines its own CHECK macro, Catch's
// definition must be the one that stands.
#include "../../gpu/src/torch_boundary.hpp"

#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

using vidnode::gpu::failed_allocation_bytes;
using vidnode::gpu::job_error;
using vidnode::gpu::out_of_memory;
using vidnode::gpu::out_of_memory_line;
using vidnode::gpu::reports_cuda_error;
using vidnode::gpu::reports_out_of_memory;
using vidnode::gpu::with_torch;

namespace {

/// What the TorchScript interpreter throws when a CUDA allocation inside a
/// scripted method fails (seen on an H100 with torch 2.11).
const std::string interpreter_oom =
  "The following operation failed in the TorchScript interpreter.\n"
  "Traceback of TorchScript, serialized code (most recent call last):\n"
  "  File \"code/__torch__.py\", line 23, in denoise\n"
  "      latent1 = torch.repeat(latent, [copies, 1, 1, 1, 1])\n"
  "RuntimeError: CUDA out of memory. Tried to allocate 24.48 GiB. GPU 0 has "
  "a total capacity of 79.18 GiB of which 5.03 GiB is free.\n";

} // namespace

TEST_CASE("the size of the failed allocation is read from libtorch's "
          "message",
          "[torch][boundary]") {
  CHECK(failed_allocation_bytes(interpreter_oom)
        == static_cast<uint64_t>(24.48 * (1ull << 30)));
  CHECK(failed_allocation_bytes("Tried to allocate 512.00 MiB")
        == 512ull << 20);
  CHECK(failed_allocation_bytes("Tried to allocate 20 bytes") == 20);
  CHECK(failed_allocation_bytes("CUDA out of memory") == 0);
}

TEST_CASE("out-of-memory and CUDA errors are told apart from other errors",
          "[torch][boundary]") {
  CHECK(reports_out_of_memory(interpreter_oom));
  CHECK_FALSE(reports_out_of_memory("shape '[2, 3]' is invalid for input"));
  CHECK(reports_cuda_error("CUDA error: an illegal memory access was "
                           "encountered"));
  CHECK_FALSE(reports_cuda_error(interpreter_oom));
  CHECK(out_of_memory_line(interpreter_oom)
        == "RuntimeError: CUDA out of memory. Tried to allocate 24.48 GiB. "
           "GPU 0 has a total capacity of 79.18 GiB of which 5.03 GiB is "
           "free.");
}

TEST_CASE("with_torch turns libtorch's errors into vidnode's",
          "[torch][boundary]") {
  SECTION("an out-of-memory error from the TorchScript interpreter") {
    try {
      with_torch([] { throw std::runtime_error(interpreter_oom); });
      FAIL("nothing thrown");
    } catch (const out_of_memory& e) {
      CHECK(e.requested_bytes() == failed_allocation_bytes(interpreter_oom));
      CHECK_THAT(e.what(), Catch::StartsWith("RuntimeError: CUDA out of"));
    }
  }
  SECTION("c10::OutOfMemoryError") {
    CHECK_THROWS_AS(with_torch([] {
                      TORCH_CHECK_WITH(OutOfMemoryError, false,
                                       "CUDA out of memory. Tried to "
                                       "allocate 2.00 GiB");
                    }),
                    out_of_memory);
  }
  SECTION("any other libtorch error fails the job only") {
    CHECK_THROWS_AS(with_torch([] { TORCH_CHECK(false, "bad shape"); }),
                    job_error);
    CHECK_THROWS_AS(with_torch([] {
                      throw std::runtime_error("The following operation "
                                               "failed: shape mismatch");
                    }),
                    job_error);
  }
  SECTION("a CUDA error crashes the worker (the device is not trusted)") {
    try {
      with_torch(
        [] { TORCH_CHECK(false, "CUDA error: an illegal memory access"); });
      FAIL("nothing thrown");
    } catch (const job_error&) {
      FAIL("became a job error");
    } catch (const out_of_memory&) {
      FAIL("became out of memory");
    } catch (const std::runtime_error& e) {
      CHECK_THAT(e.what(), Catch::Contains("illegal memory access"));
    }
  }
}
