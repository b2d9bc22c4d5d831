/// Supervision: workers that die under jobs or by their device's fault,
/// who is charged for it, quarantine and probes. Deterministic (CAF's test
/// coordinator): time is stepped, nothing sleeps.

#include <algorithm>

#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
#include "vidnode/actors/device_worker.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using runtime::job_id;
using runtime::job_result;
using runtime::job_state;
using test::device_named;
using test::loads_of;
using test::settings_with;
using test::sim_job;

namespace {

runtime::job_spec faulty_job(int32_t steps, int step_ms,
                             const std::string& fault) {
  auto spec = sim_job(steps, step_ms);
  spec.options["fault"] = fault;
  return spec;
}

} // namespace

TEST_CASE("a job that runs out of memory once is retried on the restarted "
          "worker and succeeds",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto spec = sim_job(5, 100);
  spec.options["fault"] = "oom@3";
  auto r = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  auto device = device_named(fx.nodes_now(), "sim:0");
  CHECK(device.restarts == 1);
  CHECK(device.state == "idle");
  CHECK_THAT(device.last_error, Catch::Contains("out_of_memory"));
  // Out of memory ends an attempt, not the loaded weights: the restarted
  // worker kept the model and did not load it again.
  CHECK(loads_of(device, "sim") == 1);
}

TEST_CASE("a worker that crashed loads its models again after the restart",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto spec = sim_job(5, 100);
  spec.options["fault"] = "crash@3";
  auto r = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  auto device = device_named(fx.nodes_now(), "sim:0");
  CHECK(device.restarts == 1);
  // After a crash nothing the old worker held is trusted.
  CHECK(loads_of(device, "sim") == 2);
}

TEST_CASE("a job that always runs out of memory fails after max_attempts "
          "and no other job fails",
          "[admission][supervision]") {
  auto settings = settings_with(1);
  settings.max_attempts = 2;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:2");
  auto spec = sim_job(5, 100);
  spec.options["fault"] = "oom-always@2";
  auto bad = fx.execute(spec);
  std::vector<std::shared_ptr<test::reply<job_result>>> good;
  for (int i = 0; i < 6; ++i)
    good.push_back(fx.execute(sim_job(5, 100)));
  fx.run_to_quiescence();
  REQUIRE(bad->value);
  CHECK(bad->value->state == job_state::failed);
  CHECK(runtime::is(bad->value->error, errc::out_of_memory));
  CHECK(bad->value->attempts == 2);
  for (auto& r : good) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
  }
}

TEST_CASE("a crashed worker is restarted and its job retried",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto spec = sim_job(3, 100);
  spec.options["fault"] = "crash@2";
  auto r = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  CHECK(device_named(fx.nodes_now(), "sim:0").restarts == 1);
}

TEST_CASE("a job whose worker keeps crashing fails with the worker's reason",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto spec = sim_job(3, 100);
  spec.options["fault"] = "crash-always@1";
  auto r = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::failed);
  CHECK(runtime::is(r->value->error, errc::worker_lost));
  CHECK_THAT(runtime::describe(r->value->error),
             Catch::Contains("simulated crash at step 1"));
  CHECK(r->value->attempts == 2);
}

TEST_CASE("jobs that always run out of memory fail alone: the device is "
          "never quarantined and the next job succeeds",
          "[admission][supervision]") {
  // Three such jobs are six worker restarts, more than max-restarts (5).
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  std::vector<std::shared_ptr<test::reply<job_result>>> bad;
  for (int i = 0; i < 3; ++i)
    bad.push_back(fx.execute(faulty_job(5, 100, "oom-always@2")));
  fx.run_to_quiescence();
  for (auto& r : bad) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::failed);
    CHECK(runtime::is(r->value->error, errc::out_of_memory));
  }
  auto device = device_named(fx.nodes_now(), "sim:0");
  CHECK(device.state == "idle");
  CHECK(device.restarts == 6);
  auto plain = fx.execute(sim_job(2, 10));
  fx.run_to_quiescence();
  REQUIRE(plain->value);
  CHECK(plain->value->state == job_state::succeeded);
}

TEST_CASE("twelve jobs that always crash fail on their own and no device is "
          "quarantined",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:4");
  std::vector<std::shared_ptr<test::reply<job_result>>> bad;
  for (int i = 0; i < 12; ++i)
    bad.push_back(fx.execute(faulty_job(3, 100, "crash-always@0")));
  fx.run_to_quiescence();
  for (auto& r : bad) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::failed);
    CHECK(runtime::is(r->value->error, errc::worker_lost));
    CHECK(r->value->attempts == 2);
  }
  for (auto& device : fx.nodes_now())
    CHECK(device.state == "idle");
  // A model that never ran is served too.
  auto other = sim_job(2, 10);
  other.model = "sim-other";
  auto r = fx.execute(other);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
}

TEST_CASE("a job beside one that runs out of memory is retried at no charge "
          "and succeeds",
          "[admission][supervision]") {
  auto settings = settings_with(2);
  settings.max_attempts = 1; // a charged failure would end a job at once
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  auto innocent = fx.execute(sim_job(10, 100));
  auto oom = fx.execute(faulty_job(5, 100, "oom@2"));
  fx.run_to_quiescence();
  REQUIRE(oom->value);
  CHECK(oom->value->state == job_state::failed);
  CHECK(runtime::is(oom->value->error, errc::out_of_memory));
  REQUIRE(innocent->value);
  CHECK(innocent->value->state == job_state::succeeded);
  CHECK(innocent->value->attempts == 2);
  CHECK(device_named(fx.nodes_now(), "sim:0").state == "idle");
}

TEST_CASE("a job beside one that crashes its worker is retried at no charge "
          "and succeeds",
          "[admission][supervision]") {
  auto settings = settings_with(2);
  settings.max_attempts = 1;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  auto innocent = fx.execute(sim_job(10, 100));
  auto crashing = fx.execute(faulty_job(5, 100, "crash@2"));
  fx.run_to_quiescence();
  REQUIRE(crashing->value);
  CHECK(crashing->value->state == job_state::failed);
  CHECK_THAT(runtime::describe(crashing->value->error),
             Catch::Contains("simulated crash at step 2"));
  REQUIRE(innocent->value);
  CHECK(innocent->value->state == job_state::succeeded);
  CHECK(innocent->value->attempts == 2);
}

TEST_CASE("a job is retried on another device than the one its worker died "
          "on",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:2");
  auto busy = fx.submit_now(sim_job(10, 1000)); // sim:0 for 10 s
  auto crashing = fx.execute(faulty_job(3, 100, "crash@1"));
  fx.run_to_quiescence();
  REQUIRE(crashing->value);
  CHECK(crashing->value->state == job_state::succeeded);
  CHECK(crashing->value->attempts == 2);
  // sim:1 was free again long before sim:0; the retry waited for sim:0.
  CHECK(crashing->value->device == "sim:0");
  CHECK(fx.status_now(busy).state == job_state::succeeded);
}

TEST_CASE("a device that fails jobs which then succeed elsewhere is "
          "quarantined, and its work goes elsewhere",
          "[admission][supervision]") {
  auto settings = settings_with(1);
  settings.restarts.max_restarts = 1;
  settings.restarts.window = 60s;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:2");
  auto longer = fx.submit_now(sim_job(10, 1000)); // sim:0, 10 s
  // sim:1 is broken: it crashes every job at its first step.
  auto first = fx.submit_now(faulty_job(3, 100, "crash-on-sim:1@1"));
  auto second = fx.submit_now(faulty_job(3, 100, "crash-on-sim:1@1"));
  // Less than the cool-down (5 min), after which the device is probed.
  fx.run_to_quiescence(1min);
  for (auto id : {first, second}) {
    auto result = fx.status_now(id);
    CHECK(result.state == job_state::succeeded);
    CHECK(result.attempts == 2);
    CHECK(result.device == "sim:0");
  }
  CHECK(fx.status_now(longer).state == job_state::succeeded);
  auto quarantined = device_named(fx.nodes_now(), "sim:1");
  CHECK(quarantined.state == "quarantined");
  CHECK_THAT(quarantined.last_error,
             Catch::Contains("succeeded on sim:0")
               && Catch::Contains("probed again in 5m"));
  // Later work only goes to the healthy device.
  for (int i = 0; i < 3; ++i) {
    auto later = fx.execute(sim_job(1, 10));
    fx.run_to_quiescence(1min);
    REQUIRE(later->value);
    CHECK(later->value->device == "sim:0");
  }
}

TEST_CASE("jobs that each crash once, wherever they run, quarantine no "
          "device: a job that crashed on one device and succeeded on another "
          "blames the first only if it crashes clearly more jobs",
          "[admission][supervision]") {
  // Found by an adversarial run: 14 such jobs on sim:2 quarantined both
  // devices, refusing every later job for the cool-down.
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:2");
  std::vector<std::shared_ptr<test::reply<runtime::job_result>>> jobs;
  for (int i = 0; i < 14; ++i)
    jobs.push_back(fx.execute(faulty_job(2, 20, "crash@1")));
  fx.run_to_quiescence(1min);
  for (auto& job : jobs) {
    REQUIRE(job->value);
    CHECK(job->value->state == job_state::succeeded);
    CHECK(job->value->attempts == 2);
  }
  for (const auto& device : fx.nodes_now())
    CHECK(device.state == "idle");
  auto later = fx.execute(sim_job(1, 10));
  fx.run_to_quiescence(1min);
  REQUIRE(later->value);
  CHECK(later->value->state == job_state::succeeded);
}

TEST_CASE("when the device itself fails, its jobs are not charged, when the "
          "last device for a model is quarantined its queued jobs fail at "
          "once, new ones are refused, and after the cool-down it is "
          "probed and serves again",
          "[admission][supervision]") {
  auto settings = settings_with(1);
  settings.max_attempts = 1; // a charged failure would end the job at once
  settings.restarts.max_restarts = 1;
  settings.restarts.window = 60s;
  settings.restarts.quarantine_cooldown = 2min;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  auto failing = fx.submit_now(faulty_job(3, 100, "lost-always@1"));
  auto waiting = fx.submit_now(sim_job(3, 100));
  // Time runs for at most 30 s, far less than the queue timeout (10 min):
  // the queued job must end as soon as the device is quarantined.
  fx.run_to_quiescence(30s);
  auto device = device_named(fx.nodes_now(), "sim:0");
  REQUIRE(device.state == "quarantined");
  CHECK(fx.status_now(failing).attempts == 2);
  for (auto id : {failing, waiting}) {
    auto result = fx.status_now(id);
    CHECK(result.state == job_state::failed);
    CHECK(runtime::is(result.error, errc::worker_lost));
    CHECK_THAT(runtime::describe(result.error),
               Catch::Contains("every device that can run this model is "
                               "quarantined (sim:0: "));
  }
  auto refused = fx.submit(sim_job(1, 10));
  fx.run();
  REQUIRE(refused->error);
  CHECK(runtime::is(refused->error, errc::worker_lost));
  // After the cool-down the device is probed: a new worker takes jobs.
  fx.advance(2min);
  fx.run();
  auto probed = device_named(fx.nodes_now(), "sim:0");
  CHECK(probed.state == "idle");
  CHECK_THAT(probed.last_error,
             Catch::StartsWith("quarantined (")
               && Catch::EndsWith("then probed: on probation")
               && !Catch::Contains("probed again in"));
  auto served = fx.execute(sim_job(1, 10));
  fx.run_to_quiescence(1min);
  REQUIRE(served->value);
  CHECK(served->value->state == job_state::succeeded);
  // On probation, one more failure of the device quarantines it again.
  auto again = fx.execute(faulty_job(3, 100, "lost-always@1"));
  fx.run_to_quiescence(30s);
  REQUIRE(again->value);
  CHECK(again->value->state == job_state::failed);
  CHECK(again->value->attempts == 1);
  CHECK(device_named(fx.nodes_now(), "sim:0").state == "quarantined");
}

TEST_CASE("a worker attached in place of one that still runs a job takes "
          "the job again at no charge",
          "[admission][supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto r = fx.execute(sim_job(5, 100));
  fx.run();
  fx.advance(150ms);
  REQUIRE(device_named(fx.nodes_now(), "sim:0").state == "busy");
  std::vector<runtime::device_info> infos;
  std::string error;
  REQUIRE(gpu::parse_devices("sim:1", infos, error));
  auto worker = actors::spawn_device_worker(
    fx.sys, infos[0], fx.node.admission, gpu::model_catalog::builtin(),
    settings_with(1).output_dir, settings_with(1).max_message_size, false,
    std::make_shared<actors::device_models>());
  auto admission = fx.node.admission;
  auto info = infos[0];
  fx.sys.spawn([=](caf::event_based_actor* self) {
    self->send(admission, actors::attach_atom::value, info, worker, int32_t{0},
               std::vector<std::string>{}, uint64_t{0});
  });
  // The old worker's job goes back to the queue and to the new worker: the
  // device takes jobs at once.
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  CHECK(device_named(fx.nodes_now(), "sim:0").state == "idle");
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  fx.run();
}

TEST_CASE("a stray error message, such as a peer's answer to a message it "
          "did not understand, ends neither admission nor the supervisor",
          "[supervision]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto gone = std::make_shared<int>(0);
  auto admission = caf::actor_cast<caf::actor>(fx.node.admission);
  auto supervisor = caf::actor_cast<caf::actor>(fx.node.supervisor);
  auto watcher = fx.sys.spawn([=](caf::event_based_actor* self) {
    self->monitor(admission);
    self->monitor(supervisor);
    self->set_down_handler([=](caf::down_msg&) { ++*gone; });
    return caf::behavior{[](int) {}};
  });
  fx.run();
  auto stray = runtime::make_error(runtime::errc::internal, "stray");
  caf::anon_send(admission, stray);
  caf::anon_send(supervisor, stray);
  fx.run();
  CHECK(*gone == 0);
  auto r = fx.execute(test::sim_job(2, 10));
  fx.run_to_quiescence();
  INFO(runtime::describe(r->error));
  REQUIRE(r->value);
  CHECK(r->value->state == runtime::job_state::succeeded);
  caf::anon_send_exit(watcher, caf::exit_reason::user_shutdown);
}
