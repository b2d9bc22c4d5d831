#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/sim_pipeline.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using gpu::device_time;
using gpu::parse_sim_fault;
using gpu::sim_fault;
using kind = gpu::sim_fault::kind_type;

namespace {

runtime::job_spec sim_spec(std::map<std::string, std::string> options,
                           int32_t steps = 4) {
  runtime::job_spec spec;
  spec.steps = steps;
  spec.options = std::move(options);
  return spec;
}

sim_fault fault_of(const std::string& text) {
  std::string error;
  auto fault = parse_sim_fault(text, error);
  INFO("'" << text << "': " << error);
  REQUIRE(fault);
  return *fault;
}

/// Runs every step of one attempt; returns the device time of each step.
std::vector<device_time>
run_attempt(gpu::pipeline& p, const runtime::job_spec& spec, int32_t attempt) {
  device_time busy{1};
  auto run = p.begin(spec, attempt, busy);
  CHECK(busy == device_time{0});
  std::vector<device_time> times;
  for (int32_t i = 0; i < run->steps(); ++i)
    times.push_back(run->step(i));
  return times;
}

} // namespace

TEST_CASE("a fault names its kind, its step and the attempts it hits",
          "[sim]") {
  auto once = fault_of("oom@3");
  CHECK(once.kind == kind::oom);
  CHECK(once.step == 3);
  CHECK(once.attempts == 1);
  auto twice = fault_of("hang@2x3");
  CHECK(twice.kind == kind::hang);
  CHECK(twice.step == 2);
  CHECK(twice.attempts == 3);
  auto always = fault_of("crash-always@0");
  CHECK(always.kind == kind::crash);
  CHECK(always.step == 0);
  CHECK(always.attempts == 0);
}

TEST_CASE("a fault fires only at its step and on its attempts", "[sim]") {
  auto twice = fault_of("oom@2x2");
  CHECK(twice.fires(2, 1, "sim:0"));
  CHECK(twice.fires(2, 2, "sim:0"));
  CHECK_FALSE(twice.fires(2, 3, "sim:0"));
  CHECK_FALSE(twice.fires(1, 1, "sim:0"));
  CHECK(fault_of("oom-always@2").fires(2, 1000, "sim:0"));
}

TEST_CASE("a fault on one device fires on every attempt there and nowhere "
          "else",
          "[sim]") {
  auto broken = fault_of("crash-on-sim:1@3");
  CHECK(broken.kind == kind::crash);
  CHECK(broken.step == 3);
  CHECK(broken.device == "sim:1");
  CHECK(broken.fires(3, 1, "sim:1"));
  CHECK(broken.fires(3, 7, "sim:1"));
  CHECK_FALSE(broken.fires(3, 1, "sim:0"));
  CHECK_FALSE(broken.fires(2, 1, "sim:1"));
}

TEST_CASE("a malformed fault is refused with the usage", "[sim]") {
  for (auto text : {"", "oom", "oom@", "boom@3", "OOM@3", "oom@-1", "oom@3.5",
                    "oom@ 3", "oom@3x0", "oom@3x", "oom@x2", "oom@3x2x2",
                    "oom-always@3x2", "-always@3", "oom@1234567", "crash-on-@3",
                    "crash-on-sim:1@3x2", "-on-sim:0@1"}) {
    std::string error;
    auto fault = parse_sim_fault(text, error);
    INFO("'" << text << "'");
    CHECK_FALSE(fault);
    CHECK(error.find("is not KIND@STEP") != std::string::npos);
  }
}

TEST_CASE("sim options have documented defaults and read every option",
          "[sim]") {
  std::string error;
  auto defaults = gpu::parse_sim_options(sim_spec({}), error);
  REQUIRE(defaults);
  CHECK(defaults->step_ms == 50);
  CHECK(defaults->load_ms == 500);
  CHECK(defaults->mem_mb == 1024);
  CHECK_FALSE(defaults->fault);
  auto set = gpu::parse_sim_options(sim_spec({{"step_ms", "2.5"},
                                              {"load_ms", "0"},
                                              {"mem_mb", "2048"},
                                              {"fault", "crash@4"}}),
                                    error);
  REQUIRE(set);
  CHECK(set->step_ms == 2.5);
  CHECK(set->load_ms == 0);
  CHECK(set->mem_mb == 2048);
  REQUIRE(set->fault);
  CHECK(set->fault->step == 4);
}

TEST_CASE("a bad sim option is refused naming it", "[sim]") {
  std::vector<std::pair<std::map<std::string, std::string>, std::string>>
    cases = {
      {{{"speed", "1"}}, "'speed' is not an option of model sim"},
      {{{"step_ms", "-1"}}, "step_ms must be"},
      {{{"step_ms", "600001"}}, "step_ms must be"},
      {{{"load_ms", "nan"}}, "load_ms must be"},
      {{{"load_ms", "5ms"}}, "load_ms must be"},
      {{{"mem_mb", "1.5"}}, "mem_mb must be"},
      {{{"mem_mb", "16777217"}}, "mem_mb must be"},
      {{{"fault", "oom@5"}}, "fault: step 5 is beyond the job's 4 steps"},
      {{{"fault", "melt@1"}}, "fault: 'melt@1' is not"},
      {{{"video", "yes"}}, "video must be 0, 1, true or false"},
    };
  gpu::sim_model_factory factory;
  for (auto& [options, reason] : cases) {
    auto refusal = factory.validate(sim_spec(options));
    INFO("expected '" << reason << "'");
    REQUIRE(refusal);
    CHECK(refusal->find(reason) != std::string::npos);
  }
}

TEST_CASE("the sim factory serves sim and sim-NAME on every device kind",
          "[sim]") {
  gpu::sim_model_factory factory;
  CHECK(factory.serves("sim"));
  CHECK(factory.serves("sim-large"));
  CHECK_FALSE(factory.serves("sim-"));
  CHECK_FALSE(factory.serves("simulator"));
  CHECK_FALSE(factory.serves("other"));
  CHECK(factory.runs_on(runtime::device_kind::sim));
  CHECK(factory.runs_on(runtime::device_kind::cpu));
  CHECK(factory.runs_on(runtime::device_kind::cuda));
  CHECK_FALSE(factory.validate(sim_spec({{"step_ms", "10"}})));
}

TEST_CASE("a catalog lists the model patterns of its factories once each, "
          "and finds a model by them",
          "[sim]") {
  auto builtin = gpu::model_catalog::builtin();
  auto served = builtin->served();
  REQUIRE(served.size() >= 2);
  CHECK(served[0] == "sim");
  CHECK(served[1] == "sim-*");
  gpu::model_catalog catalog{*builtin};
  catalog.add(std::make_shared<gpu::sim_model_factory>());
  CHECK(catalog.served() == served);
  for (const auto* model : {"sim", "sim-x"})
    CHECK(catalog.find(model) != nullptr);
  for (const auto* model : {"sim-", "simx", "other"})
    CHECK(catalog.find(model) == nullptr);
}

TEST_CASE("the memory estimate is mem_mb in bytes", "[sim]") {
  gpu::sim_model_factory factory;
  CHECK(factory.estimate_peak_bytes(sim_spec({})) == 1ull << 30);
  CHECK(factory.estimate_peak_bytes(sim_spec({{"mem_mb", "3072"}}))
        == 3ull << 30);
}

TEST_CASE("a sim job takes load_ms to load and step_ms per step, then "
          "reports its output",
          "[sim]") {
  auto spec =
    sim_spec({{"load_ms", "250"}, {"step_ms", "20"}, {"mem_mb", "512"}});
  spec.seed = 7;
  spec.width = spec.height = 64;
  spec.frames = 4;
  auto p = gpu::sim_model_factory{}.make("sim", runtime::device_info{});
  CHECK(p->load(spec) == device_time{250ms});
  CHECK(run_attempt(*p, spec, 1) == std::vector<device_time>(4, 20ms));
  device_time busy{0};
  auto run = p->begin(spec, 1, busy);
  device_time left{1};
  auto out = run->finish(left);
  CHECK(left == device_time{0});
  CHECK(out.location == "sim://sim/7-64x64x4");
  CHECK(out.peak_bytes == 512ull << 20);
}

TEST_CASE("a sim job with the video option makes frames of its size and no "
          "location, and a video too large to hold is refused",
          "[sim]") {
  auto spec = sim_spec({{"video", "1"}});
  spec.width = 32;
  spec.height = 16;
  spec.frames = 3;
  spec.fps = 6;
  auto p = gpu::sim_model_factory{}.make("sim", runtime::device_info{});
  device_time busy{0};
  auto run = p->begin(spec, 1, busy);
  auto out = run->finish(busy);
  CHECK(out.location.empty());
  REQUIRE(out.video);
  CHECK(out.video->width == 32);
  CHECK(out.video->height == 16);
  CHECK(out.video->frames == 3);
  CHECK(out.video->fps == 6);
  CHECK(out.video->rgb.size() == 32u * 16u * 3u * 3u);
  spec.options["video"] = "false";
  CHECK_FALSE(p->begin(spec, 1, busy)->finish(busy).video);
  auto huge = sim_spec({{"video", "true"}});
  huge.width = huge.height = 4096;
  huge.frames = 64;
  auto refusal = gpu::sim_model_factory{}.validate(huge);
  REQUIRE(refusal);
  CHECK_THAT(*refusal, Catch::Contains("more than the sim model's 1024 MiB"));
}

TEST_CASE("an oom fault throws at its step only on the attempts it names",
          "[sim]") {
  auto spec = sim_spec({{"fault", "oom@2x2"}, {"mem_mb", "100"}});
  auto p = gpu::sim_model_factory{}.make("sim", runtime::device_info{});
  for (int32_t attempt = 1; attempt <= 2; ++attempt) {
    INFO("attempt " << attempt);
    device_time busy{0};
    auto run = p->begin(spec, attempt, busy);
    CHECK(run->step(0) == device_time{50ms});
    try {
      run->step(1);
      FAIL("step 2 did not run out of memory");
    } catch (const gpu::out_of_memory& e) {
      CHECK(e.requested_bytes() == 100ull << 20);
    }
  }
  CHECK(run_attempt(*p, spec, 3).size() == 4);
}

TEST_CASE("a fault at step 0 fires while the job is prepared", "[sim]") {
  auto p = gpu::sim_model_factory{}.make("sim", runtime::device_info{});
  device_time busy{0};
  CHECK_THROWS_AS(p->begin(sim_spec({{"fault", "oom@0"}}), 1, busy),
                  gpu::out_of_memory);
  auto hang = p->begin(sim_spec({{"fault", "hang@0"}}), 1, busy);
  CHECK(hang->steps() == 4);
  CHECK(busy == gpu::never_completes);
}

TEST_CASE("a crash throws a logic error and a hang never completes", "[sim]") {
  auto p = gpu::sim_model_factory{}.make("sim", runtime::device_info{});
  device_time busy{0};
  auto crash = p->begin(sim_spec({{"fault", "crash-always@1"}}), 5, busy);
  CHECK_THROWS_AS(crash->step(0), std::logic_error);
  auto hang = p->begin(sim_spec({{"fault", "hang@3"}}), 1, busy);
  CHECK(hang->step(1) == device_time{50ms});
  CHECK(hang->step(2) == gpu::never_completes);
}

TEST_CASE("beginning a job with bad options is a job error, not a crash",
          "[sim]") {
  auto p = gpu::sim_model_factory{}.make("sim", runtime::device_info{});
  device_time busy{0};
  try {
    p->begin(sim_spec({{"step_ms", "-3"}}), 1, busy);
    FAIL("bad options were accepted");
  } catch (const gpu::job_error& e) {
    CHECK(e.code() == runtime::errc::invalid_request);
    CHECK(std::string{e.what()}.find("step_ms") != std::string::npos);
  }
}
