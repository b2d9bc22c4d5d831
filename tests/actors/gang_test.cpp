/// Gangs (jobs of several ranks) on sim devices, on CAF's test coordinator:
/// placement all or nothing, lockstep, a failing rank ending every rank,
/// the bound on singles that pass a waiting gang, and gangs that compete
/// for devices.

#include <algorithm>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "support/cluster_fixture.hpp"
#include "support/deterministic.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using runtime::job_id;
using runtime::job_result;
using runtime::job_state;
using test::settings_with;
using test::sim_job;

namespace {

runtime::job_spec gang_job(int32_t ranks, int32_t steps, int step_ms) {
  auto spec = sim_job(steps, step_ms);
  spec.ranks = ranks;
  return spec;
}

/// The devices of a result's attempt ("sim:0,sim:2").
std::vector<std::string> devices_of(const job_result& r) {
  std::vector<std::string> names;
  std::stringstream in{r.device};
  for (std::string name; std::getline(in, name, ',');)
    names.push_back(name);
  return names;
}

/// Jobs holding a slot on any device now.
size_t slots_in_use(test::deterministic_fixture& fx) {
  size_t n = 0;
  for (const auto& device : fx.nodes_now())
    n += device.running.size();
  return n;
}

} // namespace

TEST_CASE("a gang runs on as many distinct devices as it has ranks, and its "
          "progress advances once per step of all of them",
          "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:4");
  auto id = fx.submit_now(gang_job(3, 5, 100));
  auto events = fx.subscribe(id);
  fx.run();
  auto running = fx.status_now(id);
  REQUIRE(running.state == job_state::running);
  auto names = devices_of(running);
  CHECK(names.size() == 3);
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == 3);
  CHECK(slots_in_use(fx) == 3);
  fx.run_to_quiescence();
  auto done = fx.status_now(id);
  CHECK(done.state == job_state::succeeded);
  CHECK(done.attempts == 1);
  CHECK(done.step == 5);
  // 5 steps of 100 ms in lockstep: as long as one rank alone.
  CHECK(done.run_time >= 500ms);
  CHECK(done.run_time < 600ms);
  std::vector<int32_t> steps;
  for (const auto& e : events->events)
    if (e.state == job_state::running && e.step > 0)
      steps.push_back(e.step);
  CHECK(steps == std::vector<int32_t>{1, 2, 3, 4, 5});
  CHECK(slots_in_use(fx) == 0);
}

TEST_CASE("a gang larger than any node is refused at once with too_large, "
          "and changes nothing",
          "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:4");
  auto refused = fx.submit(gang_job(5, 1, 10));
  fx.run();
  REQUIRE(refused->error);
  CHECK(runtime::is(refused->error, errc::too_large));
  CHECK_THAT(runtime::describe(refused->error),
             Catch::Contains("needs 5 devices")
               && Catch::Contains("the most on one node is 4"));
  auto jobs = fx.list();
  fx.run();
  REQUIRE(jobs->value);
  CHECK(jobs->value->empty());
  auto bad = fx.submit(gang_job(0, 1, 10));
  fx.run();
  REQUIRE(bad->error);
  CHECK(runtime::is(bad->error, errc::invalid_request));
  CHECK_THAT(runtime::describe(bad->error), Catch::Contains("ranks"));
}

TEST_CASE("a rank that crashes mid-job stops every rank before its next "
          "step, frees all devices, and the retry succeeds",
          "[gang]") {
  test::deterministic_fixture fx;
  auto settings = settings_with(1);
  fx.start_node(settings, "sim:2");
  auto spec = gang_job(2, 6, 100);
  spec.options["fault"] = "crash@3";
  spec.options["fault_rank"] = "1";
  auto id = fx.submit_now(spec);
  auto events = fx.subscribe(id);
  // Rank 1 crashes in its third step (200 ms to 300 ms).
  fx.advance(300ms);
  fx.run();
  // Rank 1's worker restarts at once. The retry can start only once rank
  // 0's device was freed too (rank 0 stopped, not left running), and it
  // starts at once.
  auto now = fx.status_now(id);
  CHECK(now.state == job_state::running);
  CHECK(now.attempts == 2);
  CHECK(slots_in_use(fx) == 2);
  for (const auto& e : events->events)
    if (e.attempt == 1)
      CHECK(e.step <= 2);
  fx.run_to_quiescence();
  auto done = fx.status_now(id);
  CHECK(done.state == job_state::succeeded);
  CHECK(done.attempts == 2);
  CHECK(slots_in_use(fx) == 0);
}

TEST_CASE("a rank that runs out of memory frees every device of its gang at "
          "once; the gang retries with a raised estimate",
          "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:2");
  auto spec = gang_job(2, 4, 100);
  spec.options["fault"] = "oom@2";
  spec.options["fault_rank"] = "0";
  auto id = fx.submit_now(spec);
  fx.run();
  auto first = fx.status_now(id);
  REQUIRE(first.state == job_state::running);
  // Rank 0 runs out of memory in its second step (100 ms to 200 ms). Its
  // worker restarts at once, keeping the model; the retry can start only
  // if rank 1's device was freed too, and it starts at once.
  fx.advance(200ms);
  fx.run();
  auto retry = fx.status_now(id);
  CHECK(retry.state == job_state::running);
  CHECK(retry.attempts == 2);
  CHECK(slots_in_use(fx) == 2);
  CHECK(retry.reserved_bytes > first.reserved_bytes);
  fx.run_to_quiescence();
  auto done = fx.status_now(id);
  CHECK(done.state == job_state::succeeded);
  CHECK(done.attempts == 2);
}

TEST_CASE("a rank that hangs is found by the ranks waiting for it: after "
          "gang-timeout the gang ends and runs again",
          "[gang]") {
  auto settings = settings_with(1);
  settings.gang_timeout = 5s;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:3");
  auto spec = gang_job(3, 4, 100);
  spec.options["fault"] = "hang@2";
  spec.options["fault_rank"] = "2";
  auto id = fx.submit_now(spec);
  // Ranks 0 and 1 finish step 2 at 200 ms and wait for rank 2.
  fx.advance(5s);
  CHECK(fx.status_now(id).attempts == 1);
  fx.advance(300ms);
  auto retried = fx.status_now(id);
  CHECK(retried.attempts == 2);
  CHECK(retried.state == job_state::running);
  fx.run_to_quiescence();
  auto done = fx.status_now(id);
  CHECK(done.state == job_state::succeeded);
  CHECK(done.attempts == 2);
  CHECK(slots_in_use(fx) == 0);
}

TEST_CASE("cancelling a running gang stops all of its ranks", "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:3");
  auto id = fx.submit_now(gang_job(3, 100, 100));
  fx.advance(250ms);
  REQUIRE(fx.status_now(id).state == job_state::running);
  auto cancelled = fx.cancel(id);
  fx.run();
  REQUIRE(cancelled->value);
  CHECK(cancelled->value->state == job_state::cancelled);
  CHECK(slots_in_use(fx) == 0);
  // The devices take the next job at once.
  auto next = fx.submit_now(gang_job(3, 1, 10));
  fx.run_to_quiescence();
  CHECK(fx.status_now(next).state == job_state::succeeded);
}

TEST_CASE("a gang waiting at the head of the queue is passed by at most "
          "max-bypass singles, then runs",
          "[gang]") {
  auto settings = settings_with(1);
  settings.max_bypass = 3;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:4");
  // Singles of staggered lengths keep some device busy at every moment.
  std::vector<job_id> singles;
  for (int i = 0; i < 4; ++i)
    singles.push_back(fx.submit_now(sim_job(1, 100 * (i + 1))));
  auto gang = fx.submit_now(gang_job(4, 2, 100));
  for (int i = 0; i < 20; ++i)
    singles.push_back(fx.submit_now(sim_job(1, 100)));
  fx.run_to_quiescence();
  auto g = fx.status_now(gang);
  REQUIRE(g.state == job_state::succeeded);
  int passed = 0;
  for (auto id : singles) {
    auto r = fx.status_now(id);
    CHECK(r.state == job_state::succeeded);
    if (r.accepted_at > g.accepted_at && r.started_at < g.started_at)
      ++passed;
  }
  CHECK(passed <= settings.max_bypass);
  // The devices drained for it: it started once the longest of the first
  // singles (400 ms) ended, not after the 20 behind it.
  CHECK(g.started_at - g.accepted_at <= caf::timespan{500ms});
}

TEST_CASE("two gangs of 3 on 4 devices never deadlock: one runs, then the "
          "other",
          "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:4");
  auto a = fx.submit_now(gang_job(3, 5, 100));
  auto b = fx.submit_now(gang_job(3, 5, 100));
  auto single = fx.submit_now(sim_job(2, 100));
  fx.run();
  // Nothing is held while a gang waits: the single takes the fourth device.
  CHECK(fx.status_now(single).state == job_state::running);
  fx.run_to_quiescence();
  auto ra = fx.status_now(a);
  auto rb = fx.status_now(b);
  REQUIRE(ra.state == job_state::succeeded);
  REQUIRE(rb.state == job_state::succeeded);
  CHECK(rb.started_at >= ra.finished_at);
}

TEST_CASE("with several slots per device a gang takes only devices that "
          "run no job",
          "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(2), "sim:2");
  auto single = fx.submit_now(sim_job(5, 100));
  auto gang = fx.submit_now(gang_job(2, 2, 100));
  fx.run();
  // A slot is free on both devices, but one runs the single.
  CHECK(fx.status_now(gang).state == job_state::queued);
  fx.run_to_quiescence();
  auto g = fx.status_now(gang);
  CHECK(g.state == job_state::succeeded);
  CHECK(g.started_at >= fx.status_now(single).finished_at);
}

TEST_CASE("a gang of one rank is a job of one device, and a sim fault_rank "
          "outside the gang is refused",
          "[gang]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:2");
  auto single = fx.submit_now(gang_job(1, 2, 10));
  auto bad_spec = gang_job(2, 2, 10);
  bad_spec.options["fault"] = "crash@1";
  bad_spec.options["fault_rank"] = "2";
  auto bad = fx.submit(bad_spec);
  fx.run_to_quiescence();
  CHECK(fx.status_now(single).state == job_state::succeeded);
  CHECK(devices_of(fx.status_now(single)).size() == 1);
  REQUIRE(bad->error);
  CHECK(runtime::is(bad->error, errc::invalid_request));
  CHECK_THAT(runtime::describe(bad->error),
             Catch::Contains("fault_rank must be a rank of the job, from 0 "
                             "to 1"));
}

TEST_CASE("a gang spreads over the fewest worker nodes only with "
          "gang_across_nodes, and runs again on the nodes left when one of "
          "its nodes is lost",
          "[gang][cluster]") {
  auto settings = test::cluster_settings_with(1);
  settings.lease_grace = 0s;
  SECTION("kept to one node, a gang larger than every node is refused") {
    test::cluster_fixture fx;
    fx.head.start_node(settings, "none");
    fx.add_worker("w1", "sim:2");
    fx.add_worker("w2", "sim:2");
    auto refused = fx.head.submit(gang_job(3, 2, 100));
    fx.run();
    REQUIRE(refused->error);
    CHECK(runtime::is(refused->error, errc::too_large));
    CHECK_THAT(runtime::describe(refused->error),
               Catch::Contains("--gang-across-nodes is off"));
    // A gang that fits one node stays on one node.
    auto two = fx.head.execute(gang_job(2, 2, 100));
    fx.run_to_quiescence();
    REQUIRE(two->value);
    CHECK(two->value->state == job_state::succeeded);
    CHECK((two->value->node == "w1" || two->value->node == "w2"));
  }
  SECTION("across nodes, then a lost node") {
    settings.gang_across_nodes = true;
    test::cluster_fixture fx;
    fx.head.start_node(settings, "none");
    auto& w1 = fx.add_worker("w1", "sim:2");
    fx.add_worker("w2", "sim:1");
    fx.add_worker("w3", "sim:1");
    fx.add_worker("w4", "sim:1");
    auto reply = fx.head.execute(gang_job(3, 10, 100));
    fx.advance(250ms);
    auto first = fx.head.status_now(job_id{1});
    REQUIRE(first.state == job_state::running);
    // The fewest nodes: w1's two devices and one more node.
    CHECK(devices_of(first).size() == 3);
    CHECK(first.node.find("w1") == 0);
    CHECK(std::count(first.node.begin(), first.node.end(), ',') == 1);
    fx.cut(w1);
    // Nothing is held for the lost node: the gang runs again at once, on
    // the three nodes left (each with one device).
    auto again = fx.head.status_now(job_id{1});
    INFO(runtime::describe(again.error));
    CHECK(again.state == job_state::running);
    CHECK(again.attempts == 2);
    CHECK(again.node.find("w1") == std::string::npos);
    CHECK(std::count(again.node.begin(), again.node.end(), ',') == 2);
    fx.run_to_quiescence();
    REQUIRE(reply->value);
    CHECK(reply->value->state == job_state::succeeded);
    CHECK(reply->value->attempts == 2);
  }
}
