#pragma once

/// @file
/// What a node tells whoever counts its events (the metrics endpoint,
/// net/metrics.hpp). Admission, the journal writer and the cluster code call
/// it; it knows nothing of how the events are counted or exported.

#include <cstdint>
#include <memory>
#include <string>

#include <caf/timespan.hpp>

#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

struct job_phases;

/// How a job ended, as told to node_observer::job_ended.
struct job_end {
  std::string model;
  /// The priority it was submitted with (0 to 9).
  int32_t priority = 0;
  /// A terminal state.
  runtime::job_state state = runtime::job_state::succeeded;
  /// The name of its error code (runtime::to_string(errc): "out_of_memory",
  /// "queue_timeout"), "none" when it succeeded, "other" for an error that
  /// is not vidnode's.
  std::string error;
  /// Time it spent queued over all its attempts.
  caf::timespan queue_time{0};
  /// How long its last attempt ran (zero if it never started).
  caf::timespan run_time{0};
  /// Attempts it was given (0: it never ran).
  int32_t attempts = 0;
};

/// Why a device's worker failed a job (node_observer::device_failed).
enum class device_fault : uint8_t {
  /// The device ran out of memory.
  out_of_memory,
  /// The pipeline call crashed the worker.
  crash,
};

/// "out_of_memory" or "crash".
const char* to_string(device_fault fault) noexcept;

/// Receives a node's events as they happen: counters and histograms are
/// made from them (gauges are better read from a snapshot; see
/// admission_control_actor's `metrics`).
///
/// Thread-safety: the methods are called from actors on any thread, and
/// from the journal's writer thread, at the same time; an implementation
/// must be thread-safe and must return at once (no I/O, no lock held for
/// long): the caller is an actor and waits for it. Every method does
/// nothing by default.
///
/// Guarantees: job_ended is called once per job that ends in this
/// process (jobs taken up again from the journal included, so a restarted
/// head may count more ends than acceptances); job_accepted once per job
/// accepted by this process, once its record is durable (a repeated
/// idempotency key is no new job). Node and device events are called on
/// the head, for every node of the cluster. attempt_phases is called on the
/// head once per attempt whose worker reported success (a gang's: once all
/// its ranks did, with rank 0's phases), before job_ended of its job (which
/// may still fail if its output's upload does).
class node_observer {
public:
  virtual ~node_observer();

  /// A job was accepted (durably, with a journal) and queues now.
  virtual void job_accepted(const std::string& model, int32_t priority);

  /// A job that had failed or timed out was queued again by a client's
  /// retry (durably, with a journal); job_accepted is not called for it.
  virtual void job_retried(const std::string& model, int32_t priority);

  /// A job ended.
  virtual void job_ended(const job_end& end);

  /// The worker of `device` ("sim:0") on node `node` failed a job with
  /// `fault` (it exits next and is restarted).
  virtual void device_failed(const std::string& node, const std::string& device,
                             device_fault fault);

  /// Worker node `node` registered with the head.
  virtual void node_joined(const std::string& node);

  /// The head lost worker node `node` (its connection closed or fell
  /// silent, or it stopped).
  virtual void node_lost(const std::string& node);

  /// An attempt of a job of `model` succeeded on a device of `kind`; its
  /// worker spent `phases` on it (actors::job_phases; for a gang, rank 0's).
  /// Phases the worker did not time are zero. Called from admission: it
  /// must cost next to nothing.
  virtual void attempt_phases(const std::string& model,
                              runtime::device_kind kind,
                              const job_phases& phases);

  /// A journal commit took `duration` (the write and its sync); `ok`:
  /// whether it succeeded. Called on the journal writer's thread.
  virtual void journal_committed(caf::timespan duration, bool ok);
};

/// An observer that ignores every event (shared, never null): what the node
/// uses when it is given none.
std::shared_ptr<node_observer> null_observer();

} // namespace vidnode::actors
