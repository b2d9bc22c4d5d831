#pragma once

#include <memory>
#include <vector>

#include <caf/fwd.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/actors/node_observer.hpp"
#include "vidnode/actors/transfers.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::actors {

/// Spawns the admission actor of a node: it owns the queue, the ledger of
/// every device's slots and memory, and every deadline (its own timers, so a
/// queue timeout fires while every device is busy). It runs in the actor
/// pool and never blocks.
///
/// Guarantees: every accepted job ends in exactly one terminal state, which
/// every waiter receives; at most `max_concurrency` jobs run on a device and
/// the memory reserved on a device never exceeds its size; a refused request
/// changes nothing. Devices are attached (and detached when their worker
/// dies) by the node supervisor.
///
/// `devices` are the node's devices: jobs are admitted against them from the
/// start and queue until their workers attach. `settings` must have passed
/// runtime::validate.
///
/// `transfers` moves inputs and outputs (audio_url, output_url,
/// webhook_url), each transfer on a detached actor of its own; without it,
/// jobs that name URLs are refused (invalid_request). A job's audio is
/// fetched before it may queue for a device (its queue timeout runs
/// meanwhile); its video is uploaded after its device was released.
///
/// `journal`, if given, makes the admission durable: every accepted job is
/// journaled before it is acknowledged (group commits on a thread of the
/// journal's own), and at start the jobs the journal holds are taken up
/// again (see admission_state::open_journal). A job whose record cannot be
/// written is refused with errc::journal_unavailable.
///
/// `events`, if given, is told of jobs accepted and ended, device faults,
/// nodes joining and lost, and journal commits (see node_observer).
admission_control_actor
spawn_admission(caf::actor_system& sys, const runtime::node_settings& settings,
                std::vector<runtime::device_info> devices,
                std::shared_ptr<const gpu::model_catalog> catalog,
                std::shared_ptr<transfers> transfers = nullptr,
                std::shared_ptr<journal_store> journal = nullptr,
                std::shared_ptr<node_observer> events = nullptr);

} // namespace vidnode::actors
