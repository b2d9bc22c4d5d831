/// @file
/// A device worker's model cache: loads on a lane's thread, preloads, and
/// the attempts that wait for a load (device_worker_state.hpp).

#include <spdlog/spdlog.h>

#include "vidnode/runtime/errc.hpp"

#include "device_worker_state.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::make_error;
using clock_type = std::chrono::steady_clock;

void device_worker_state::load_on_lane(int32_t lane,
                                       const gpu::model_factory* factory,
                                       job_ticket ticket) {
  auto model = ticket.spec.model;
  auto& entry = cache[model];
  entry.load_started = clock_type::now();
  auto loaded = std::make_shared<std::shared_ptr<gpu::pipeline>>();
  auto spec = ticket.spec;
  auto where_to = device;
  entry.waiting.push_back(std::move(ticket));
  // The lane keeps the catalog, so the factory outlives a worker that
  // exits during the load.
  on_lane(
    lane,
    [factory, models = catalog, loaded, spec, where_to] {
      auto pipeline = factory->make(spec.model, where_to);
      auto busy = pipeline->load(spec);
      // A lane's load blocks: real pipelines leave no device time.
      (void)busy;
      *loaded = std::move(pipeline);
    },
    [this, model, loaded](lane_call& call) {
      auto i = cache.find(model);
      if (i == cache.end())
        return;
      if (!call.thrown) {
        i->second.pipeline = std::move(*loaded);
        load_finished(model);
        return;
      }
      // The first waiting attempt is charged the failure; the others try
      // again, each as if it came now.
      auto waiting = std::move(i->second.waiting);
      auto preloads = std::move(i->second.preloads);
      cache.erase(i);
      for (auto& promise : preloads)
        promise.deliver(make_error(errc::internal,
                                   where() + ": loading " + model + " failed"));
      if (waiting.empty())
        return;
      auto& first = waiting.front();
      guarded(first.id, first.lease,
              [&] { std::rethrow_exception(call.thrown); });
      for (size_t k = 1; k < waiting.size(); ++k)
        start(std::move(waiting[k]));
    });
}

void device_worker_state::mark_ready(
  std::map<std::string, cache_entry>::iterator entry) {
  entry->second.ready = true;
  kept->ready[entry->first] = entry->second.pipeline;
  self->send(admission, loaded_atom::value, device.index, entry->first,
             entry->second.pipeline->resident_bytes());
  for (auto& promise : entry->second.preloads)
    promise.deliver(true);
  entry->second.preloads.clear();
}

caf::result<bool> device_worker_state::preload(const std::string& model) {
  if (exiting)
    return make_error(errc::worker_lost, where() + ": the worker exits");
  auto i = cache.find(model);
  if (i != cache.end()) {
    if (i->second.ready)
      return true;
    auto promise = self->make_response_promise<bool>();
    i->second.preloads.push_back(promise);
    return promise;
  }
  auto factory = catalog->find(model);
  if (factory == nullptr)
    return make_error(errc::unknown_model,
                      "preload: '" + model + "' is not served by " + where());
  runtime::job_spec spec;
  spec.model = model;
  cache_entry entry;
  entry.load_started = clock_type::now();
  gpu::device_time busy{0};
  auto failed = [&](errc code, const std::string& what) {
    spdlog::warn("{}: preloading {} failed: {}", where(), model, what);
    return make_error(code, where() + ": preloading " + model + ": " + what);
  };
  try {
    entry.pipeline = factory->make(model, device);
    busy = entry.pipeline->load(spec);
  } catch (const gpu::job_error& e) {
    return failed(e.code(), reported(e.what()));
  } catch (const gpu::out_of_memory& e) {
    return failed(errc::out_of_memory, reported(e.what()));
  } catch (const std::exception& e) {
    return failed(errc::internal, reported(e.what()));
  }
  i = cache.emplace(model, std::move(entry)).first;
  if (busy.count() > 0) {
    auto promise = self->make_response_promise<bool>();
    i->second.preloads.push_back(promise);
    if (busy != gpu::never_completes)
      self->delayed_send(self, busy, loaded_atom::value, model);
    return promise;
  }
  mark_ready(i);
  return true;
}

void device_worker_state::load_finished(const std::string& model) {
  auto i = cache.find(model);
  if (i == cache.end() || i->second.ready)
    return;
  mark_ready(i);
  auto load_time = clock_type::now() - i->second.load_started;
  auto waiting = std::move(i->second.waiting);
  i->second.waiting.clear();
  for (auto& ticket : waiting)
    begin(i->second.pipeline, std::move(ticket), load_time);
}

} // namespace vidnode::actors
