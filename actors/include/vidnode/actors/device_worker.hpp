#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <chrono>

#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/lease_book.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/pipeline.hpp"

namespace vidnode::actors {

/// The models loaded on one device, kept across restarts of its worker
/// after an out-of-memory error (the error ends a job's attempt, not the
/// loaded weights), so the next worker does not load them again. Its
/// supervisor drops them after any other death. Used by one worker at a
/// time: a worker starts only after its predecessor is down.
struct device_models {
  /// Ready models by name.
  std::map<std::string, std::shared_ptr<gpu::pipeline>> ready;

  /// Device memory the ready models hold, in bytes.
  uint64_t resident_bytes() const;

  /// The ready models' names.
  std::vector<std::string> names() const;
};

/// How the ranks of a gang meet on a device worker (node_settings'
/// collective_host and gang_timeout).
struct gang_settings {
  /// The address other nodes reach this one at (rank 0's rendezvous).
  std::string collective_host = "127.0.0.1";
  /// Longest wait for every rank to join, and for one collective.
  caf::timespan timeout = std::chrono::seconds{60};
};

/// Spawns the worker of one device. It owns the device's pipeline cache:
/// only it touches the cache, so a model is loaded at most once per device
/// whatever the arrival pattern (jobs that arrive while their model loads
/// wait for that load). A job advances one step per message, so aborts are
/// served between steps; up to `max_concurrency` jobs run at once (lanes,
/// below).
///
/// Models already in `kept` are served without loading; models the worker
/// loads are added to it.
///
/// Reports go to `admission`: `loaded` when a model is in the cache,
/// `progress` after each step, `done` or `failed` when an attempt ends. On
/// an out-of-memory error it reports `failed(out_of_memory)` and exits with
/// that reason; on any other unexpected exception it exits with
/// `worker_lost`. Its supervisor restarts it.
///
/// Frames a pipeline produces are encoded to `output_dir`/job-ID.mp4 (or
/// .y4m in builds without FFmpeg; the directory is created if missing); the
/// job's output is that path.
///
/// A ticket's audio_path is a path on the head. A worker whose `admission`
/// runs on another node copies it first, in chunks through admission
/// (`read_input`) that fit in `max_message_size` (the longest message this
/// node accepts; runtime::chunk_bytes_within), to `output_dir`/copies/ on a
/// detached actor of its own, then starts the attempt; the attempt holds
/// its device slot meanwhile (a copy over the cluster's network, never a
/// download from the URL, which the head did before the job was queued).
/// The copy is removed when the attempt ends, is aborted, or the worker
/// exits; a failed copy fails the attempt (transfer_failed).
///
/// Every attempt it takes, and how it ended, goes into `book` (null: a book
/// of its own), which the supervisor hands to the device's next worker:
/// a worker node reports what it holds when it registers again, and a
/// worker sends the kept outcomes again when admission says `resume`.
///
/// A ticket of a gang (world > 1) runs as one rank (pipeline::begin_rank):
/// rank 0 opens the gang's rendezvous on `gang.collective_host` and sends
/// admission its address; the other ranks start once admission handed it
/// to them. Every rank joins the gang's collectives (blocking, at most
/// `gang.timeout`) and then runs a step only once admission said that
/// every rank finished the steps before it (advance): the ranks run in
/// lockstep, and an abort reaches each before its next step. A collective
/// that fails (a rank left or never came) fails the attempt with
/// worker_lost; the worker carries on.
///
/// With `detached`, the worker runs on its own thread (pipelines that block,
/// e.g. libtorch); otherwise in the actor pool (sim devices, and tests on
/// the test coordinator).
///
/// Lanes: a detached worker of a cpu or cuda device with `max_concurrency`
/// above 1 runs its jobs' pipeline calls on that many lanes, each a thread
/// of its own (gpu::enter_lane: its own CUDA stream, or a share of the
/// intra-op threads), so they run side by side; a lane holds one attempt
/// from its start (its model's load included) to its decoding. The lanes
/// share the worker's model cache (a model is still loaded once, on the
/// lane of the first attempt that needs it; later attempts wait for it).
/// Aborts, deadlines and progress work per attempt as before, between its
/// steps. An out-of-memory error or a crash in one lane fails that attempt
/// and ends the worker once the other lanes' calls in flight returned (no
/// successor runs beside them); admission retries the other lanes' jobs at
/// no charge. Gang ranks run on the worker's own thread. Without lanes
/// (sim devices, one job at a time), up to `max_concurrency` jobs
/// interleave their steps on the worker's thread.
device_worker_actor
spawn_device_worker(caf::actor_system& sys, const runtime::device_info& device,
                    admission_control_actor admission,
                    std::shared_ptr<const gpu::model_catalog> catalog,
                    std::string output_dir, uint64_t max_message_size,
                    bool detached, std::shared_ptr<device_models> kept,
                    std::shared_ptr<lease_book> book = nullptr,
                    gang_settings gang = {}, int32_t max_concurrency = 1);

} // namespace vidnode::actors
