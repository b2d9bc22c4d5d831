#include "vidnode/actors/node_supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <functional>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/device_worker.hpp"
#include "vidnode/actors/file_chunks.hpp"
#include "vidnode/actors/preload.hpp"
#include "vidnode/actors/restart_intensity.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "node_lifecycle.hpp"
#include "stray_errors.hpp"

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
    /// Its worker was ended to be replaced by one reporting to another
    /// admission actor (bind): it restarts at once, models kept.
    bool replacing = false;
    /// Loaded models, kept for the next worker after an out-of-memory exit.
    std::shared_ptr<device_models> models = std::make_shared<device_models>();
    /// The device's attempts, kept across its workers and across heads.
    std::shared_ptr<lease_book> book = std::make_shared<lease_book>();
    /// Models to keep loaded on it (--preload).
    std::vector<std::string> preload;
    /// Whether its first worker was sent its preloads: later workers
    /// reload them in the background.
    bool preloads_sent = false;
  };

  pointer self;
  runtime::node_settings settings;
  admission_control_actor admission;
  std::shared_ptr<const gpu::model_catalog> catalog;
  std::vector<supervised_device> devices;
  bool shutting_down = false;
  std::vector<caf::typed_response_promise<caf::ok_atom>> shutdown_promises;
  /// First preloads (of the first worker of each device) not yet finished.
  size_t preloads_pending = 0;
  /// Told once, when every first preload has finished (none) or the first
  /// one failed; then reset.
  std::function<void(const caf::error&)> preloaded;

  /// Longest wait for admission's verdict on a death (a remote head that
  /// vanished never answers).
  static constexpr caf::timespan detach_timeout = std::chrono::seconds{10};

  void start_worker(supervised_device& device) {
    if (!admission)
      return;
    auto detached = device.info.kind != runtime::device_kind::sim
                    || settings.detach_sim_workers;
    device.worker = spawn_device_worker(
      self->system(), device.info, admission, catalog, settings.output_dir,
      settings.max_message_size, detached, device.models, device.book,
      gang_settings{settings.collective_host, settings.gang_timeout},
      settings.max_concurrency);
    self->monitor(device.worker);
    self->send(admission, attach_atom::value, device.info, device.worker,
               device.restarts, device.models->names(),
               device.models->resident_bytes());
    send_preloads(device);
  }

  /// Asks `device`'s new worker to load the device's preloads it lacks: the
  /// first worker's count towards readiness (preload_finished); a later
  /// worker's (after a crash emptied the device's models) load in the
  /// background while jobs for them wait on the load like for any other,
  /// and a failure is only logged.
  void send_preloads(supervised_device& device) {
    auto first = !device.preloads_sent;
    device.preloads_sent = true;
    auto loaded = device.models->names();
    for (const auto& model : device.preload) {
      if (std::find(loaded.begin(), loaded.end(), model) != loaded.end()) {
        if (first)
          preload_finished(caf::none);
        continue;
      }
      auto name = device.info.name();
      if (!first)
        spdlog::info("device {}: reloading preloaded model {} in the "
                     "background after the worker's restart",
                     name, model);
      auto started = std::chrono::steady_clock::now();
      auto seconds = [started] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now()
                                             - started)
          .count();
      };
      auto timeout = settings.preload_timeout;
      self->request(device.worker, timeout, preload_atom::value, model)
        .then(
          [=](bool) {
            spdlog::info("device {}: {} {} in {:.3f} s", name,
                         first ? "preloaded" : "reloaded", model, seconds());
            if (first)
              self->state.preload_finished(caf::none);
          },
          [=](caf::error& err) {
            auto why = err == caf::sec::request_timeout ? runtime::make_error(
                         runtime::errc::worker_lost,
                         "device " + name + ": preloading " + model
                           + " did not finish within "
                           + runtime::format_duration(timeout)
                           + " (--preload-timeout); the load may hang")
                                                        : std::move(err);
            if (first) {
              spdlog::error("device {}: preloading {} failed: {}", name, model,
                            runtime::describe(why));
              self->state.preload_finished(why);
            } else {
              spdlog::warn("device {}: reloading {} in the background failed "
                           "({}); jobs of it load it themselves",
                           name, model, runtime::describe(why));
            }
          });
    }
  }

  /// One first preload ended, `err` if it failed: tells `preloaded` once
  /// every first preload has finished, or at the first failure.
  void preload_finished(const caf::error& err) {
    if (preloads_pending > 0)
      --preloads_pending;
    if ((err || preloads_pending == 0) && preloaded) {
      auto tell = std::move(preloaded);
      preloaded = nullptr;
      tell(err);
    }
  }

  /// The devices as metrics show them (a worker node's own endpoint).
  std::vector<device_metrics> metrics() const {
    std::vector<device_metrics> result;
    auto node = node_name_of(settings);
    for (const auto& device : devices) {
      device_metrics entry;
      auto& status = entry.status;
      auto running = device.book->running().size();
      status.node = node;
      status.device = device.info.name();
      status.state = device.quarantined ? "quarantined"
                     : !device.worker ? (admission ? "restarting" : "starting")
                     : running > 0    ? "busy"
                                      : "idle";
      status.slots_in_use = static_cast<int32_t>(running);
      status.slots = settings.max_concurrency;
      status.memory_bytes = device.info.memory_bytes;
      status.restarts = device.restarts;
      result.push_back(std::move(entry));
    }
    return result;
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
      device.book->forget_running();
      if (shutting_down) {
        if (live_workers() == 0)
          finish_shutdown();
        return;
      }
      if (device.replacing) {
        device.replacing = false;
        if (!device.quarantined)
          start_worker(device);
        return;
      }
      if (!admission) {
        // No head to report to: a new worker starts once one is bound.
        device.models = std::make_shared<device_models>();
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
      // Admission knows which jobs ran there, so it decides who is to blame.
      auto index = device.info.index;
      auto asked = admission;
      self
        ->request(admission, detach_timeout, detach_atom::value, index, reason)
        .then(
          [=](bool device_at_fault) {
            self->state.after_death(index, reason, device_at_fault);
          },
          [=](caf::error&) {
            // Admission is gone: the node is stopping, or the head was lost
            // (a worker starts when the next one is bound).
            if (self->state.admission == asked)
              self->state.after_death(index, reason, false);
          });
      return;
    }
  }

  supervised_device* device_at(int32_t index) {
    if (index < 0 || static_cast<size_t>(index) >= devices.size())
      return nullptr;
    return &devices[static_cast<size_t>(index)];
  }

  /// A device's worker died and admission said who is to blame: a job's own
  /// failure restarts the worker after the base backoff; a failure of the
  /// device counts towards its restart intensity.
  void after_death(int32_t index, const caf::error& reason,
                   bool device_at_fault) {
    auto device = device_at(index);
    if (shutting_down || device == nullptr || device->worker
        || device->quarantined)
      return;
    if (!device_at_fault) {
      spdlog::info("device {}: worker died under a job that is charged for "
                   "it ({}); restart in {}",
                   device->info.name(), runtime::describe(reason),
                   runtime::format_duration(settings.restarts.backoff));
      self->delayed_send(self, settings.restarts.backoff, restart_atom::value,
                         index);
      return;
    }
    auto delay = device->intensity->on_death(self->clock().now());
    if (!delay) {
      quarantine(*device, reason);
      return;
    }
    spdlog::warn("device {}: worker died ({}); restart in {}",
                 device->info.name(), runtime::describe(reason),
                 runtime::format_duration(*delay));
    self->delayed_send(self, *delay, restart_atom::value, index);
  }

  /// A job that failed on the device succeeded elsewhere: the failure was
  /// the device's.
  void on_fault(int32_t index, const caf::error& evidence) {
    auto device = device_at(index);
    if (shutting_down || device == nullptr || device->quarantined)
      return;
    spdlog::warn("device {} is blamed: {}", device->info.name(),
                 runtime::describe(evidence));
    if (!device->intensity->on_death(self->clock().now()))
      quarantine(*device, evidence);
  }

  void quarantine(supervised_device& device, const caf::error& reason) {
    auto cooldown = settings.restarts.quarantine_cooldown;
    device.quarantined = true;
    auto why = runtime::make_error(
      runtime::errc::worker_lost,
      "failed more than " + std::to_string(settings.restarts.max_restarts)
        + " times within " + runtime::format_duration(settings.restarts.window)
        + " whatever ran on it; last: " + runtime::describe(reason));
    if (admission)
      self->send(admission, quarantine_atom::value, device.info.index, why,
                 cooldown);
    self->delayed_send(self, cooldown, probe_atom::value, device.info.index);
  }

  /// The cool-down of a quarantined device has passed: it takes jobs again
  /// on probation (its next failure within the window quarantines it again).
  void probe(int32_t index) {
    auto device = device_at(index);
    if (shutting_down || device == nullptr || !device->quarantined)
      return;
    device->quarantined = false;
    device->intensity->on_probe(self->clock().now());
    spdlog::info("device {}: probing after the quarantine cool-down",
                 device->info.name());
    if (device->worker) {
      if (admission)
        self->send(admission, probe_atom::value, index);
      return;
    }
    device->restarts += 1;
    start_worker(*device);
  }

  void restart(int32_t index) {
    auto device = device_at(index);
    if (shutting_down || device == nullptr || device->worker
        || device->quarantined)
      return;
    device->restarts += 1;
    start_worker(*device);
  }

  /// Reports to `next` from now on. Null (the head stayed away past its
  /// lease grace): every worker is replaced, keeping its loaded models, so
  /// that nothing it ran goes on. Otherwise live workers carry on, report to
  /// `next` and are attached to it, less the attempts in `stop`; a
  /// quarantined device's worker is replaced (the new head knows nothing of
  /// the quarantine), and a device without a worker gets one.
  void bind(admission_control_actor next, const std::vector<held_lease>& stop) {
    if (shutting_down)
      return;
    admission = std::move(next);
    for (const auto& x : stop)
      if (auto device = device_at(x.device)) {
        device->book->forget(x.lease);
        if (device->worker)
          self->send(device->worker, abort_atom::value, x.id, x.lease);
      }
    for (auto& device : devices) {
      if (device.worker && (!admission || device.quarantined)) {
        device.replacing = true;
        self->send_exit(device.worker, caf::exit_reason::user_shutdown);
      } else if (device.worker) {
        self->send(device.worker, bind_atom::value,
                   caf::actor_cast<caf::actor>(admission));
        self->send(admission, attach_atom::value, device.info, device.worker,
                   device.restarts, device.models->names(),
                   device.models->resident_bytes());
      } else if (!device.quarantined && !device.replacing) {
        start_worker(device);
      }
    }
  }

  /// Every attempt the node's devices hold, running or ended recently.
  std::vector<held_lease> held() const {
    std::vector<held_lease> result;
    for (const auto& device : devices) {
      auto leases = device.book->held(device.info.index);
      result.insert(result.end(), leases.begin(), leases.end());
    }
    return result;
  }

  /// Whether the current message comes from this node or from the admission
  /// actor the supervisor reports to.
  bool from_node_or_admission() const {
    const auto& sender = self->current_sender();
    return sender != nullptr
           && (sender->node() == self->node()
               || (admission
                   && sender
                        == caf::actor_cast<caf::strong_actor_ptr>(admission)));
  }

  /// Whether the current message comes from an actor of this node or of
  /// the head's (the node of the admission actor the supervisor reports
  /// to): who may read the node's files.
  bool from_node_or_head() const {
    const auto& sender = self->current_sender();
    return sender != nullptr
           && (sender->node() == self->node()
               || (admission && sender->node() == admission.node()));
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
  std::shared_ptr<const gpu::model_catalog> catalog,
  std::function<void(const caf::error&)> preloaded) {
  auto& st = self->state;
  st.settings = std::move(settings);
  st.admission = std::move(admission);
  st.catalog = std::move(catalog);
  st.preloaded = std::move(preloaded);
  auto plan = plan_preloads(st.settings.preload, devices, *st.catalog);
  for (size_t i = 0; i < devices.size(); ++i) {
    node_supervisor_state::supervised_device device;
    device.info = devices[i];
    device.intensity =
      std::make_unique<restart_intensity>(st.settings.restarts);
    if (plan)
      device.preload = plan->models[i];
    st.devices.push_back(std::move(device));
  }
  if (!plan) {
    spdlog::error("nothing is preloaded: {}", runtime::describe(plan.error()));
    st.preload_finished(plan.error());
  } else {
    st.preloads_pending = plan->size();
    if (st.preloads_pending == 0)
      st.preload_finished(caf::none);
  }
  for (auto& device : st.devices)
    st.start_worker(device);
  self->set_down_handler([=](caf::down_msg& msg) { self->state.on_down(msg); });
  survive_stray_errors(self, "the node supervisor");
  return {
    [=](restart_atom, int32_t index) { self->state.restart(index); },
    [=](probe_atom, int32_t index) {
      if (self->current_sender() == nullptr
          || self->current_sender()->node() == self->node())
        self->state.probe(index);
    },
    [=](fault_atom, int32_t index, const caf::error& evidence) {
      if (self->state.from_node_or_admission())
        self->state.on_fault(index, evidence);
    },
    [=](bind_atom, const caf::actor& next,
        const std::vector<held_lease>& stop) {
      const auto& sender = self->current_sender();
      if (sender != nullptr && sender->node() == self->node())
        self->state.bind(caf::actor_cast<admission_control_actor>(next), stop);
    },
    [=](renew_atom, int64_t until) {
      const auto& sender = self->current_sender();
      if (sender != nullptr && sender->node() == self->node())
        for (auto& device : self->state.devices)
          device.book->renew(until);
    },
    [=](held_atom) -> caf::result<std::vector<held_lease>> {
      const auto& sender = self->current_sender();
      if (sender == nullptr || sender->node() != self->node())
        return runtime::make_error(runtime::errc::unauthorized,
                                   "only this node asks what it holds");
      return self->state.held();
    },
    [=](metrics_atom) -> caf::result<std::vector<device_metrics>> {
      const auto& sender = self->current_sender();
      if (sender == nullptr || sender->node() != self->node())
        return runtime::make_error(runtime::errc::unauthorized,
                                   "metrics are for actors of this node");
      return self->state.metrics();
    },
    [=](read_file_atom, std::string& path, uint64_t offset,
        uint32_t max_bytes) -> caf::result<runtime::output_chunk> {
      auto& st = self->state;
      if (!st.from_node_or_head())
        return runtime::make_error(runtime::errc::unauthorized,
                                   "only the head reads this node's files");
      // Disk I/O runs on a reader of its own, which answers the requester.
      auto reader = spawn_file_reader(self->system(), st.settings.output_dir);
      return self->delegate(reader, read_file_atom::value, std::move(path),
                            offset, max_bytes);
    },
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
  std::shared_ptr<const gpu::model_catalog> catalog,
  std::function<void(const caf::error&)> preloaded) {
  return sys.spawn(node_supervisor_behavior, settings, std::move(devices),
                   std::move(admission), std::move(catalog),
                   std::move(preloaded));
}

} // namespace vidnode::actors
