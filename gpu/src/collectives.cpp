#include "vidnode/gpu/collectives.hpp"

#include "collectives_backends.hpp"

// Which backends a build has: Gloo where libtorch and Gloo's headers are
// (libtorch's c10d has ProcessGroupGloo), NCCL
// where CMake found it and libtorch has CUDA (without CUDA tensors there is
// nothing to give NCCL; collectives_nccl.cpp is then only compile-checked).

namespace vidnode::gpu {

namespace {

#if defined(VIDNODE_HAVE_NCCL) && defined(VIDNODE_TORCH_CUDA)
constexpr bool have_nccl = true;
#else
constexpr bool have_nccl = false;
#endif

std::string no_backend(runtime::device_kind kind) {
  switch (kind) {
    case runtime::device_kind::cpu:
      return "cpu devices have no collective backend: this build has no "
             "Gloo (libtorch's c10d with Gloo's headers, Debian's "
             "libgloo-dev)";
    case runtime::device_kind::cuda:
      return "cuda devices have no collective backend: this build has no "
             "NCCL or its libtorch has no CUDA";
    default:
      return std::string{runtime::to_string(kind)}
             + " devices have no collective backend: they run no gangs' "
               "collectives";
  }
}

} // namespace

std::string collective_backend_for(runtime::device_kind kind) {
  switch (kind) {
    case runtime::device_kind::cpu:
#ifdef VIDNODE_HAVE_GLOO
      return "gloo";
#else
      return {};
#endif
    case runtime::device_kind::cuda:
      return have_nccl ? "nccl" : "";
    default:
      return {};
  }
}

std::unique_ptr<rendezvous_host>
host_rendezvous(const runtime::device_info& device, const std::string& host) {
  auto backend = collective_backend_for(device.kind);
  if (backend.empty())
    throw collective_error("cannot host a gang's rendezvous on " + device.name()
                           + ": " + no_backend(device.kind));
#ifdef VIDNODE_HAVE_GLOO
  if (backend == "gloo")
    return host_gloo_rendezvous(host);
#endif
#if defined(VIDNODE_HAVE_NCCL) && defined(VIDNODE_TORCH_CUDA)
  if (backend == "nccl")
    return host_nccl_rendezvous();
#endif
  throw collective_error("no " + backend + " backend in this build");
}

std::unique_ptr<communicator> join_gang(const runtime::device_info& device,
                                        const std::string& address,
                                        int32_t rank, int32_t world,
                                        std::chrono::milliseconds timeout) {
  auto backend = collective_backend_for(device.kind);
  if (backend.empty())
    throw collective_error("cannot join a gang on " + device.name() + ": "
                           + no_backend(device.kind));
  if (world < 1 || rank < 0 || rank >= world)
    throw collective_error("rank " + std::to_string(rank) + " of "
                           + std::to_string(world)
                           + " is no rank of a gang (0 <= rank < world)");
  if (timeout.count() <= 0)
    throw collective_error("a gang's timeout must be positive, not "
                           + std::to_string(timeout.count()) + " ms");
#ifdef VIDNODE_HAVE_GLOO
  if (backend == "gloo")
    return join_gloo_gang(address, rank, world, timeout);
#endif
#if defined(VIDNODE_HAVE_NCCL) && defined(VIDNODE_TORCH_CUDA)
  if (backend == "nccl")
    return join_nccl_gang(device.ordinal, address, rank, world, timeout);
#endif
  throw collective_error("no " + backend + " backend in this build");
}

} // namespace vidnode::gpu
