#include "node_lifecycle.hpp"

#include <unistd.h>

#include <algorithm>

#include <caf/scoped_actor.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/preload.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

std::string node_name_of(const runtime::node_settings& settings) {
  if (!settings.node_name.empty())
    return settings.node_name;
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0')
    return "localhost";
  return buf;
}

caf::error prepare_node(const runtime::node_settings& settings,
                        std::vector<runtime::device_info>& devices,
                        std::shared_ptr<const gpu::model_catalog>& catalog) {
  if (auto err = runtime::validate(settings))
    return err;
  std::string error;
  if (!gpu::parse_devices(settings.devices, devices, error,
                          settings.cuda_reserve_bytes))
    return runtime::make_error(runtime::errc::invalid_request,
                               "devices: " + error);
  if (!catalog) {
    gpu::catalog_options options;
    options.tiny_t2v_weights = settings.tiny_t2v_weights;
    options.torchscript_models = settings.torchscript_models;
    std::string reason;
    catalog = gpu::model_catalog::make(options, reason);
    if (!catalog)
      return runtime::make_error(runtime::errc::invalid_request, reason);
  }
  if (settings.preload_timeout < std::chrono::seconds{1}
      || settings.preload_timeout > std::chrono::hours{24})
    return runtime::make_error(
      runtime::errc::invalid_request,
      "preload-timeout: must be from 1s to 24h, got "
        + runtime::format_duration(settings.preload_timeout));
  if (auto plan = plan_preloads(settings.preload, devices, *catalog); !plan)
    return std::move(plan.error());
  return caf::none;
}

std::function<void(const caf::error&)>
preload_callback(std::shared_future<caf::error>& outcome) {
  auto promise = std::make_shared<std::promise<caf::error>>();
  outcome = promise->get_future().share();
  return [promise](const caf::error& err) { promise->set_value(err); };
}

caf::error await_preloads(const std::shared_future<caf::error>& outcome,
                          const std::function<bool()>& interrupted) {
  if (!outcome.valid())
    return caf::none;
  while (outcome.wait_for(std::chrono::milliseconds{100})
         != std::future_status::ready)
    if (interrupted && interrupted())
      return runtime::make_error(runtime::errc::cancelled,
                                 "preload: interrupted before every preload "
                                 "finished");
  try {
    return outcome.get();
  } catch (const std::future_error&) {
    return runtime::make_error(runtime::errc::internal,
                               "preload: the node stopped before its "
                               "preloads finished");
  }
}

caf::error stop_in_order(caf::actor_system& sys, caf::timespan timeout,
                         const std::vector<stop_step>& steps) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto remaining = [&] {
    auto left = deadline - std::chrono::steady_clock::now();
    return caf::duration{std::max(
      std::chrono::duration_cast<caf::timespan>(left), caf::timespan{1})};
  };
  caf::scoped_actor self{sys};
  caf::error failure;
  auto on_error = [&](caf::error& err) {
    if (!failure)
      failure = std::move(err);
  };
  int live = 0;
  for (const auto& step : steps) {
    if (!step.actor)
      continue;
    ++live;
    self->monitor(step.actor);
    if (step.ask_first)
      self->request(step.actor, remaining(), shutdown_atom::value)
        .receive([](caf::ok_atom) {}, on_error);
    else
      self->send_exit(step.actor, caf::exit_reason::user_shutdown);
  }
  for (const auto& step : steps)
    if (step.actor && step.ask_first)
      self->send_exit(step.actor, caf::exit_reason::user_shutdown);
  for (int down = 0; down < live;) {
    bool timed_out = false;
    self->receive([&](caf::down_msg&) { ++down; },
                  caf::after(remaining()) >> [&] { timed_out = true; });
    if (timed_out) {
      if (!failure)
        failure = runtime::make_error(runtime::errc::internal,
                                      "node actors did not stop in time");
      break;
    }
  }
  return failure;
}

} // namespace vidnode::actors
