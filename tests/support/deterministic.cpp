#include "support/deterministic.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include "vidnode/gpu/devices.hpp"
#include "vidnode/gpu/model_catalog.hpp"

namespace vidnode::test {

deterministic_config::deterministic_config() {
  actors::add_types(*this);
  set("scheduler.policy", caf::atom("testing"));
}

deterministic_fixture::deterministic_fixture()
  : sys(cfg),
    sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {}

deterministic_fixture::~deterministic_fixture() {
  stop_node();
  run();
}

void deterministic_fixture::run() {
  sched.run();
}

void deterministic_fixture::advance(caf::timespan delta) {
  auto target = sched.clock().current_time + delta;
  run();
  for (;;) {
    const auto& schedule = sched.clock().schedule();
    if (schedule.empty() || schedule.begin()->first > target)
      break;
    sched.trigger_timeout();
    run();
  }
  if (sched.clock().current_time < target)
    sched.clock().current_time = target;
  run();
}

void deterministic_fixture::run_to_quiescence(caf::timespan limit) {
  auto target = sched.clock().current_time + limit;
  run();
  while (sched.has_pending_timeout()) {
    if (sched.clock().schedule().begin()->first > target)
      break;
    sched.trigger_timeout();
    run();
  }
}

deterministic_fixture::time_point deterministic_fixture::now() const {
  return sched.clock().current_time;
}

void deterministic_fixture::start_node(
  runtime::node_settings settings, const std::string& devices,
  std::shared_ptr<const gpu::model_catalog> catalog,
  std::shared_ptr<actors::node_observer> events) {
  std::vector<runtime::device_info> infos;
  std::string error;
  REQUIRE(gpu::parse_devices(devices, infos, error));
  if (settings.node_name.empty())
    settings.node_name = "test-node";
  if (!catalog)
    catalog = gpu::model_catalog::builtin();
  node = actors::spawn_node(sys, settings, std::move(infos), std::move(catalog),
                            nullptr, nullptr, std::move(events));
  run();
}

void deterministic_fixture::stop_node() {
  if (!node.admission)
    return;
  auto done = std::make_shared<int>(0);
  auto nodes = node;
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(nodes.admission, caf::infinite, actors::shutdown_atom::value)
      .then([=](caf::ok_atom) {
        self
          ->request(nodes.supervisor, caf::infinite,
                    actors::shutdown_atom::value)
          .then([=](caf::ok_atom) {
            self->send_exit(nodes.admission, caf::exit_reason::user_shutdown);
            self->send_exit(nodes.supervisor, caf::exit_reason::user_shutdown);
            *done = 1;
          });
      });
  });
  run_to_quiescence(std::chrono::minutes{1});
  node = actors::node_actors{};
}

template <class T, class... Ts>
std::shared_ptr<reply<T>> deterministic_fixture::ask(Ts... xs) {
  auto out = std::make_shared<reply<T>>();
  auto admission = node.admission;
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(admission, caf::infinite, xs...)
      .then([=](T& value) { out->value = std::move(value); },
            [=](caf::error& err) { out->error = std::move(err); });
  });
  return out;
}

std::shared_ptr<reply<runtime::job_id>>
deterministic_fixture::submit(runtime::job_spec spec) {
  return ask<runtime::job_id>(runtime::submit_atom::value, std::move(spec));
}

std::shared_ptr<reply<runtime::job_result>>
deterministic_fixture::execute(runtime::job_spec spec) {
  return ask<runtime::job_result>(runtime::execute_atom::value,
                                  std::move(spec));
}

std::shared_ptr<reply<runtime::job_result>>
deterministic_fixture::status(runtime::job_id id) {
  return ask<runtime::job_result>(runtime::status_atom::value, id);
}

std::shared_ptr<reply<runtime::job_result>>
deterministic_fixture::wait(runtime::job_id id, caf::timespan max_wait) {
  return ask<runtime::job_result>(runtime::wait_atom::value, id, max_wait);
}

std::shared_ptr<reply<runtime::job_result>>
deterministic_fixture::cancel(runtime::job_id id) {
  return ask<runtime::job_result>(runtime::cancel_atom::value, id);
}

std::shared_ptr<reply<runtime::job_result>>
deterministic_fixture::retry(runtime::job_id id) {
  return ask<runtime::job_result>(runtime::retry_atom::value, id);
}

std::shared_ptr<reply<std::vector<runtime::job_result>>>
deterministic_fixture::list(runtime::list_query query) {
  return ask<std::vector<runtime::job_result>>(runtime::list_atom::value,
                                               query);
}

std::shared_ptr<reply<std::vector<runtime::device_status>>>
deterministic_fixture::nodes() {
  return ask<std::vector<runtime::device_status>>(runtime::nodes_atom::value);
}

std::shared_ptr<event_log>
deterministic_fixture::subscribe(runtime::job_id id) {
  auto log = std::make_shared<event_log>();
  auto observer = sys.spawn([=](runtime::job_observer_actor::pointer)
                              -> runtime::job_observer_actor::behavior_type {
    return {
      [=](const runtime::job_event& event) { log->events.push_back(event); }};
  });
  ask<runtime::job_result>(runtime::subscribe_atom::value, id, observer);
  run();
  return log;
}

std::shared_ptr<reply<runtime::output_chunk>>
deterministic_fixture::read_output(runtime::job_id id, uint64_t offset,
                                   uint32_t max_bytes) {
  return ask<runtime::output_chunk>(runtime::read_output_atom::value, id,
                                    offset, max_bytes);
}

runtime::job_id deterministic_fixture::submit_now(runtime::job_spec spec) {
  auto r = submit(std::move(spec));
  run();
  INFO(runtime::describe(r->error));
  REQUIRE(r->value);
  return *r->value;
}

runtime::job_result deterministic_fixture::status_now(runtime::job_id id) {
  auto r = status(id);
  run();
  INFO(runtime::describe(r->error));
  REQUIRE(r->value);
  return *r->value;
}

std::vector<runtime::device_status> deterministic_fixture::nodes_now() {
  auto r = nodes();
  run();
  REQUIRE(r->value);
  return *r->value;
}

runtime::job_spec sim_job(int32_t steps, int step_ms, int load_ms,
                          int32_t priority) {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.steps = steps;
  spec.priority = priority;
  spec.options["step_ms"] = std::to_string(step_ms);
  spec.options["load_ms"] = std::to_string(load_ms);
  return spec;
}

runtime::node_settings settings_with(int32_t concurrency) {
  runtime::node_settings s;
  s.max_concurrency = concurrency;
  return s;
}

const runtime::device_status&
device_named(const std::vector<runtime::device_status>& devices,
             const std::string& name) {
  auto i = std::find_if(devices.begin(), devices.end(),
                        [&](auto& d) { return d.device == name; });
  REQUIRE(i != devices.end());
  return *i;
}

int32_t loads_of(const runtime::device_status& device,
                 const std::string& model) {
  for (auto& m : device.models)
    if (m.model == model)
      return m.loads;
  return 0;
}

} // namespace vidnode::test
