#include "vidnode/actors/node_supervisor.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/device_worker.hpp"
#include "vidnode/actors/restart_intensity.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

namespace {

struct node_supervisor_state {
  using pointer =
    node_supervisor_actor::stateful_pointer<node_supervisor_state>;

  static inline const char* name = "vidnode.node_supervisor";

  explicit node_supervisor_state(pointer self) : self(self) {}

  struct supervised_device {
    runtime::device_info info;
    device_worker_actor worker;
    std::unique_ptr<restart_intensity> intensity;
    int32_t restarts = 0;
    bool quarantined = false;
    /// Loaded models, kept for the next worker after an out-of-memory exit.
    std::shared_ptr<device_models> models = std::make_shared<device_models>();
  };

  pointer self;
  runtime::node_settings settings;
  admission_control_actor admission;
  std::shared_ptr<const gpu::model_catalog> catalog;
  std::vector<supervised_device> devices;
  bool shutting_down = false;
  std::vector<caf::typed_response_promise<caf::ok_atom>> shutdown_promises;

  void start_worker(supervised_device& device) {
    auto detached = device.info.kind != runtime::device_kind::sim
                    || settings.detach_sim_workers;
    device.worker =
      spawn_device_worker(self->system(), device.info, admission, catalog,
                          settings.output_dir, detached, device.models);
    self->monitor(device.worker);
    self->send(admission, attach_atom::value, device.info, device.worker,
               device.restarts, device.models->names(),
               device.models->resident_bytes());
  }

  size_t live_workers() const {
    size_t n = 0;
    for (const auto& device : devices)
      if (device.worker)
        ++n;
    return n;
  }

  void on_down(const caf::down_msg& msg) {
    for (auto& device : devices) {
      if (!device.worker || device.worker.address() != msg.source)
        continue;
      device.worker = nullptr;
      if (shutting_down) {
        if (live_workers() == 0)
          finish_shutdown();
        return;
      }
      auto reason = msg.reason
                      ? msg.reason
                      : runtime::make_error(runtime::errc::worker_lost,
                                            "device " + device.info.name()
                                              + ": worker exited");
      // Out of memory ends a job's attempt; the loaded weights are intact.
      // After anything else nothing on the device is trusted.
      if (!runtime::is(reason, runtime::errc::out_of_memory))
        device.models = std::make_shared<device_models>();
      auto delay = device.intensity->on_death(self->clock().now());
      device.quarantined = !delay;
      self->send(admission, detach_atom::value, device.info.index, reason,
                 device.quarantined);
      if (delay) {
        spdlog::warn("device {}: worker died ({}); restart in {}",
                     device.info.name(), runtime::describe(reason),
                     runtime::format_duration(*delay));
        self->delayed_send(self, *delay, restart_atom::value,
                           device.info.index);
      }
      return;
    }
  }

  void restart(int32_t index) {
    if (shutting_down || index < 0
        || static_cast<size_t>(index) >= devices.size())
      return;
    auto& device = devices[static_cast<size_t>(index)];
    if (device.worker || device.quarantined)
      return;
    device.restarts += 1;
    start_worker(device);
  }

  void finish_shutdown() {
    for (auto& promise : shutdown_promises)
      promise.deliver(caf::ok_atom::value);
    shutdown_promises.clear();
  }
};

node_supervisor_actor::behavior_type node_supervisor_behavior(
  node_supervisor_state::pointer self, runtime::node_settings settings,
  std::vector<runtime::device_info> devices, admission_control_actor admission,
  std::shared_ptr<const gpu::model_catalog> catalog) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.admission = std::move(admission);
  st.catalog = std::move(catalog);
  for (auto& info : devices) {
    node_supervisor_state::supervised_device device;
    device.info = info;
    device.intensity =
      std::make_unique<restart_intensity>(st.settings.restarts);
    st.devices.push_back(std::move(device));
  }
  for (auto& device : st.devices)
    st.start_worker(device);
  self->set_down_handler([=](caf::down_msg& msg) { self->state.on_down(msg); });
  return {
    [=](restart_atom, int32_t index) { self->state.restart(index); },
    [=](shutdown_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      st.shutting_down = true;
      if (st.live_workers() == 0)
        return caf::ok_atom::value;
      auto promise = self->make_response_promise<caf::ok_atom>();
      st.shutdown_promises.push_back(promise);
      for (auto& device : st.devices)
        if (device.worker)
          self->send_exit(device.worker, caf::exit_reason::user_shutdown);
      return promise;
    },
  };
}

} // namespace

node_supervisor_actor spawn_node_supervisor(
  caf::actor_system& sys, const runtime::node_settings& settings,
  std::vector<runtime::device_info> devices, admission_control_actor admission,
  std::shared_ptr<const gpu::model_catalog> catalog) {
  return sys.spawn(node_supervisor_behavior, settings, std::move(devices),
                   std::move(admission), std::move(catalog));
}

} // namespace vidnode::actors
