/// Preloads: the plan a node makes of `--preload` values (a pure function),
/// and the supervisor that loads them, tells the node when they are done,
/// bounds a load that hangs and reloads them after a crash. Deterministic
/// (CAF's test coordinator): time is stepped, nothing sleeps.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/actors/preload.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/pipeline.hpp"
#include "vidnode/gpu/sim_pipeline.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using test::device_named;
using test::loads_of;
using test::settings_with;
using test::sim_job;
using models = std::vector<std::string>;

namespace {

std::vector<runtime::device_info> devices_of(const std::string& spec) {
  std::vector<runtime::device_info> devices;
  std::string error;
  REQUIRE(gpu::parse_devices(spec, devices, error));
  return devices;
}

/// A pipeline whose load never completes (a hung device).
class stuck_pipeline : public gpu::pipeline {
public:
  gpu::device_time load(const runtime::job_spec&) override {
    return gpu::never_completes;
  }
  std::unique_ptr<gpu::job_run> begin(const runtime::job_spec&, int32_t,
                                      gpu::device_time&) override {
    throw gpu::job_error(errc::internal, "never loaded");
  }
};

/// Serves `stuck`, on sim devices only.
class stuck_factory : public gpu::model_factory {
public:
  const std::vector<std::string>& served() const override {
    static const std::vector<std::string> names{"stuck"};
    return names;
  }
  bool runs_on(runtime::device_kind kind) const override {
    return kind == runtime::device_kind::sim;
  }
  std::optional<std::string> validate(const runtime::job_spec&) const override {
    return std::nullopt;
  }
  uint64_t estimate_peak_bytes(const runtime::job_spec&) const override {
    return 1 << 20;
  }
  std::unique_ptr<gpu::pipeline>
  make(const std::string&, const runtime::device_info&) const override {
    return std::make_unique<stuck_pipeline>();
  }
};

std::shared_ptr<const gpu::model_catalog> catalog_with_stuck() {
  auto catalog = std::make_shared<gpu::model_catalog>();
  catalog->add(std::make_shared<stuck_factory>());
  catalog->add(std::make_shared<gpu::sim_model_factory>());
  return catalog;
}

/// What the supervisor told the node about its preloads, once it did.
struct told {
  bool called = false;
  caf::error error;
};

/// Spawns a node like deterministic_fixture::start_node, with a callback
/// for the preloads.
std::shared_ptr<told>
start_preloading(test::deterministic_fixture& fx,
                 runtime::node_settings settings, const std::string& devices,
                 std::shared_ptr<const gpu::model_catalog> catalog = nullptr) {
  auto result = std::make_shared<told>();
  settings.node_name = "test-node";
  if (!catalog)
    catalog = gpu::model_catalog::builtin();
  fx.node = actors::spawn_node(fx.sys, settings, devices_of(devices),
                               std::move(catalog), nullptr, nullptr, nullptr,
                               [result](const caf::error& err) {
                                 REQUIRE(!result->called);
                                 result->called = true;
                                 result->error = err;
                               });
  fx.run();
  return result;
}

} // namespace

TEST_CASE("a preload plan puts each model on the devices it names, once",
          "[preload]") {
  auto catalog = gpu::model_catalog::builtin();
  auto plan = actors::plan_preloads(
    {"sim", "sim-big@sim:1", "sim@sim:0,1", "sim-x@sim:all", "sim-y@sim"},
    devices_of("sim:2"), *catalog);
  REQUIRE(plan);
  REQUIRE(plan->models.size() == 2);
  CHECK(plan->models[0] == models{"sim", "sim-x", "sim-y"});
  CHECK(plan->models[1] == models{"sim", "sim-big", "sim-x", "sim-y"});
  CHECK(plan->size() == 7);
  auto none = actors::plan_preloads({}, devices_of("sim:2"), *catalog);
  REQUIRE(none);
  CHECK(none->size() == 0);
}

TEST_CASE("a preload plan refuses what the node cannot load, naming the "
          "value",
          "[preload]") {
  auto catalog = catalog_with_stuck();
  auto devices = devices_of("sim:2");
  auto refused = [&](const std::string& value) {
    auto plan = actors::plan_preloads({"sim", value}, devices, *catalog);
    REQUIRE(!plan);
    return plan.error();
  };
  auto err = refused("nope");
  CHECK(runtime::is(err, errc::unknown_model));
  CHECK(runtime::detail_of(err)
        == "preload: 'nope': this node serves no model 'nope' (it serves: "
           "stuck, sim, sim-*)");
  err = refused("sim@sim:5");
  CHECK(runtime::is(err, errc::invalid_request));
  CHECK(runtime::detail_of(err)
        == "preload: 'sim@sim:5': this node has no device sim:5 (its "
           "devices: sim:0, sim:1)");
  for (auto value : {"sim@", "@sim", "sim@gpu", "sim@sim:", "sim@sim:0,",
                     "sim@sim:x", "sim-*", "sim@sim:0:1"})
    CHECK(runtime::is(refused(value), errc::invalid_request));
  auto cpu = devices_of("cpu:1");
  auto plan = actors::plan_preloads({"stuck"}, cpu, *catalog);
  REQUIRE(!plan);
  CHECK(runtime::detail_of(plan.error())
        == "preload: 'stuck': no device of this node can run stuck (its "
           "devices: cpu:0)");
  plan = actors::plan_preloads({"sim"}, {}, *catalog);
  REQUIRE(!plan);
  CHECK_THAT(runtime::detail_of(plan.error()),
             Catch::Contains("(its devices: none)"));
}

TEST_CASE("the node is told its preloads finished once the last load did, "
          "not before",
          "[preload][supervision]") {
  test::deterministic_fixture fx;
  auto settings = settings_with(1);
  settings.preload = {"sim", "sim-big@sim:1"};
  auto outcome = start_preloading(fx, settings, "sim:2");
  // A sim model loads in 500 ms of device time.
  fx.advance(499ms);
  CHECK(!outcome->called);
  fx.advance(2ms);
  REQUIRE(outcome->called);
  CHECK(!outcome->error);
  auto nodes = fx.nodes_now();
  CHECK(loads_of(device_named(nodes, "sim:0"), "sim") == 1);
  CHECK(loads_of(device_named(nodes, "sim:1"), "sim") == 1);
  CHECK(loads_of(device_named(nodes, "sim:1"), "sim-big") == 1);
  CHECK(loads_of(device_named(nodes, "sim:0"), "sim-big") == 0);
  fx.stop_node();
}

TEST_CASE("without preloads the node is told at once", "[preload]") {
  test::deterministic_fixture fx;
  auto outcome = start_preloading(fx, settings_with(1), "sim:1");
  REQUIRE(outcome->called);
  CHECK(!outcome->error);
  fx.stop_node();
}

TEST_CASE("a preload that hangs fails after the preload timeout with "
          "worker_lost, naming the option, and the node serves on",
          "[preload][supervision]") {
  test::deterministic_fixture fx;
  auto settings = settings_with(1);
  settings.preload = {"stuck@sim:0"};
  settings.preload_timeout = 30s;
  auto outcome = start_preloading(fx, settings, "sim:2", catalog_with_stuck());
  fx.advance(29s);
  CHECK(!outcome->called);
  fx.advance(2s);
  REQUIRE(outcome->called);
  CHECK(runtime::is(outcome->error, errc::worker_lost));
  CHECK(runtime::detail_of(outcome->error)
        == "device sim:0: preloading stuck did not finish within 30s "
           "(--preload-timeout); the load may hang");
  // The other device serves: a job of another model runs there.
  auto r = fx.execute(sim_job(2, 10));
  fx.run_to_quiescence(1min);
  REQUIRE(r->value);
  CHECK(r->value->state == runtime::job_state::succeeded);
  fx.stop_node();
}

TEST_CASE("a worker restarted after a crash reloads its preloads in the "
          "background, and a job sent meanwhile waits for the load",
          "[preload][supervision]") {
  test::deterministic_fixture fx;
  auto settings = settings_with(1);
  settings.preload = {"sim@sim:0"};
  settings.max_attempts = 1;
  auto outcome = start_preloading(fx, settings, "sim:1");
  fx.advance(501ms);
  REQUIRE(outcome->called);
  auto crash = sim_job(3, 10);
  crash.options["fault"] = "crash@1";
  auto failed = fx.execute(crash);
  // The restart comes after the base backoff (100 ms); then the reload
  // (500 ms) starts without any job.
  fx.advance(200ms);
  REQUIRE(failed->value);
  CHECK(failed->value->state == runtime::job_state::failed);
  auto device = device_named(fx.nodes_now(), "sim:0");
  CHECK(device.restarts == 1);
  CHECK(loads_of(device, "sim") == 1);
  // A job now waits for the load in progress and succeeds; the model is
  // not loaded a third time.
  auto job = fx.execute(sim_job(2, 10));
  fx.run_to_quiescence(1min);
  REQUIRE(job->value);
  CHECK(job->value->state == runtime::job_state::succeeded);
  CHECK(loads_of(device_named(fx.nodes_now(), "sim:0"), "sim") == 2);
  fx.stop_node();
}
