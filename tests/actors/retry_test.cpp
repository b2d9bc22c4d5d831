/// A client's retry of a failed or timed-out job (runtime::retry_atom): the
/// job queued again under its id, the refusals that change nothing, and
/// list's endpoint filter.

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
#include "vidnode/actors/node_observer.hpp"
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

/// Counts acceptances and retries.
struct acceptance_counter : actors::node_observer {
  std::atomic<int> accepted{0};
  std::atomic<int> retried{0};

  void job_accepted(const std::string&, int32_t) override {
    ++accepted;
  }

  void job_retried(const std::string&, int32_t) override {
    ++retried;
  }
};

/// Settings under which a job's first failure ends it.
runtime::node_settings single_attempt_settings() {
  auto settings = settings_with(1);
  settings.max_attempts = 1;
  return settings;
}

/// A job of three steps of 100 ms that crashes its worker at step 1 on
/// device `device` and runs anywhere else.
runtime::job_spec crashing_on(const std::string& device) {
  auto spec = sim_job(3, 100);
  spec.options["fault"] = "crash-on-" + device + "@1";
  return spec;
}

/// Submits a job that fails at its first (and only) attempt on a node of
/// one device and runs until it has; returns its id.
job_id failed_job(test::deterministic_fixture& fx) {
  auto spec = sim_job(3, 100);
  spec.options["fault"] = "crash@1";
  auto id = fx.submit_now(spec);
  fx.run_to_quiescence();
  REQUIRE(fx.status_now(id).state == job_state::failed);
  return id;
}

job_result retry_now(test::deterministic_fixture& fx, job_id id) {
  auto r = fx.retry(id);
  fx.run();
  INFO(runtime::describe(r->error));
  REQUIRE(r->value);
  return *r->value;
}

caf::error retry_refusal(test::deterministic_fixture& fx, job_id id) {
  auto r = fx.retry(id);
  fx.run();
  REQUIRE_FALSE(r->value);
  REQUIRE(r->error);
  return r->error;
}

/// What a refused retry must leave as it was.
void check_unchanged(const job_result& before, const job_result& after) {
  CHECK(after.state == before.state);
  CHECK(after.error == before.error);
  CHECK(after.attempts == before.attempts);
  CHECK(after.accepted_at == before.accepted_at);
  CHECK(after.started_at == before.started_at);
  CHECK(after.finished_at == before.finished_at);
}

} // namespace

TEST_CASE("a job failed by a crash is retried under its id and succeeds, and "
          "a subscriber sees it queued again",
          "[retry]") {
  test::deterministic_fixture fx;
  auto counter = std::make_shared<acceptance_counter>();
  fx.start_node(single_attempt_settings(), "sim:2", nullptr, counter);
  auto id = fx.submit_now(crashing_on("sim:0"));
  fx.run_to_quiescence();
  auto failed = fx.status_now(id);
  REQUIRE(failed.state == job_state::failed);
  REQUIRE(failed.device == "sim:0");
  CHECK(runtime::is(failed.error, errc::worker_lost));
  // sim:0 gets a long job and sim:1 a short one: the retry waits for sim:1.
  auto long_job = fx.submit_now(sim_job(1, 100000));
  auto short_job = fx.submit_now(sim_job(1, 1000));
  REQUIRE(fx.status_now(long_job).device == "sim:0");
  REQUIRE(fx.status_now(short_job).device == "sim:1");
  fx.advance(100ms);
  auto retried = retry_now(fx, id);
  CHECK(retried.id == id);
  CHECK(retried.state == job_state::queued);
  CHECK_FALSE(retried.error);
  CHECK(retried.output.empty());
  CHECK(retried.attempts == 0);
  CHECK(retried.step == 0);
  CHECK(retried.steps == 0);
  CHECK(retried.accepted_at > failed.finished_at);
  CHECK(retried.started_at == caf::timestamp{});
  CHECK(retried.computed_at == caf::timestamp{});
  CHECK(retried.finished_at == caf::timestamp{});
  CHECK(retried.run_time == 0s);
  CHECK(retried.queue_time == 0s);
  auto log = fx.subscribe(id);
  CHECK(fx.status_now(id).state == job_state::queued);
  auto done = fx.wait(id);
  fx.advance(50s);
  REQUIRE(done->value);
  CHECK(done->value->id == id);
  CHECK(done->value->state == job_state::succeeded);
  CHECK(done->value->device == "sim:1");
  CHECK(done->value->attempts == 1);
  CHECK(done->value->accepted_at == retried.accepted_at);
  std::vector<std::pair<job_state, int32_t>> seen;
  for (auto& e : log->events)
    seen.emplace_back(e.state, e.step);
  std::vector<std::pair<job_state, int32_t>> expected = {
    {job_state::running, 0}, {job_state::running, 1},   {job_state::running, 2},
    {job_state::running, 3}, {job_state::succeeded, 3},
  };
  CHECK(seen == expected);
  CHECK(fx.status_now(long_job).state == job_state::running);
  CHECK(counter->accepted == 3);
  CHECK(counter->retried == 1);
}

TEST_CASE("a retry of a queued, running, succeeded or cancelled job is "
          "refused and changes nothing",
          "[retry]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto succeeded = fx.submit_now(sim_job(1, 10));
  fx.run_to_quiescence();
  auto cancelled = fx.submit_now(sim_job(1, 10));
  auto running = fx.submit_now(sim_job(1, 100000));
  auto queued = fx.submit_now(sim_job(1, 10));
  fx.cancel(cancelled);
  fx.run();
  std::vector<std::pair<job_id, job_state>> jobs = {
    {succeeded, job_state::succeeded},
    {cancelled, job_state::cancelled},
    {running, job_state::running},
    {queued, job_state::queued},
  };
  for (auto [id, state] : jobs) {
    INFO("job " << id.value << " " << runtime::to_string(state));
    auto before = fx.status_now(id);
    REQUIRE(before.state == state);
    auto err = retry_refusal(fx, id);
    CHECK(runtime::is(err, errc::invalid_request));
    CHECK(runtime::detail_of(err)
          == "job " + runtime::to_string(id) + " is "
               + runtime::to_string(state)
               + ": only failed or timed-out jobs can be retried");
    check_unchanged(before, fx.status_now(id));
  }
  fx.run_to_quiescence();
  CHECK(fx.status_now(queued).state == job_state::succeeded);
  CHECK(fx.status_now(queued).attempts == 1);
}

TEST_CASE("a retry of an unknown job is refused with unknown_job", "[retry]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  CHECK(runtime::is(retry_refusal(fx, job_id{42}), errc::unknown_job));
}

TEST_CASE("a retry while the queue is full is refused and the job stays "
          "failed",
          "[retry]") {
  auto settings = single_attempt_settings();
  settings.queue_size = 1;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:1");
  auto id = failed_job(fx);
  auto before = fx.status_now(id);
  fx.submit_now(sim_job(1, 100000));
  fx.submit_now(sim_job(1, 10));
  auto err = retry_refusal(fx, id);
  CHECK(runtime::is(err, errc::queue_full));
  check_unchanged(before, fx.status_now(id));
  fx.run_to_quiescence(200s);
  // Once the queue has room the retry is taken.
  CHECK(fx.status_now(id).state == job_state::failed);
  CHECK(retry_now(fx, id).state == job_state::queued);
}

TEST_CASE("a job that timed out in the queue can be retried", "[retry]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto blocker = fx.submit_now(sim_job(1, 100000));
  auto spec = sim_job(2, 100);
  spec.queue_timeout = 5s;
  auto id = fx.submit_now(spec);
  fx.advance(5s);
  REQUIRE(fx.status_now(id).state == job_state::timed_out);
  auto retried = retry_now(fx, id);
  CHECK(retried.state == job_state::queued);
  CHECK_FALSE(retried.error);
  // Its queue timeout runs again from the retry.
  fx.advance(4999ms);
  CHECK(fx.status_now(id).state == job_state::queued);
  fx.advance(1ms);
  CHECK(fx.status_now(id).state == job_state::timed_out);
  retry_now(fx, id);
  fx.cancel(blocker);
  fx.run_to_quiescence();
  auto result = fx.status_now(id);
  CHECK(result.state == job_state::succeeded);
  CHECK(result.attempts == 1);
}

TEST_CASE("a retried job is listed among the live jobs in its new place",
          "[retry]") {
  test::deterministic_fixture fx;
  fx.start_node(single_attempt_settings(), "sim:1");
  auto id = failed_job(fx);
  auto blocker = fx.submit_now(sim_job(1, 100000));
  auto later = fx.submit_now(sim_job(1, 10));
  retry_now(fx, id);
  auto listed = fx.list();
  fx.run();
  REQUIRE(listed->value);
  std::vector<uint64_t> order;
  for (auto& r : *listed->value)
    order.push_back(r.id.value);
  CHECK(order == std::vector<uint64_t>{blocker.value, later.value, id.value});
}

TEST_CASE("list with an endpoint returns only that endpoint's jobs, in the "
          "same order and within the same limit",
          "[retry]") {
  test::deterministic_fixture fx;
  fx.start_node(settings_with(1), "sim:1");
  auto with_endpoint = [&](const std::string& endpoint, int step_ms) {
    auto spec = sim_job(1, step_ms);
    spec.endpoint = endpoint;
    return fx.submit_now(spec).value;
  };
  auto a1 = with_endpoint("alpha", 10);
  auto b1 = with_endpoint("beta", 10);
  auto a2 = with_endpoint("alpha", 10);
  fx.run_to_quiescence();
  auto a3 = with_endpoint("alpha", 100000);
  auto none = with_endpoint("", 10);
  auto a4 = with_endpoint("alpha", 10);
  auto ids = [&](const runtime::list_query& query) {
    auto listed = fx.list(query);
    fx.run();
    REQUIRE(listed->value);
    std::vector<uint64_t> result;
    for (auto& r : *listed->value) {
      CHECK((query.endpoint.empty() || r.endpoint == query.endpoint));
      result.push_back(r.id.value);
    }
    return result;
  };
  runtime::list_query alpha;
  alpha.endpoint = "alpha";
  CHECK(ids(alpha) == std::vector<uint64_t>{a3, a4, a2, a1});
  alpha.limit = 3;
  CHECK(ids(alpha) == std::vector<uint64_t>{a3, a4, a2});
  alpha.include_finished = false;
  CHECK(ids(alpha) == std::vector<uint64_t>{a3, a4});
  runtime::list_query beta;
  beta.endpoint = "beta";
  CHECK(ids(beta) == std::vector<uint64_t>{b1});
  runtime::list_query unknown;
  unknown.endpoint = "gamma";
  CHECK(ids(unknown).empty());
  CHECK(ids(runtime::list_query{}).size() == 6);
  CHECK(fx.status_now(job_id{b1}).endpoint == "beta");
  CHECK(fx.status_now(job_id{none}).endpoint.empty());
}
