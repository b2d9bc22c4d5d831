// gpu/'s one boundary for libtorch's exceptions (a private header of gpu/,
// tested directly: the messages below are libtorch's own wording).

// Before Catch: if a libtorch header defines its own CHECK macro, Catch's
// definition must be the one that stands.
#include "../../gpu/src/torch_boundary.hpp"

#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>

#include "torch_allocations.hpp"

using vidnode::gpu::failed_allocation_bytes;
using vidnode::gpu::job_error;
using vidnode::gpu::out_of_memory;
using vidnode::gpu::out_of_memory_line;
using vidnode::gpu::reports_cpu_allocation_failure;
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

const c10::Device cpu{c10::DeviceType::CPU};
const c10::Device cuda{c10::DeviceType::CUDA, 0};

/// What libtorch 1.13's CPU allocator says when posix_memalign refuses
/// (seen for a 4 TiB tensor, on Linux).
const std::string cpu_allocator_refused =
  "DefaultCPUAllocator: can't allocate memory: you tried to allocate "
  "4398046511104 bytes. Error code 12 (Cannot allocate memory)";

/// The c10::Error the allocator throws (CAFFE_ENFORCE at alloc_cpu.cpp:75).
c10::Error cpu_allocator_error() {
  return c10::Error("alloc_cpu.cpp", 75, "err == 0", cpu_allocator_refused, "");
}

/// The same failure inside a scripted method, as the TorchScript
/// interpreter rethrows it (seen for a model loaded from a file).
const std::string interpreter_cpu_oom =
  "The following operation failed in the TorchScript interpreter.\n"
  "Traceback of TorchScript, serialized code (most recent call last):\n"
  "  File \"code/__torch__.py\", line 26, in denoise\n"
  "    hoard = torch.empty([1099511627776])\n"
  "            ~~~~~~~~~~~ <--- HERE\n"
  "\n"
  "Traceback of TorchScript, original code (most recent call last):\n"
  "  File \"<string>\", line 3, in denoise\n"
  "    hoard = torch.empty([1099511627776])\n"
  "            ~~~~~~~~~~~ <--- HERE\n"
  "RuntimeError: [enforce fail at alloc_cpu.cpp:75] err == 0. "
  + cpu_allocator_refused + "\n";

/// A std::bad_alloc inside a scripted method (a list too long to build), as
/// the interpreter rethrows it.
const std::string interpreter_bad_alloc =
  "The following operation failed in the TorchScript interpreter.\n"
  "Traceback of TorchScript (most recent call last):\n"
  "  File \"<string>\", line 7, in biglist\n"
  "    l = [0] * n\n"
  "        ~~~~~~~ <--- HERE\n"
  "RuntimeError: std::bad_alloc\n";

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
      with_torch(cuda, [] { throw std::runtime_error(interpreter_oom); });
      FAIL("nothing thrown");
    } catch (const out_of_memory& e) {
      CHECK(e.requested_bytes() == failed_allocation_bytes(interpreter_oom));
      CHECK_THAT(e.what(), Catch::StartsWith("RuntimeError: CUDA out of"));
    }
  }
  SECTION("c10::OutOfMemoryError") {
    CHECK_THROWS_AS(with_torch(cuda,
                               [] {
                                 TORCH_CHECK_WITH(
                                   OutOfMemoryError, false,
                                   "CUDA out of memory. Tried to "
                                   "allocate 2.00 GiB");
                               }),
                    out_of_memory);
  }
  SECTION("any other libtorch error fails the job only") {
    for (auto device : {cpu, cuda}) {
      CHECK_THROWS_AS(
        with_torch(device, [] { TORCH_CHECK(false, "bad shape"); }), job_error);
      CHECK_THROWS_AS(with_torch(device,
                                 [] {
                                   throw std::runtime_error(
                                     "The following operation "
                                     "failed: shape mismatch");
                                 }),
                      job_error);
    }
  }
  SECTION("a CUDA error crashes the worker (the device is not trusted)") {
    try {
      with_torch(cuda, [] {
        TORCH_CHECK(false, "CUDA error: an illegal memory access");
      });
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

TEST_CASE("a failed host allocation is told apart from other errors, and its "
          "size and line are read from libtorch's message",
          "[torch][boundary]") {
  CHECK(reports_cpu_allocation_failure(cpu_allocator_error().what()));
  CHECK(reports_cpu_allocation_failure(interpreter_cpu_oom));
  CHECK(reports_cpu_allocation_failure(interpreter_bad_alloc));
  CHECK(reports_cpu_allocation_failure("DefaultCPUAllocator: not enough "
                                       "memory: you tried to allocate 64 "
                                       "bytes."));
  CHECK_FALSE(reports_cpu_allocation_failure(interpreter_oom));
  CHECK_FALSE(reports_cpu_allocation_failure("Could not allocate the "
                                             "requested shape"));
  CHECK_FALSE(reports_out_of_memory(interpreter_cpu_oom));
  CHECK(failed_allocation_bytes(interpreter_cpu_oom) == 4398046511104ull);
  CHECK(failed_allocation_bytes(interpreter_bad_alloc) == 0);
  CHECK(out_of_memory_line(interpreter_cpu_oom)
        == "RuntimeError: [enforce fail at alloc_cpu.cpp:75] err == 0. "
             + cpu_allocator_refused);
  CHECK(out_of_memory_line(interpreter_bad_alloc)
        == "RuntimeError: std::bad_alloc");
}

TEST_CASE("on a cpu device, libtorch's CPU allocator refusing becomes "
          "out_of_memory with the bytes it was asked for",
          "[torch][boundary]") {
  try {
    with_torch(cpu, [] { throw cpu_allocator_error(); });
    FAIL("nothing thrown");
  } catch (const out_of_memory& e) {
    CHECK(e.requested_bytes() == 4398046511104ull);
    CHECK(std::string{e.what()}
          == "[enforce fail at alloc_cpu.cpp:75] err == 0. "
               + cpu_allocator_refused);
  }
}

TEST_CASE("on a cpu device, the CPU allocator refusing inside the "
          "TorchScript interpreter becomes out_of_memory with only the "
          "allocator's line",
          "[torch][boundary]") {
  try {
    with_torch(cpu, [] { throw std::runtime_error(interpreter_cpu_oom); });
    FAIL("nothing thrown");
  } catch (const out_of_memory& e) {
    CHECK(e.requested_bytes() == 4398046511104ull);
    CHECK(std::string{e.what()}
          == "RuntimeError: [enforce fail at alloc_cpu.cpp:75] err == 0. "
               + cpu_allocator_refused);
  }
}

TEST_CASE("on a cpu device, std::bad_alloc becomes out_of_memory of unknown "
          "size, thrown directly or rethrown by the TorchScript interpreter",
          "[torch][boundary]") {
  try {
    with_torch(cpu, [] { throw std::bad_alloc(); });
    FAIL("nothing thrown");
  } catch (const out_of_memory& e) {
    CHECK(e.requested_bytes() == 0);
    CHECK_THAT(e.what(), Catch::Contains("std::bad_alloc"));
  }
  try {
    with_torch(cpu, [] { throw std::runtime_error(interpreter_bad_alloc); });
    FAIL("nothing thrown");
  } catch (const out_of_memory& e) {
    CHECK(e.requested_bytes() == 0);
    CHECK(std::string{e.what()} == "RuntimeError: std::bad_alloc");
  }
}

TEST_CASE("on a cpu device, a libtorch error that is not a failed "
          "allocation still fails the job only",
          "[torch][boundary]") {
  try {
    with_torch(cpu, [] {
      TORCH_CHECK(false, "shape '[2, 3]' is invalid for input of size 5");
    });
    FAIL("nothing thrown");
  } catch (const job_error& e) {
    CHECK(e.code() == vidnode::runtime::errc::internal);
    CHECK_THAT(e.what(), Catch::Contains("is invalid for input"));
  }
  CHECK_THROWS_AS(with_torch(cpu,
                             [] {
                               throw std::runtime_error(
                                 "The following operation failed in the "
                                 "TorchScript interpreter.\nRuntimeError: "
                                 "expected scalar type Float but found "
                                 "Half\n");
                             }),
                  job_error);
}

TEST_CASE("on a cuda device, a failed host allocation is reported as before: "
          "a job error, or a crash for std::bad_alloc",
          "[torch][boundary]") {
  CHECK_THROWS_AS(with_torch(cuda, [] { throw cpu_allocator_error(); }),
                  job_error);
  CHECK_THROWS_AS(
    with_torch(cuda, [] { throw std::runtime_error(interpreter_cpu_oom); }),
    job_error);
  try {
    with_torch(cuda, [] { throw std::bad_alloc(); });
    FAIL("nothing thrown");
  } catch (const out_of_memory&) {
    FAIL("became out of memory");
  } catch (const std::bad_alloc&) {
    SUCCEED("passed through");
  }
}

TEST_CASE("a real CPU tensor larger than the process can allocate fails at "
          "once and becomes out_of_memory with its size",
          "[torch][boundary]") {
  try {
    with_torch(cpu, [] {
      vidnode::test::allocate_cpu_tensor(vidnode::test::unmappable_bytes);
    });
    FAIL("nothing thrown");
  } catch (const out_of_memory& e) {
    CHECK(e.requested_bytes()
          == static_cast<uint64_t>(vidnode::test::unmappable_bytes));
    CHECK_THAT(e.what(), Catch::Contains("DefaultCPUAllocator: can't "
                                         "allocate memory"));
  }
}

TEST_CASE("on a cpu device the memory meter runs every call, measures "
          "nothing, spends no time and passes out_of_memory through",
          "[torch][boundary]") {
  vidnode::gpu::device_memory_meter meter{cpu};
  int calls = 0;
  meter.measure([&] { ++calls; });
  meter.unmeasured([&] { ++calls; });
  CHECK(calls == 2);
  CHECK(meter.peak_bytes() == 0);
  CHECK(meter.held_bytes() == 0);
  CHECK(meter.measurement_time().count() == 0);
  try {
    meter.measure([] { throw out_of_memory("out of memory", 1024); });
    FAIL("nothing thrown");
  } catch (const out_of_memory& e) {
    CHECK(e.requested_bytes() == 1024);
  }
}
