#pragma once

/// @file
/// Collectives between the ranks of a gang (one multi-device job): one
/// small interface with two backends, chosen by device kind. cpu devices
/// use Gloo (libtorch's c10d ProcessGroupGloo over a TCPStore); cuda devices
/// use NCCL where the build found it. Nothing outside gpu/ knows which.
///
/// How a gang meets: rank 0 calls `host_rendezvous`, which opens what the
/// others need to find it (Gloo: a TCPStore server; NCCL: an ncclUniqueId)
/// and returns it as an opaque string. That string travels to the other
/// ranks in a CAF message (through admission); every rank, rank 0 included,
/// then calls `join_gang` with it. Joining blocks until all `world` ranks
/// joined, or throws collective_error when `timeout` passes first, so a
/// rank that never comes fails the job instead of hanging it.
///
/// libtorch headers stay out of this file: tensors are forward-declared and
/// only gpu/ sources (and tests that link libtorch) call the tensor
/// operations.

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "vidnode/runtime/device.hpp"

namespace at {
class Tensor;
} // namespace at

namespace vidnode::gpu {

/// Thrown by every collective call that fails: a peer that left (its
/// connection closed), a timeout, a backend error. The gang's job attempt
/// is over; the device is unharmed.
class collective_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Which backend a gang of devices of `kind` uses: "gloo" (cpu), "nccl"
/// (cuda, in builds with NCCL), or empty when the kind has none (sim, and
/// cuda without NCCL): such devices cannot run a gang's collectives.
std::string collective_backend_for(runtime::device_kind kind);

/// What rank 0 opened for its gang: keep it alive until every rank joined
/// (destroying it earlier makes the others' joins fail).
class rendezvous_host {
public:
  virtual ~rendezvous_host() = default;

  /// What the other ranks pass to join_gang: opaque, at most a few hundred
  /// bytes, safe to send in a CAF message.
  virtual const std::string& address() const = 0;
};

/// Opens the rendezvous of a gang on a device of `device`'s kind, as its
/// rank 0. `host` is the address (name or IP) the other ranks reach this
/// process at (127.0.0.1 on one machine); Gloo listens on an ephemeral TCP
/// port of every interface. Throws collective_error when the kind has no
/// backend or the rendezvous cannot be opened.
std::unique_ptr<rendezvous_host>
host_rendezvous(const runtime::device_info& device, const std::string& host);

/// One rank's membership in a gang: collectives over tensors on its device.
/// Each call is collective: every rank of the gang must make the same calls
/// in the same order with tensors of the same shapes (the shapes below are
/// per rank). Calls block until done and throw collective_error on failure.
/// Used by one thread at a time. Destroying it leaves the gang: the other
/// ranks' pending and later calls fail promptly (Gloo: at once, their
/// connections close; NCCL cannot always see a peer leave, e.g. over
/// shared memory or NVLink: then at the latest after their `timeout`).
class communicator {
public:
  virtual ~communicator() = default;

  /// This rank, in [0, world()).
  virtual int32_t rank() const noexcept = 0;

  /// Ranks in the gang.
  virtual int32_t world() const noexcept = 0;

  /// "gloo" or "nccl".
  virtual const char* backend() const noexcept = 0;

  /// Every rank's `input` concatenated along dimension 0, in rank order:
  /// input [n, ...] gives [world * n, ...].
  virtual at::Tensor all_gather(const at::Tensor& input) = 0;

  /// Splits `input` along dimension 0 into world() equal chunks and sends
  /// chunk r to rank r; returns what each rank sent this one, concatenated
  /// in rank order. input [world * n, ...] gives [world * n, ...].
  virtual at::Tensor all_to_all(const at::Tensor& input) = 0;

  /// Sums `tensor` over the ranks, in place.
  virtual void all_reduce_sum(at::Tensor& tensor) = 0;

  /// Returns once every rank has called it.
  virtual void barrier() = 0;
};

/// Joins the gang whose rank 0 returned `address` from host_rendezvous, as
/// rank `rank` of `world` on `device`. Blocks until every rank joined;
/// throws collective_error after `timeout`, on a malformed address, or when
/// the device's kind has no backend. Each later collective also fails
/// after `timeout` without progress.
std::unique_ptr<communicator> join_gang(const runtime::device_info& device,
                                        const std::string& address,
                                        int32_t rank, int32_t world,
                                        std::chrono::milliseconds timeout);

} // namespace vidnode::gpu
