#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/gpu/model_catalog.hpp"

namespace vidnode::actors {

/// Spawns the worker of one device. It owns the device's pipeline cache:
/// only it touches the cache, so a model is loaded at most once per device
/// whatever the arrival pattern (jobs that arrive while their model loads
/// wait for that load). A job advances one step per message, so aborts are
/// served between steps; up to `max_concurrency` jobs interleave their steps.
///
/// Reports go to `admission`: `loaded` when a model is in the cache,
/// `progress` after each step, `done` or `failed` when an attempt ends. On
/// an out-of-memory error it reports `failed(out_of_memory)` and exits with
/// that reason; on any other unexpected exception it exits with
/// `worker_lost`. Its supervisor restarts it.
///
/// Frames a pipeline produces are encoded to `output_dir`/job-ID.mp4 (the
/// directory is created if missing); the job's output is that path.
///
/// With `detached`, the worker runs on its own thread (pipelines that block,
/// e.g. libtorch); otherwise in the actor pool (sim devices, and tests on
/// the test coordinator).
device_worker_actor
spawn_device_worker(caf::actor_system& sys, const runtime::device_info& device,
                    admission_control_actor admission,
                    std::shared_ptr<const gpu::model_catalog> catalog,
                    std::string output_dir, bool detached);

} // namespace vidnode::actors
