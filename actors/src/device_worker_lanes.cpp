/// @file
/// A device worker's lanes: threads of their own that run its pipeline
/// calls, so a device that takes several jobs at once runs them side by
/// side (device_worker_state.hpp).

#include <algorithm>

#include <caf/event_based_actor.hpp>

#include "vidnode/gpu/lanes.hpp"

#include "device_worker_state.hpp"

namespace vidnode::actors {

namespace {

struct lane_state {
  static inline const char* name = "vidnode.lane";
  bool entered = false;
};

caf::behavior lane_behavior(caf::stateful_actor<lane_state>* self,
                            runtime::device_info device, int32_t index,
                            int32_t count) {
  return {
    [=](lane_call_ptr& call) -> lane_call_ptr {
      // Set up on the first call: the thread is certainly the lane's then.
      if (!self->state.entered) {
        gpu::enter_lane(device, index, count);
        self->state.entered = true;
      }
      call->started = std::chrono::steady_clock::now();
      try {
        call->work();
      } catch (...) {
        call->thrown = std::current_exception();
      }
      call->ended = std::chrono::steady_clock::now();
      // What the call captured (pipelines, tensors) is released here, on
      // the lane's thread, not on the worker's.
      call->work = nullptr;
      return std::move(call);
    },
  };
}

} // namespace

caf::actor spawn_lane(caf::local_actor* worker,
                      const runtime::device_info& device, int32_t index,
                      int32_t count) {
  return worker->spawn<caf::detached + caf::linked>(lane_behavior, device,
                                                    index, count);
}

void device_worker_state::open_lanes(int32_t count) {
  lanes.resize(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i)
    lanes[static_cast<size_t>(i)].thread = spawn_lane(self, device, i, count);
}

int32_t device_worker_state::take_lane(uint64_t lease) {
  for (size_t i = 0; i < lanes.size(); ++i)
    if (lanes[i].lease == 0 && !lanes[i].busy) {
      lanes[i].lease = lease;
      return static_cast<int32_t>(i);
    }
  return -1;
}

int32_t device_worker_state::lane_of(uint64_t lease) const {
  for (size_t i = 0; i < lanes.size(); ++i)
    if (lanes[i].lease == lease)
      return static_cast<int32_t>(i);
  return -1;
}

void device_worker_state::release_lane(uint64_t lease) {
  auto index = lane_of(lease);
  if (index < 0)
    return;
  lanes[static_cast<size_t>(index)].lease = 0;
  start_queued();
}

void device_worker_state::start_queued() {
  while (!exiting && !lane_queue.empty()
         && std::any_of(lanes.begin(), lanes.end(), [](const lane& x) {
              return x.lease == 0 && !x.busy;
            })) {
    auto ticket = std::move(lane_queue.front());
    lane_queue.erase(lane_queue.begin());
    start(std::move(ticket));
  }
}

void device_worker_state::on_lane(int32_t index, std::function<void()> work,
                                  std::function<void(lane_call&)> then) {
  auto& target = lanes[static_cast<size_t>(index)];
  target.busy = true;
  auto call = std::make_shared<lane_call>();
  call->work = std::move(work);
  self->request(target.thread, caf::infinite, std::move(call))
    .then(
      [=](lane_call_ptr& done) {
        lanes[static_cast<size_t>(index)].busy = false;
        if (exiting) {
          exit_after_lanes(exit_reason);
          return;
        }
        then(*done);
        if (lanes[static_cast<size_t>(index)].lease == 0)
          start_queued();
      },
      [=](caf::error& err) {
        // A lane never fails on its own: only a dying worker ends it.
        lanes[static_cast<size_t>(index)].busy = false;
        if (!exiting)
          exit_after_lanes(make_error(runtime::errc::worker_lost,
                                      where() + ": lane "
                                        + std::to_string(index)
                                        + " ended: " + runtime::describe(err)));
        else
          exit_after_lanes(exit_reason);
      });
}

device_worker_state::active_attempt*
device_worker_state::returned(runtime::job_id id, uint64_t lease,
                              lane_call& call) {
  auto found = find_attempt(lease);
  if (found == nullptr)
    return nullptr; // aborted meanwhile
  if (call.thrown
      && !guarded(id, lease, [&] { std::rethrow_exception(call.thrown); }))
    return nullptr;
  return found;
}

void device_worker_state::exit_after_lanes(caf::error reason) {
  exiting = true;
  exit_reason = std::move(reason);
  if (std::none_of(lanes.begin(), lanes.end(),
                   [](const lane& x) { return x.busy; }))
    self->quit(exit_reason);
}

} // namespace vidnode::actors
