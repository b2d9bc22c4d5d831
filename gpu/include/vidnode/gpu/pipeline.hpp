#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "vidnode/gpu/video.hpp"
#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/job.hpp"

namespace vidnode::gpu {

class communicator;

/// Device time a pipeline call leaves outstanding after it returns. Real
/// pipelines block for as long as their work takes and return zero; the sim
/// pipeline returns its simulated time instead of sleeping, so the device
/// worker can wait on a timer (which tests step on a test clock).
using device_time = std::chrono::nanoseconds;

/// Returned by a call that never completes (the sim pipeline's `hang`).
constexpr device_time never_completes = device_time::max();

/// Thrown by a pipeline when a job cannot be run; the device is unharmed and
/// takes further jobs. `code` says why (invalid_request, unknown_model...).
class job_error : public std::runtime_error {
public:
  /// `what` becomes the context of the error the job reports.
  job_error(runtime::errc code, const std::string& what)
    : std::runtime_error(what), code_(code) {}

  /// The code the job fails with.
  runtime::errc code() const noexcept {
    return code_;
  }

private:
  runtime::errc code_;
};

/// Thrown when the device ran out of memory. The job's attempt is over: the
/// worker reports out_of_memory for it and exits, its supervisor restarts
/// it (keeping the loaded models), admission retries the job with a larger
/// reservation.
class out_of_memory : public std::runtime_error {
public:
  /// `requested_bytes`: the least the job needs, i.e. what it held plus the
  /// allocation that failed, as far as known (0 if unknown).
  out_of_memory(const std::string& what, uint64_t requested_bytes)
    : std::runtime_error(what), requested_bytes_(requested_bytes) {}

  /// The least the job needs, in bytes (0 if unknown).
  uint64_t requested_bytes() const noexcept {
    return requested_bytes_;
  }

private:
  uint64_t requested_bytes_;
};

/// Thrown when the device itself failed, whatever job ran (a GPU that fell
/// off the bus, an uncorrectable memory error; the sim pipeline's `lost`
/// fault). The worker exits; nothing is charged to the jobs it ran, which
/// are retried; the failure counts towards the device's quarantine.
class device_failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// What a finished job produced: a location (sim jobs), or frames that the
/// device worker encodes and stores.
struct job_output {
  /// Path or URL of the output, if the pipeline stored it itself.
  std::string location;
  /// The decoded video, if the pipeline produced frames.
  std::optional<video_frames> video;
  /// Peak memory the job used on the device, in bytes (0 if unknown).
  uint64_t peak_bytes = 0;
};

/// What a job_run measured of its own calls, for the phase breakdown
/// (actors::job_phases). Durations are sums over the run's calls so far.
struct run_profile {
  /// Device kernel time of its step() calls: CUDA event time on cuda
  /// devices, the calls' wall time on cpu devices; zero when unknown.
  device_time kernel{0};
  /// Host time spent reading the allocator's statistics around its calls
  /// (device_memory_meter); zero where nothing is measured.
  device_time memory_measurement{0};
};

/// One job in progress on a device: created by pipeline::begin, advanced one
/// denoising step per call, then finished. Owned by the device worker and
/// called by one thread at a time: the worker's, or the thread of the lane
/// it runs on (the calls of one run are never concurrent, but successive
/// calls may come from different threads only if the device has one lane).
/// Any call may throw job_error, out_of_memory or device_failure; any other
/// exception means the job crashed the worker.
class job_run {
public:
  virtual ~job_run() = default;

  /// What the run measured so far; valid after finish() returned. Cheap:
  /// reading it synchronises nothing.
  virtual run_profile profile() const {
    return {};
  }

  /// Steps this job runs (the job's `steps`).
  virtual int32_t steps() const = 0;

  /// Runs step `index` (0-based, in order).
  virtual device_time step(int32_t index) = 0;

  /// Decodes and stores the output; `busy` receives the device time left.
  virtual job_output finish(device_time& busy) = 0;
};

/// One model loaded on one device. Created by that device's worker, which
/// loads it once and keeps it for every later job. With several lanes
/// (`--max-concurrency`), begin() and the runs' calls are made from the
/// lanes' threads at the same time: a pipeline's begin() must be safe to
/// call concurrently once load() has returned (load() itself runs alone).
class pipeline {
public:
  virtual ~pipeline() = default;

  /// Loads the model's weights onto the device (blocking for real models).
  /// `first_job` is the job that needs it; the sim pipeline reads its
  /// simulated load time from it, real models ignore it.
  virtual device_time load(const runtime::job_spec& first_job) = 0;

  /// Device memory the loaded model holds, in bytes, as measured when it
  /// loaded (0 if unknown, e.g. on cpu devices). Admission leaves it out of
  /// the device's budget for jobs.
  virtual uint64_t resident_bytes() const {
    return 0;
  }

  /// Prepares a job (prompt conditioning, initial latents from the seed);
  /// `attempt` counts from 1. `busy` receives the device time left.
  virtual std::unique_ptr<job_run>
  begin(const runtime::job_spec& spec, int32_t attempt, device_time& busy) = 0;

  /// Prepares rank `rank` of a gang of `world` ranks (spec.ranks) that run
  /// one job together, each on its own device, in lockstep: step i of
  /// every rank runs before step i + 1 of any. `gang` is this rank's
  /// membership (collectives.hpp), which the run keeps; null on devices
  /// whose kind has no collective backend (sim), whose pipelines exchange
  /// nothing. Only rank 0's finish() returns the output; the others return
  /// an empty job_output. The default refuses: a model runs as a gang only
  /// if its pipeline overrides this (job_error invalid_request).
  ///
  /// Besides job_run's exceptions, a gang's step() and finish() throw
  /// collective_error (collectives.hpp) unchanged when a collective fails
  /// (a peer left, a timeout): the gang's attempt is over and the device is
  /// unharmed: the device worker is to end the attempt as failed (retried
  /// like any failed attempt), not as a crash of the device. A rank whose
  /// peers left fails promptly; one whose peers stopped calling blocks in
  /// its collective at most the communicator's timeout.
  virtual std::unique_ptr<job_run>
  begin_rank(const runtime::job_spec& spec, int32_t attempt, int32_t rank,
             int32_t world, std::shared_ptr<communicator> gang,
             device_time& busy);
};

} // namespace vidnode::gpu
