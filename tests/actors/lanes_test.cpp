/// @file
/// Lanes: a cpu device with max_concurrency N runs N jobs side by side, each
/// on a thread of its own. These tests use a real actor system (lanes are
/// threads) and a model of their own whose steps meet at a rendezvous, so
/// they prove overlap by waiting for it, never by timing.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/pipeline.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace {

using namespace std::chrono_literals;
using vidnode::runtime::job_result;
using vidnode::runtime::job_spec;
using vidnode::runtime::job_state;
namespace actors = vidnode::actors;
namespace gpu = vidnode::gpu;
namespace runtime = vidnode::runtime;

/// What the model's steps saw, shared by every run of a test.
struct step_log {
  std::mutex mutex;
  std::condition_variable changed;
  /// Steps running now, and the most that ever ran at once.
  int32_t inside = 0;
  int32_t most_inside = 0;
  /// Threads that ran steps.
  std::set<std::thread::id> threads;
  /// First steps of jobs that had another step running beside them at
  /// some moment.
  int32_t met = 0;
  /// Steps inside now, and those that met another, by visit number.
  std::set<int64_t> visiting;
  std::set<int64_t> visits_met;
  int64_t next_visit = 0;
  /// Jobs whose step 1 waits until `release` is set.
  bool release = false;
  /// An attempt ran out of memory.
  bool oom_thrown = false;
  /// The pipeline was destroyed; a step found it so when it went on.
  bool pipeline_destroyed = false;
  bool step_outlived_pipeline = false;
};

/// A step enters, waits (a job's first step only) up to `meet_within` for
/// another step to be running at the same time (a rendezvous: it never
/// waits when lanes overlap), and leaves. Options: "oom": step 1 of
/// attempt 1 throws out_of_memory; "hold": step 1 waits for log.release.
class meeting_run : public gpu::job_run {
public:
  meeting_run(std::shared_ptr<step_log> log, job_spec spec, int32_t attempt,
              std::chrono::milliseconds meet_within)
    : log_(std::move(log)), spec_(std::move(spec)), attempt_(attempt),
      meet_within_(meet_within) {}

  int32_t steps() const override {
    return spec_.steps;
  }

  gpu::device_time step(int32_t index) override {
    std::unique_lock<std::mutex> guard{log_->mutex};
    if (index == 1 && attempt_ == 1 && spec_.options.count("oom") > 0) {
      log_->oom_thrown = true;
      log_->changed.notify_all();
      throw gpu::out_of_memory("simulated out of memory", 1024);
    }
    auto me = log_->next_visit++;
    log_->inside += 1;
    log_->most_inside = std::max(log_->most_inside, log_->inside);
    log_->threads.insert(std::this_thread::get_id());
    log_->visiting.insert(me);
    // Steps inside together have met, whichever came first.
    if (log_->visiting.size() > 1)
      log_->visits_met.insert(log_->visiting.begin(), log_->visiting.end());
    log_->changed.notify_all();
    // Only a job's first step waits to meet another: later steps can pair
    // up unevenly (one step may meet two of the other job's).
    auto wait = index == 0 ? meet_within_ : std::chrono::milliseconds{0};
    if (log_->changed.wait_for(guard, wait,
                               [&] { return log_->visits_met.count(me) > 0; })
        && index == 0)
      log_->met += 1;
    log_->visiting.erase(me);
    if (index == 1 && spec_.options.count("hold") > 0) {
      log_->changed.wait_for(guard, 20s, [&] { return log_->release; });
      // A real run would use its pipeline's weights now.
      if (log_->pipeline_destroyed)
        log_->step_outlived_pipeline = true;
    }
    log_->inside -= 1;
    log_->changed.notify_all();
    return gpu::device_time{0};
  }

  gpu::job_output finish(gpu::device_time& busy) override {
    busy = gpu::device_time{0};
    gpu::job_output out;
    out.location = "memory:" + spec_.prompt;
    return out;
  }

private:
  std::shared_ptr<step_log> log_;
  job_spec spec_;
  int32_t attempt_;
  std::chrono::milliseconds meet_within_;
};

class meeting_pipeline : public gpu::pipeline {
public:
  meeting_pipeline(std::shared_ptr<step_log> log,
                   std::chrono::milliseconds meet_within)
    : log_(std::move(log)), meet_within_(meet_within) {}

  ~meeting_pipeline() override {
    std::lock_guard<std::mutex> guard{log_->mutex};
    log_->pipeline_destroyed = true;
    log_->changed.notify_all();
  }

  gpu::device_time load(const job_spec&) override {
    return gpu::device_time{0};
  }

  std::unique_ptr<gpu::job_run> begin(const job_spec& spec, int32_t attempt,
                                      gpu::device_time& busy) override {
    busy = gpu::device_time{0};
    return std::make_unique<meeting_run>(log_, spec, attempt, meet_within_);
  }

private:
  std::shared_ptr<step_log> log_;
  std::chrono::milliseconds meet_within_;
};

class meeting_factory : public gpu::model_factory {
public:
  meeting_factory(std::shared_ptr<step_log> log,
                  std::chrono::milliseconds meet_within)
    : log_(std::move(log)), meet_within_(meet_within) {}

  const std::vector<std::string>& served() const override {
    return names_;
  }

  bool runs_on(runtime::device_kind kind) const override {
    return kind == runtime::device_kind::cpu;
  }

  std::optional<std::string> validate(const job_spec& spec) const override {
    for (const auto& [key, value] : spec.options)
      if (key != "oom" && key != "hold")
        return "options: meeting takes no option '" + key + "'";
    return std::nullopt;
  }

  uint64_t estimate_peak_bytes(const job_spec&) const override {
    return 1024;
  }

  std::unique_ptr<gpu::pipeline>
  make(const std::string&, const runtime::device_info&) const override {
    return std::make_unique<meeting_pipeline>(log_, meet_within_);
  }

private:
  std::vector<std::string> names_{"meeting"};
  std::shared_ptr<step_log> log_;
  std::chrono::milliseconds meet_within_;
};

/// A node of one cpu device with `concurrency` slots serving `meeting`.
struct lanes_fixture {
  explicit lanes_fixture(int32_t concurrency,
                         std::chrono::milliseconds meet_within = 20s)
    : log(std::make_shared<step_log>()) {
    auto catalog = std::make_shared<gpu::model_catalog>();
    catalog->add(std::make_shared<meeting_factory>(log, meet_within));
    runtime::node_settings settings;
    settings.node_name = "lanes";
    settings.devices = "cpu:1";
    settings.max_concurrency = concurrency;
    settings.max_attempts = 3;
    auto started = actors::local_node::start(sys, settings, catalog);
    REQUIRE(started);
    node = std::move(*started);
  }

  ~lanes_fixture() {
    {
      std::lock_guard<std::mutex> guard{log->mutex};
      log->release = true;
    }
    log->changed.notify_all();
    if (node)
      node->stop();
  }

  static job_spec job(std::string name, int32_t steps,
                      std::map<std::string, std::string> options = {}) {
    job_spec spec;
    spec.model = "meeting";
    spec.prompt = std::move(name);
    spec.width = 64;
    spec.height = 64;
    spec.frames = 1;
    spec.steps = steps;
    spec.options = std::move(options);
    return spec;
  }

  /// Submits every job, then waits for each result (at most 60 s).
  std::vector<job_result> run_all(const std::vector<job_spec>& jobs) {
    caf::scoped_actor self{sys};
    std::vector<runtime::job_id> ids;
    for (const auto& spec : jobs)
      self
        ->request(node->admission(), caf::infinite, runtime::submit_atom::value,
                  spec)
        .receive([&](runtime::job_id id) { ids.push_back(id); },
                 [&](caf::error& err) { FAIL(runtime::describe(err)); });
    std::vector<job_result> results;
    for (auto id : ids)
      self
        ->request(node->admission(), caf::duration{std::chrono::seconds{90}},
                  runtime::wait_atom::value, id,
                  caf::timespan{std::chrono::seconds{60}})
        .receive([&](job_result& r) { results.push_back(std::move(r)); },
                 [&](caf::error& err) { FAIL(runtime::describe(err)); });
    return results;
  }

  /// Submits a job that holds its step 1 until log.release, and waits
  /// until it is inside that step; its id.
  runtime::job_id submit_held() {
    caf::scoped_actor self{sys};
    runtime::job_id held;
    self
      ->request(node->admission(), caf::infinite, runtime::submit_atom::value,
                job("held", 3, {{"hold", "1"}}))
      .receive([&](runtime::job_id id) { held = id; },
               [&](caf::error& err) { FAIL(runtime::describe(err)); });
    std::unique_lock<std::mutex> guard{log->mutex};
    REQUIRE(log->changed.wait_for(
      guard, 20s, [&] { return log->inside == 1 && log->next_visit >= 2; }));
    return held;
  }

  caf::actor_system_config& configured() {
    actors::add_types(cfg);
    return cfg;
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{configured()};
  std::shared_ptr<step_log> log;
  std::unique_ptr<actors::local_node> node;
};

} // namespace

TEST_CASE("a cpu device with two slots runs two jobs side by side, each on "
          "a thread of its own",
          "[lanes]") {
  lanes_fixture fx{2};
  auto results =
    fx.run_all({lanes_fixture::job("a", 3), lanes_fixture::job("b", 3)});
  REQUIRE(results.size() == 2);
  for (auto& r : results) {
    INFO(runtime::describe(r.error));
    CHECK(r.state == job_state::succeeded);
  }
  std::lock_guard<std::mutex> guard{fx.log->mutex};
  // Each job's first step met a step of the other job.
  CHECK(fx.log->most_inside == 2);
  CHECK(fx.log->met == 2);
  CHECK(fx.log->threads.size() == 2);
}

TEST_CASE("a cpu device with one slot runs one job at a time", "[lanes]") {
  lanes_fixture fx{1, std::chrono::milliseconds{20}};
  auto results =
    fx.run_all({lanes_fixture::job("a", 2), lanes_fixture::job("b", 2)});
  REQUIRE(results.size() == 2);
  for (auto& r : results)
    CHECK(r.state == job_state::succeeded);
  std::lock_guard<std::mutex> guard{fx.log->mutex};
  CHECK(fx.log->most_inside == 1);
  CHECK(fx.log->met == 0);
}

TEST_CASE("out of memory in one lane fails only that attempt: the other "
          "lane's job is retried at no charge, and no successor runs beside "
          "the lane still in its step",
          "[lanes]") {
  lanes_fixture fx{2, std::chrono::milliseconds{300}};
  // "held" sits in its step 1 until released; "oom" runs out of memory in
  // its step 1 meanwhile.
  auto held = lanes_fixture::job("held", 3, {{"hold", "1"}});
  auto oom = lanes_fixture::job("oom", 3, {{"oom", "1"}});
  bool successor_beside = false;
  std::thread releaser{[&] {
    std::unique_lock<std::mutex> guard{fx.log->mutex};
    fx.log->changed.wait_for(guard, 20s, [&] { return fx.log->oom_thrown; });
    // A worker restarted at once would run both jobs again beside the
    // held step: a third step inside. Two seconds is ample for a restart
    // here (its backoff starts at 100 ms); nothing is expected to happen.
    successor_beside =
      fx.log->changed.wait_for(guard, 2s, [&] { return fx.log->inside >= 2; });
    fx.log->release = true;
    fx.log->changed.notify_all();
  }};
  auto results = fx.run_all({held, oom});
  releaser.join();
  REQUIRE(results.size() == 2);
  for (auto& r : results) {
    INFO(runtime::describe(r.error));
    CHECK(r.state == job_state::succeeded);
  }
  CHECK(results[1].attempts == 2);
  CHECK_FALSE(successor_beside);
  std::lock_guard<std::mutex> guard{fx.log->mutex};
  CHECK(fx.log->most_inside == 2);
}

TEST_CASE("a cancelled job's step still running keeps its lane: the next "
          "jobs wait for a free lane rather than run beside it",
          "[lanes]") {
  lanes_fixture fx{2, std::chrono::milliseconds{300}};
  caf::scoped_actor self{fx.sys};
  auto held = fx.submit_held();
  self
    ->request(fx.node->admission(), caf::infinite, runtime::cancel_atom::value,
              held)
    .receive([](const job_result&) {}, [](caf::error&) {});
  // Its slot is free for admission, its lane is not: of these two jobs one
  // runs on the other lane, the other waits.
  std::thread releaser{[&] {
    std::unique_lock<std::mutex> guard{fx.log->mutex};
    fx.log->changed.wait_for(guard, 20s,
                             [&] { return fx.log->next_visit >= 5; });
    fx.log->release = true;
    fx.log->changed.notify_all();
  }};
  auto results =
    fx.run_all({lanes_fixture::job("c", 2), lanes_fixture::job("d", 2)});
  releaser.join();
  for (auto& r : results) {
    INFO(runtime::describe(r.error));
    CHECK(r.state == job_state::succeeded);
  }
  self
    ->request(fx.node->admission(), caf::infinite, runtime::status_atom::value,
              held)
    .receive(
      [](const job_result& r) { CHECK(r.state == job_state::cancelled); },
      [](caf::error& err) { FAIL(runtime::describe(err)); });
  std::lock_guard<std::mutex> guard{fx.log->mutex};
  CHECK(fx.log->most_inside == 2);
}

TEST_CASE("a node stopped while a lane is in a step keeps the step's "
          "pipeline until the step returns",
          "[lanes]") {
  lanes_fixture fx{2, std::chrono::milliseconds{300}};
  fx.submit_held();
  std::thread stopper{[&] { fx.node->stop(); }};
  {
    // Stopping frees the worker's cache and the supervisor's models: a
    // pipeline freed under the step would be destroyed now. Nothing is
    // expected to happen within 2 s.
    std::unique_lock<std::mutex> guard{fx.log->mutex};
    fx.log->changed.wait_for(guard, 2s,
                             [&] { return fx.log->pipeline_destroyed; });
    fx.log->release = true;
    fx.log->changed.notify_all();
  }
  stopper.join();
  std::lock_guard<std::mutex> guard{fx.log->mutex};
  CHECK_FALSE(fx.log->step_outlived_pipeline);
}
