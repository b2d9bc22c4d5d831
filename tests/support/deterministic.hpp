#pragma once

/// @file
/// A node on CAF's test coordinator: one thread, no real time. Messages run
/// when the test says so and time only moves when the test moves it, so
/// timeouts, step times and makespans are exact.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/settings.hpp"

namespace vidnode::test {

/// An actor_system_config for the test coordinator with vidnode's types.
struct deterministic_config : caf::actor_system_config {
  deterministic_config();
};

/// The reply to a request, once it arrived.
template <class T>
struct reply {
  std::optional<T> value;
  caf::error error;

  bool arrived() const {
    return value.has_value() || static_cast<bool>(error);
  }
};

/// Every event an observer received, in order.
struct event_log {
  std::vector<runtime::job_event> events;
};

/// A deterministic actor system plus helpers to run a node in it.
class deterministic_fixture {
public:
  using time_point = caf::actor_clock::time_point;

  deterministic_fixture();
  ~deterministic_fixture();

  deterministic_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;

  /// Runs every message that is due now; time does not move.
  void run();

  /// Moves time forward by `delta`, running every message and timer that
  /// becomes due on the way, in order.
  void advance(caf::timespan delta);

  /// Runs until nothing is left to do, jumping time from timer to timer,
  /// but not beyond `limit` from now.
  void run_to_quiescence(caf::timespan limit = std::chrono::minutes{10});

  /// The test clock's time.
  time_point now() const;

  /// Spawns a node with `settings` on `devices` ("sim:5", "sim:2:4GiB")
  /// serving the models of `catalog` (null: the built-in models), telling
  /// `events` (null: nobody) of its events.
  void start_node(runtime::node_settings settings, const std::string& devices,
                  std::shared_ptr<const gpu::model_catalog> catalog = nullptr,
                  std::shared_ptr<actors::node_observer> events = nullptr);

  /// Stops the node (admission and supervisor shutdown, then exit).
  void stop_node();

  actors::node_actors node;

  // -- requests to the node's admission actor (replies arrive on run()) ----

  std::shared_ptr<reply<runtime::job_id>> submit(runtime::job_spec spec);
  std::shared_ptr<reply<runtime::job_result>> execute(runtime::job_spec spec);
  std::shared_ptr<reply<runtime::job_result>> status(runtime::job_id id);
  std::shared_ptr<reply<runtime::job_result>>
  wait(runtime::job_id id, caf::timespan max_wait = caf::timespan{0});
  std::shared_ptr<reply<runtime::job_result>> cancel(runtime::job_id id);
  std::shared_ptr<reply<runtime::job_result>> retry(runtime::job_id id);
  std::shared_ptr<reply<std::vector<runtime::job_result>>>
  list(runtime::list_query query = {});
  std::shared_ptr<reply<std::vector<runtime::device_status>>> nodes();
  std::shared_ptr<event_log> subscribe(runtime::job_id id);
  std::shared_ptr<reply<runtime::output_chunk>>
  read_output(runtime::job_id id, uint64_t offset = 0,
              uint32_t max_bytes = runtime::default_chunk_bytes);

  /// Submits and runs until the id arrives; fails the test if refused.
  runtime::job_id submit_now(runtime::job_spec spec);

  /// Status, run at once; fails the test if refused.
  runtime::job_result status_now(runtime::job_id id);

  /// The device list, run at once.
  std::vector<runtime::device_status> nodes_now();

private:
  template <class T, class... Ts>
  std::shared_ptr<reply<T>> ask(Ts... xs);
};

/// Node settings with `concurrency` jobs per device, the rest defaults.
runtime::node_settings settings_with(int32_t concurrency = 1);

/// The device called `name` in `devices`; fails the test if there is none.
const runtime::device_status&
device_named(const std::vector<runtime::device_status>& devices,
             const std::string& name);

/// How often `device` loaded `model`.
int32_t loads_of(const runtime::device_status& device,
                 const std::string& model);

/// A sim job of `steps` steps of `step_ms` each, loading in `load_ms`.
runtime::job_spec sim_job(int32_t steps, int step_ms, int load_ms = 0,
                          int32_t priority = 5);

} // namespace vidnode::test
