#pragma once

/// @file
/// What one device of a worker node holds for the head: the attempts its
/// workers run, and the outcomes of those that ended recently. A report
/// sent to a head that has just died is lost without a trace (CAF drops
/// messages to an actor that is gone), so outcomes are kept here and sent
/// again when the node has rejoined and the head took the attempts over.

#include <cstdint>
#include <atomic>
#include <deque>
#include <limits>
#include <mutex>
#include <vector>

#include <caf/error.hpp>

#include "vidnode/actors/interfaces.hpp"

namespace vidnode::actors {

/// The attempts of one device, shared by its successive workers and its
/// supervisor (each worker is one actor, possibly on a thread of its own,
/// and the supervisor reads it for a registration: every member locks).
class lease_book {
public:
  /// Most outcomes kept per device; the oldest go first. A head that hears
  /// an outcome tells the node to forget it when the node next registers;
  /// until then this bounds what a node keeps for heads that did.
  static constexpr size_t max_outcomes = 256;

  /// How one attempt ended.
  struct outcome {
    runtime::job_id id;
    uint64_t lease = 0;
    /// Set for a success: the output and its peak memory.
    bool succeeded = false;
    finished_job result;
    /// Set for a failure: why.
    caf::error error;
  };

  /// A worker took attempt `lease` of job `id`.
  void started(runtime::job_id id, uint64_t lease);

  /// Attempt `lease` ended as `how` (an out-of-memory failure or a crash is
  /// not kept: the worker dies with it, and forget_running drops it).
  void ended(outcome how);

  /// Forgets attempt `lease`, running or ended (aborted, or the head no
  /// longer wants it).
  void forget(uint64_t lease);

  /// The device's worker died: the attempts it ran are gone.
  void forget_running();

  /// Every attempt held, running or ended, as seen by device `device`.
  std::vector<held_lease> held(int32_t device) const;

  /// The leases of the attempts running.
  std::vector<uint64_t> running() const;

  /// The node heard from its head: its attempts may run until `until`
  /// (the actor clock's nanoseconds since its epoch; the maximum: for ever).
  void renew(int64_t until) noexcept;

  /// Whether the lease of the device's attempts has run out at `now`: the
  /// head has not been heard from for so long that it may run them again
  /// elsewhere. A worker then stops them rather than take another step or
  /// report a success.
  bool expired(int64_t now) const noexcept;

  /// The outcomes kept, oldest first.
  std::vector<outcome> outcomes() const;

private:
  mutable std::mutex mutex_;
  std::atomic<int64_t> renewed_until_{std::numeric_limits<int64_t>::max()};
  std::vector<held_lease> running_;
  std::deque<outcome> ended_;
};

} // namespace vidnode::actors
