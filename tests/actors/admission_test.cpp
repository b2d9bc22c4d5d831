#include <algorithm>
#include <map>

#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
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

caf::timespan between(caf::timestamp from, caf::timestamp to) {
  return std::chrono::duration_cast<caf::timespan>(to - from);
}

} // namespace

TEST_CASE("twenty simultaneous jobs on five devices all succeed, one at a "
          "time per device, loading the model once per device",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:5");
  // Each job: 10 steps of 100 ms = 1 s; loading the model takes 100 ms.
  std::vector<std::shared_ptr<test::reply<job_result>>> replies;
  for (int i = 0; i < 20; ++i)
    replies.push_back(fx.execute(sim_job(10, 100, 100)));
  fx.run_to_quiescence();
  std::map<std::string, std::vector<job_result>> by_device;
  caf::timestamp first_accepted = caf::timestamp::max();
  caf::timestamp last_finished{};
  for (auto& r : replies) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
    CHECK(r->value->attempts == 1);
    by_device[r->value->device].push_back(*r->value);
    first_accepted = std::min(first_accepted, r->value->accepted_at);
    last_finished = std::max(last_finished, r->value->finished_at);
  }
  REQUIRE(by_device.size() == 5);
  for (auto& [device, jobs] : by_device) {
    INFO(device);
    CHECK(jobs.size() == 4);
    std::sort(jobs.begin(), jobs.end(),
              [](auto& x, auto& y) { return x.started_at < y.started_at; });
    for (size_t i = 1; i < jobs.size(); ++i)
      CHECK(jobs[i].started_at >= jobs[i - 1].finished_at);
  }
  for (auto& device : fx.nodes_now())
    CHECK(loads_of(device, "sim") == 1);
  auto makespan = between(first_accepted, last_finished);
  CHECK(makespan <= caf::timespan{4s} * 11 / 10);
  CHECK(makespan >= 4s);
}

TEST_CASE("higher priorities run first and equal priorities in the order "
          "they were accepted",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto blocker = fx.submit_now(sim_job(1, 1000));
  auto low = fx.submit_now(sim_job(1, 10, 0, 1));
  auto high = fx.submit_now(sim_job(1, 10, 0, 9));
  auto mid = fx.submit_now(sim_job(1, 10, 0, 5));
  auto high2 = fx.submit_now(sim_job(1, 10, 0, 9));
  fx.run_to_quiescence();
  auto start = [&](job_id id) { return fx.status_now(id).started_at; };
  CHECK(start(blocker) < start(high));
  CHECK(start(high) < start(high2));
  CHECK(start(high2) < start(mid));
  CHECK(start(mid) < start(low));
}

TEST_CASE("a low priority job waiting long enough overtakes a newer high "
          "priority job",
          "[admission]") {
  auto settings = settings_with(1);
  settings.aging_interval = 10s;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  auto blocker = fx.submit_now(sim_job(1, 100000)); // runs 100 s
  auto low = fx.submit_now(sim_job(1, 10, 0, 0));
  fx.advance(95s);
  auto high = fx.submit_now(sim_job(1, 10, 0, 9));
  fx.run_to_quiescence();
  // At 100 s the low job has aged 10 levels (0 + 10 > 9).
  CHECK(fx.status_now(low).started_at < fx.status_now(high).started_at);
  CHECK(fx.status_now(blocker).state == job_state::succeeded);
}

TEST_CASE("a full queue refuses a job without changing the queue",
          "[admission]") {
  auto settings = settings_with(1);
  settings.queue_size = 2;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  fx.submit_now(sim_job(1, 10000));
  fx.submit_now(sim_job(1, 10));
  fx.submit_now(sim_job(1, 10));
  auto refused = fx.submit(sim_job(1, 10));
  fx.run();
  REQUIRE(refused->error);
  CHECK(runtime::is(refused->error, errc::queue_full));
  CHECK_THAT(runtime::describe(refused->error),
             Catch::Contains("2 jobs are queued"));
  auto jobs = fx.list();
  fx.run();
  REQUIRE(jobs->value);
  CHECK(jobs->value->size() == 3);
  fx.run_to_quiescence();
  for (auto& job : *fx.list()->value)
    CHECK(job.state == job_state::succeeded);
}

TEST_CASE("a queue timeout fires at its deadline while every device is busy",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto blocker = fx.submit_now(sim_job(1, 100000));
  auto spec = sim_job(1, 10);
  spec.queue_timeout = 5s;
  auto waiting = fx.submit_now(spec);
  auto accepted = fx.now();
  fx.advance(4999ms);
  CHECK(fx.status_now(waiting).state == job_state::queued);
  fx.advance(1ms);
  auto result = fx.status_now(waiting);
  CHECK(result.state == job_state::timed_out);
  CHECK(runtime::is(result.error, errc::queue_timeout));
  CHECK(fx.now() - accepted == 5s);
  CHECK(result.attempts == 0);
  CHECK(fx.status_now(blocker).state == job_state::running);
}

TEST_CASE("a run timeout ends a hung job and its device takes the next job "
          "at once",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto spec = sim_job(5, 100);
  spec.options["fault"] = "hang-always@2";
  spec.run_timeout = 3s;
  auto hung = fx.submit_now(spec);
  auto next = fx.submit_now(sim_job(2, 100));
  fx.advance(3s);
  auto result = fx.status_now(hung);
  CHECK(result.state == job_state::timed_out);
  CHECK(runtime::is(result.error, errc::run_timeout));
  auto second = fx.status_now(next);
  CHECK(second.state == job_state::running);
  CHECK(second.started_at == result.finished_at);
  fx.run_to_quiescence();
  CHECK(fx.status_now(next).state == job_state::succeeded);
}

TEST_CASE("a cancelled queued job never runs", "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  fx.submit_now(sim_job(1, 1000));
  auto queued = fx.submit_now(sim_job(1, 10));
  auto cancelled = fx.cancel(queued);
  fx.run();
  REQUIRE(cancelled->value);
  CHECK(cancelled->value->state == job_state::cancelled);
  CHECK(runtime::is(cancelled->value->error, errc::cancelled));
  fx.run_to_quiescence();
  auto result = fx.status_now(queued);
  CHECK(result.state == job_state::cancelled);
  CHECK(result.attempts == 0);
}

TEST_CASE("reading a video is refused with a typed error for an unknown job, "
          "one that is queued or running, and an output that is no file",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto running = fx.submit_now(sim_job(2, 100));
  auto queued = fx.submit_now(sim_job(1, 100));
  auto expect = [&](job_id id, errc code, const std::string& words) {
    auto read = fx.read_output(id);
    fx.run();
    REQUIRE(read->arrived());
    REQUIRE_FALSE(read->value);
    CHECK(runtime::is(read->error, code));
    CHECK_THAT(runtime::describe(read->error), Catch::Contains(words));
  };
  expect(running, errc::no_output, "is running: it has no video yet");
  expect(queued, errc::no_output, "is queued: it has no video yet");
  expect(job_id{99}, errc::unknown_job, "no job 99");
  fx.run_to_quiescence();
  auto done = fx.status_now(running);
  REQUIRE(done.state == job_state::succeeded);
  // A sim job without the video option names a location, not a file.
  CHECK(done.output_node.empty());
  expect(running, errc::no_output, "is not a file");
}

TEST_CASE("cancelling a running job frees its device at once", "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto running = fx.submit_now(sim_job(100, 1000));
  auto next = fx.submit_now(sim_job(1, 10));
  fx.advance(2500ms);
  CHECK(fx.status_now(running).step == 2);
  auto cancelled = fx.cancel(running);
  fx.run();
  REQUIRE(cancelled->value);
  CHECK(cancelled->value->state == job_state::cancelled);
  auto second = fx.status_now(next);
  CHECK(second.state == job_state::running);
  CHECK(second.started_at == cancelled->value->finished_at);
  fx.run_to_quiescence();
  CHECK(fx.status_now(next).state == job_state::succeeded);
  // The cancelled job's later steps never report back.
  CHECK(fx.status_now(running).state == job_state::cancelled);
}

TEST_CASE("malformed requests get typed errors that name the field and "
          "change nothing",
          "[admission][validation]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:2:4GiB");
  struct bad_case {
    std::function<void(runtime::job_spec&)> mutate;
    errc code;
    std::string mentions;
  };
  std::vector<bad_case> cases = {
    {[](auto& s) { s.width = 17; }, errc::invalid_request, "width"},
    {[](auto& s) { s.height = 0; }, errc::invalid_request, "height"},
    {[](auto& s) { s.frames = -1; }, errc::invalid_request, "frames"},
    {[](auto& s) { s.steps = 100000; }, errc::invalid_request, "steps"},
    {[](auto& s) { s.priority = 10; }, errc::invalid_request, "priority"},
    {[](auto& s) { s.model = "no-such-model"; }, errc::unknown_model,
     "no-such-model"},
    {[](auto& s) { s.model = ""; }, errc::invalid_request, "model"},
    {[](auto& s) { s.options["stepms"] = "1"; }, errc::invalid_request,
     "stepms"},
    {[](auto& s) { s.options["step_ms"] = "fast"; }, errc::invalid_request,
     "step_ms"},
    {[](auto& s) { s.options["fault"] = "oom@99"; }, errc::invalid_request,
     "fault"},
    {[](auto& s) { s.options["mem_mb"] = "8192"; }, errc::too_large, "8GiB"},
    {[](auto& s) { s.queue_timeout = std::chrono::hours{24}; },
     errc::invalid_request, "queue_timeout"},
    {[](auto& s) { s.run_timeout = -1s; }, errc::invalid_request,
     "run_timeout"},
  };
  for (auto& c : cases) {
    auto spec = sim_job(2, 10);
    c.mutate(spec);
    auto r = fx.submit(spec);
    fx.run();
    INFO(c.mentions);
    REQUIRE(r->error);
    CHECK(runtime::is(r->error, c.code));
    CHECK_THAT(runtime::describe(r->error), Catch::Contains(c.mentions));
  }
  auto jobs = fx.list();
  fx.run();
  REQUIRE(jobs->value);
  CHECK(jobs->value->empty());
  auto unknown = fx.status(job_id{42});
  fx.run();
  CHECK(runtime::is(unknown->error, errc::unknown_job));
}

TEST_CASE("a repeated idempotency key returns the first job", "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto spec = sim_job(1, 10);
  spec.idempotency_key = "render-42";
  auto first = fx.submit_now(spec);
  auto second = fx.submit_now(spec);
  CHECK(first == second);
  spec.prompt = "something else";
  auto conflicting = fx.submit(spec);
  fx.run();
  CHECK(runtime::is(conflicting->error, errc::invalid_request));
  CHECK_THAT(runtime::describe(conflicting->error),
             Catch::Contains("idempotency_key"));
}

TEST_CASE("wait replies when the job ends, or with a snapshot when its bound "
          "runs out",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto id = fx.submit_now(sim_job(10, 1000));
  auto bounded = fx.wait(id, 2s);
  auto unbounded = fx.wait(id);
  fx.advance(2s);
  REQUIRE(bounded->value);
  CHECK(bounded->value->state == job_state::running);
  CHECK_FALSE(unbounded->arrived());
  fx.run_to_quiescence();
  REQUIRE(unbounded->value);
  CHECK(unbounded->value->state == job_state::succeeded);
  CHECK(unbounded->value->run_time == 10s);
}

TEST_CASE("a subscriber sees the job start, every step and its end",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  fx.submit_now(sim_job(1, 1000));
  auto id = fx.submit_now(sim_job(3, 100));
  auto log = fx.subscribe(id);
  fx.run_to_quiescence();
  std::vector<std::pair<job_state, int32_t>> seen;
  for (auto& e : log->events)
    seen.emplace_back(e.state, e.step);
  std::vector<std::pair<job_state, int32_t>> expected = {
    {job_state::running, 0}, {job_state::running, 1},   {job_state::running, 2},
    {job_state::running, 3}, {job_state::succeeded, 3},
  };
  CHECK(seen == expected);
}

TEST_CASE("a job goes to a device that already has its model", "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:2");
  auto b = fx.submit_now(sim_job(1, 10)); // "sim" on sim:0
  auto spec_a = sim_job(1, 10);
  spec_a.model = "sim-a";
  auto a = fx.submit_now(spec_a); // on sim:1
  fx.run_to_quiescence();
  CHECK(fx.status_now(b).device == "sim:0");
  CHECK(fx.status_now(a).device == "sim:1");
  auto again = fx.submit_now(spec_a);
  fx.run_to_quiescence();
  CHECK(fx.status_now(again).device == "sim:1");
  CHECK(loads_of(device_named(fx.nodes_now(), "sim:1"), "sim-a") == 1);
}

TEST_CASE("jobs that would exceed a device's memory wait instead of running",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(4), "sim:1:4GiB");
  auto spec = sim_job(1, 1000);
  spec.options["mem_mb"] = "3072";
  auto first = fx.submit_now(spec);
  auto second = fx.submit_now(spec);
  CHECK(fx.status_now(first).state == job_state::running);
  CHECK(fx.status_now(second).state == job_state::queued);
  auto device = device_named(fx.nodes_now(), "sim:0");
  CHECK(device.memory_reserved == 3072ull << 20);
  fx.run_to_quiescence();
  CHECK(fx.status_now(second).started_at >= fx.status_now(first).finished_at);
}

TEST_CASE("jobs behind one that waits for memory start first if they fit, "
          "at most max_bypass of them",
          "[admission][backfill]") {
  auto settings = settings_with(4);
  settings.max_bypass = 2;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1:16GiB");
  auto sized = [](int mb, int steps) {
    auto spec = sim_job(steps, 1000);
    spec.options["mem_mb"] = std::to_string(mb);
    return spec;
  };
  auto running = fx.submit_now(sized(10240, 10)); // 10 GiB for 10 s
  auto big = fx.submit_now(sized(8192, 1));       // needs 8 GiB: waits
  std::vector<job_id> small;
  for (int i = 0; i < 3; ++i)
    small.push_back(fx.submit_now(sized(1024, 1))); // 1 GiB each
  fx.advance(10ms);
  CHECK(fx.status_now(running).state == job_state::running);
  CHECK(fx.status_now(big).state == job_state::queued);
  // Two small jobs go around the big one; the third waits its turn.
  CHECK(fx.status_now(small[0]).state == job_state::running);
  CHECK(fx.status_now(small[1]).state == job_state::running);
  CHECK(fx.status_now(small[2]).state == job_state::queued);
  fx.run_to_quiescence();
  auto big_result = fx.status_now(big);
  auto last_small = fx.status_now(small[2]);
  CHECK(big_result.state == job_state::succeeded);
  CHECK(big_result.started_at >= fx.status_now(running).finished_at);
  CHECK(last_small.started_at >= big_result.started_at);
}

TEST_CASE("with max_bypass 0 jobs start strictly in queue order",
          "[admission][backfill]") {
  auto settings = settings_with(4);
  settings.max_bypass = 0;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1:16GiB");
  auto running = sim_job(10, 1000);
  running.options["mem_mb"] = "10240";
  fx.submit_now(running);
  auto big_spec = sim_job(1, 1000);
  big_spec.options["mem_mb"] = "8192";
  auto big = fx.submit_now(big_spec);
  auto small_spec = sim_job(1, 1000);
  small_spec.options["mem_mb"] = "1024";
  auto small = fx.submit_now(small_spec);
  fx.advance(10ms);
  CHECK(fx.status_now(big).state == job_state::queued);
  CHECK(fx.status_now(small).state == job_state::queued);
}

TEST_CASE("at concurrency two a device runs two jobs at once", "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(2), "sim:1");
  auto a = fx.execute(sim_job(10, 100));
  auto b = fx.execute(sim_job(10, 100));
  auto c = fx.execute(sim_job(10, 100));
  fx.advance(10ms);
  auto device = device_named(fx.nodes_now(), "sim:0");
  CHECK(device.slots_in_use == 2);
  fx.run_to_quiescence();
  REQUIRE(a->value);
  REQUIRE(c->value);
  CHECK(a->value->finished_at == b->value->finished_at);
  CHECK(c->value->started_at == a->value->finished_at);
}

TEST_CASE("finished results expire after the result ttl", "[admission]") {
  auto settings = settings_with(1);
  settings.result_ttl = 60s;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  auto spec = sim_job(1, 10);
  spec.idempotency_key = "once";
  auto id = fx.submit_now(spec);
  fx.advance(1s);
  CHECK(fx.status_now(id).state == job_state::succeeded);
  fx.advance(58s);
  CHECK(fx.status_now(id).state == job_state::succeeded);
  fx.advance(2s);
  auto gone = fx.status(id);
  fx.run();
  CHECK(runtime::is(gone->error, errc::unknown_job));
  // The key is free again.
  CHECK(fx.submit_now(spec) != id);
}

TEST_CASE("shutdown cancels queued and running jobs and answers their "
          "waiters",
          "[admission]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto running = fx.execute(sim_job(10, 1000));
  auto queued = fx.execute(sim_job(10, 1000));
  fx.advance(1s);
  fx.stop_node();
  REQUIRE(running->value);
  REQUIRE(queued->value);
  CHECK(running->value->state == job_state::cancelled);
  CHECK(queued->value->state == job_state::cancelled);
  CHECK_THAT(runtime::describe(queued->value->error),
             Catch::Contains("shutting down"));
}

TEST_CASE("beyond max_results the oldest finished results are dropped first",
          "[admission]") {
  auto settings = settings_with(1);
  settings.max_results = 2;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  std::vector<job_id> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(fx.submit_now(sim_job(1, 10)));
    fx.advance(1s);
  }
  auto oldest = fx.status(ids[0]);
  fx.run();
  CHECK(runtime::is(oldest->error, errc::unknown_job));
  CHECK(fx.status_now(ids[1]).state == job_state::succeeded);
  CHECK(fx.status_now(ids[2]).state == job_state::succeeded);
}

TEST_CASE("after an out-of-memory failure the retry reserves more memory",
          "[admission][memory]") {
  auto settings = settings_with(1);
  settings.oom_estimate_growth = 1.5;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1:8GiB");
  auto spec = sim_job(3, 100);
  spec.options["mem_mb"] = "2048";
  spec.options["fault"] = "oom@1";
  auto r = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  CHECK(r->value->reserved_bytes == 3072ull << 20);
}

TEST_CASE("a job reserves the measured peak of its shape plus the headroom",
          "[admission][memory]") {
  auto settings = settings_with(1);
  settings.memory_headroom = 0.25;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1:8GiB");
  auto spec = sim_job(1, 10);
  spec.options["mem_mb"] = "1024";
  spec.options["peak_mb"] = "2048";
  auto first = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(first->value);
  CHECK(first->value->reserved_bytes == 1024ull << 20);
  spec.seed = 2; // same shape, another job
  auto second = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(second->value);
  CHECK(second->value->reserved_bytes == 2560ull << 20);
}

TEST_CASE("a job whose raised estimate fits no device fails, and its shape is "
          "then refused as too large",
          "[admission][memory]") {
  auto settings = settings_with(1);
  settings.oom_estimate_growth = 1.5;
  settings.max_attempts = 5;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1:4GiB");
  auto spec = sim_job(2, 10);
  spec.options["mem_mb"] = "3072";
  spec.options["fault"] = "oom-always@1";
  auto r = fx.execute(spec);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::failed);
  CHECK(runtime::is(r->value->error, errc::out_of_memory));
  CHECK_THAT(runtime::describe(r->value->error),
             Catch::Contains("more than any device has"));
  CHECK(r->value->attempts == 1);
  auto again = fx.submit(spec);
  fx.run();
  CHECK(runtime::is(again->error, errc::too_large));
}

TEST_CASE("a job none of the node's devices can run is refused at once when "
          "no worker node can join, and queued when one can",
          "[admission]") {
  auto settings = settings_with(1);
  SECTION("without --cluster-listen") {
    test::deterministic_fixture fx;
    fx.start_node(settings, "none");
    auto refused = fx.submit(sim_job(1, 10));
    fx.run();
    REQUIRE(refused->error);
    CHECK(runtime::is(refused->error, errc::unknown_model));
    CHECK(runtime::describe(refused->error).find("no worker node can join")
          != std::string::npos);
  }
  SECTION("with --cluster-listen") {
    settings.accepts_worker_nodes = true;
    test::deterministic_fixture fx;
    fx.start_node(settings, "none");
    auto id = fx.submit_now(sim_job(1, 10));
    CHECK(fx.status_now(id).state == job_state::queued);
  }
}
