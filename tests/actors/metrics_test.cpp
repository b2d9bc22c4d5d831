/// What a node tells its node_observer, and admission's metrics snapshot,
/// after scripted runs: the counts, the sums of the times and the snapshot
/// must match the jobs run. Deterministic (CAF's test coordinator).

#include <map>
#include <mutex>
#include <tuple>

#include "support/cluster_fixture.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node_observer.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using runtime::job_result;
using runtime::job_state;
using test::cluster_fixture;
using test::sim_job;

namespace {

/// Every event, tallied (locked: the journal writer calls from its thread).
class recording_observer : public actors::node_observer {
public:
  void job_accepted(const std::string& model, int32_t priority) override {
    std::lock_guard<std::mutex> guard{mtx};
    accepted[{model, priority}] += 1;
  }

  void job_ended(const actors::job_end& end) override {
    std::lock_guard<std::mutex> guard{mtx};
    ended[{runtime::to_string(end.state), end.error}] += 1;
    queue_waits += 1;
    queue_wait_sum += end.queue_time;
    if (end.attempts > 0) {
      runs += 1;
      run_sum += end.run_time;
    }
  }

  void device_failed(const std::string& node, const std::string& device,
                     actors::device_fault fault) override {
    std::lock_guard<std::mutex> guard{mtx};
    faults[{node, device, actors::to_string(fault)}] += 1;
  }

  void node_joined(const std::string& node) override {
    std::lock_guard<std::mutex> guard{mtx};
    joins[node] += 1;
  }

  void node_lost(const std::string& node) override {
    std::lock_guard<std::mutex> guard{mtx};
    losses[node] += 1;
  }

  void attempt_phases(const std::string& model, runtime::device_kind kind,
                      const actors::job_phases& phases) override {
    std::lock_guard<std::mutex> guard{mtx};
    phase_reports[{model, runtime::to_string(kind)}] += 1;
    phase_steps_sum += phases.steps;
  }

  void journal_committed(caf::timespan duration, bool ok) override {
    std::lock_guard<std::mutex> guard{mtx};
    commits += 1;
    commit_failures += ok ? 0 : 1;
    static_cast<void>(duration);
  }

  std::mutex mtx;
  std::map<std::pair<std::string, int32_t>, int> accepted;
  std::map<std::pair<std::string, std::string>, int> ended;
  int queue_waits = 0;
  caf::timespan queue_wait_sum{0};
  int runs = 0;
  caf::timespan run_sum{0};
  std::map<std::tuple<std::string, std::string, std::string>, int> faults;
  std::map<std::string, int> joins;
  std::map<std::string, int> losses;
  int commits = 0;
  int commit_failures = 0;
  std::map<std::pair<std::string, std::string>, int> phase_reports;
  caf::timespan phase_steps_sum{0};
};

/// What the observer should have heard of `results`.
struct expected_tally {
  std::map<std::pair<std::string, std::string>, int> ended;
  int runs = 0;
  caf::timespan queue_wait_sum{0};
  caf::timespan run_sum{0};
};

std::string error_name(const job_result& r) {
  if (!r.error)
    return "none";
  return runtime::to_string(static_cast<errc>(r.error.code()));
}

expected_tally tally(const std::vector<job_result>& results) {
  expected_tally t;
  for (const auto& r : results) {
    t.ended[{runtime::to_string(r.state), error_name(r)}] += 1;
    t.queue_wait_sum += r.queue_time;
    if (r.attempts > 0) {
      t.runs += 1;
      t.run_sum += r.run_time;
    }
  }
  return t;
}

/// Admission's metrics snapshot, asked from an actor of the node.
actors::node_metrics metrics_now(test::deterministic_fixture& fx) {
  auto out = std::make_shared<std::optional<actors::node_metrics>>();
  auto admission = fx.node.admission;
  fx.sys.spawn([=](caf::event_based_actor* self) {
    self->request(admission, caf::infinite, actors::metrics_atom::value)
      .then([=](actors::node_metrics& x) { *out = std::move(x); },
            [](caf::error&) {});
  });
  fx.run();
  REQUIRE(out->has_value());
  return **out;
}

/// The count of `key` in `counts` (0 if absent; inserts nothing).
template <class Key>
int count_of(const std::map<Key, int>& counts, const Key& key) {
  auto i = counts.find(key);
  return i == counts.end() ? 0 : i->second;
}

/// What the supervisor of worker node `w` says of its devices, asked by an
/// actor of `asker`; or its refusal.
caf::expected<std::vector<actors::device_metrics>>
supervisor_metrics(test::cluster_fixture& fx, test::worker_system& w,
                   caf::actor_system& asker) {
  auto out = std::make_shared<
    std::optional<caf::expected<std::vector<actors::device_metrics>>>>();
  auto supervisor = w.supervisor;
  asker.spawn([=](caf::event_based_actor* self) {
    self->request(supervisor, caf::infinite, actors::metrics_atom::value)
      .then(
        [=](std::vector<actors::device_metrics>& x) { *out = std::move(x); },
        [=](caf::error& err) { *out = std::move(err); });
  });
  fx.run();
  REQUIRE(out->has_value());
  return std::move(**out);
}

uint64_t total_queued(const actors::node_metrics& m) {
  uint64_t n = 0;
  for (auto x : m.queued)
    n += x;
  return n;
}

runtime::job_spec faulty_job(const std::string& fault) {
  auto spec = sim_job(5, 100);
  spec.options["fault"] = fault;
  return spec;
}

} // namespace

TEST_CASE("the observer counts every accepted and ended job with its error "
          "and times, and the snapshot's queue returns to zero",
          "[metrics]") {
  auto events = std::make_shared<recording_observer>();
  auto settings = test::settings_with(1);
  settings.max_attempts = 2;
  test::deterministic_fixture fx;
  fx.start_node(settings, "sim:2", nullptr, events);
  std::vector<std::shared_ptr<test::reply<job_result>>> runs;
  // Three that succeed, one that runs out of memory once (retried: it
  // succeeds), one whose worker crashes every time (fails after two
  // attempts), at two priorities.
  runs.push_back(fx.execute(sim_job(5, 100)));
  runs.push_back(fx.execute(sim_job(5, 100, 0, 7)));
  runs.push_back(fx.execute(sim_job(3, 200, 0, 2)));
  runs.push_back(fx.execute(faulty_job("oom@2")));
  runs.push_back(fx.execute(faulty_job("crash-always@1")));
  // Queued behind them: one times out in the queue, one is cancelled.
  auto impatient = sim_job(5, 100);
  impatient.queue_timeout = 150ms;
  runs.push_back(fx.execute(impatient));
  auto cancelled = fx.submit_now(sim_job(5, 100, 0, 1));
  fx.run();
  auto queued_now = metrics_now(fx);
  CHECK(total_queued(queued_now) == 5);
  CHECK(queued_now.queued.size() == 10);
  // The first two (priorities 5 and 7) run.
  CHECK(queued_now.queued[1] == 1);
  CHECK(queued_now.queued[2] == 1);
  CHECK(queued_now.queued[5] == 3);
  CHECK(queued_now.running == 2);
  auto cancel = fx.cancel(cancelled);
  fx.run_to_quiescence();
  REQUIRE(cancel->value);
  CHECK(cancel->value->state == job_state::cancelled);
  std::vector<job_result> results{*cancel->value};
  for (auto& r : runs) {
    REQUIRE(r->value);
    results.push_back(*r->value);
  }
  auto expected = tally(results);
  CHECK(count_of(expected.ended, {"succeeded", "none"}) == 4);
  CHECK(count_of(expected.ended, {"timed_out", "queue_timeout"}) == 1);
  CHECK(count_of(expected.ended, {"cancelled", "cancelled"}) == 1);
  CHECK(expected.ended.size() == 4);
  std::lock_guard<std::mutex> guard{events->mtx};
  int accepted = 0;
  for (auto& [key, n] : events->accepted)
    accepted += n;
  CHECK(accepted == 7);
  CHECK(count_of(events->accepted, {"sim", 5}) == 4);
  CHECK(count_of(events->accepted, {"sim", 7}) == 1);
  CHECK(count_of(events->accepted, {"sim", 2}) == 1);
  CHECK(count_of(events->accepted, {"sim", 1}) == 1);
  CHECK(events->ended == expected.ended);
  CHECK(events->queue_waits == 7);
  CHECK(events->queue_wait_sum == expected.queue_wait_sum);
  CHECK(events->runs == expected.runs);
  CHECK(events->run_sum == expected.run_sum);
  CHECK(events->run_sum > 0s);
  int ooms = 0;
  int crashes = 0;
  for (auto& [key, n] : events->faults) {
    CHECK(std::get<0>(key) == "test-node");
    (std::get<2>(key) == "out_of_memory" ? ooms : crashes) += n;
  }
  CHECK(ooms == 1);
  CHECK(crashes == 2);
  // One report of phases per attempt that succeeded: the four jobs that
  // succeeded (the out-of-memory one on its second attempt), none for the
  // failed attempts.
  CHECK(events->phase_reports.size() == 1);
  CHECK(count_of(events->phase_reports, {"sim", "sim"}) == 4);
  CHECK(events->commits == 0);
  auto after = metrics_now(fx);
  CHECK(total_queued(after) == 0);
  CHECK(after.running == 0);
  CHECK(after.nodes_up == 1);
  CHECK(after.nodes_lost == 0);
  REQUIRE(after.devices.size() == 2);
  int32_t restarts = 0;
  for (auto& d : after.devices) {
    CHECK(d.status.node == "test-node");
    CHECK(d.status.state == "idle");
    CHECK(d.status.slots == 1);
    CHECK(d.status.slots_in_use == 0);
    restarts += d.status.restarts;
  }
  CHECK(restarts == 3);
}

TEST_CASE("the observer hears the phases of a gang's attempt once, when "
          "every rank succeeded",
          "[metrics][gang]") {
  auto events = std::make_shared<recording_observer>();
  test::deterministic_fixture fx;
  fx.start_node(test::settings_with(1), "sim:4", nullptr, events);
  auto gang = sim_job(3, 100);
  gang.ranks = 3;
  auto run = fx.execute(gang);
  auto single = fx.execute(sim_job(2, 100));
  fx.run_to_quiescence();
  REQUIRE(run->value);
  CHECK(run->value->state == job_state::succeeded);
  REQUIRE(single->value);
  CHECK(single->value->state == job_state::succeeded);
  std::lock_guard<std::mutex> guard{events->mtx};
  CHECK(count_of(events->phase_reports, {"sim", "sim"}) == 2);
}

TEST_CASE("the observer hears of worker nodes that join and are lost, and "
          "the snapshot shows the lost node's device",
          "[metrics][cluster]") {
  auto events = std::make_shared<recording_observer>();
  auto settings = test::cluster_settings_with(1);
  settings.lease_grace = 0s;
  cluster_fixture fx;
  fx.head.start_node(settings, "none", nullptr, events);
  auto& w1 = fx.add_worker("w1", "sim:1");
  fx.add_worker("w2", "sim:1");
  auto a = fx.head.execute(sim_job(10, 100));
  auto b = fx.head.execute(sim_job(10, 100));
  fx.advance(300ms);
  auto own = supervisor_metrics(fx, w1, w1.sys);
  REQUIRE(own);
  REQUIRE(own->size() == 1);
  CHECK((*own)[0].status.node == "w1");
  CHECK((*own)[0].status.device == "sim:0");
  CHECK((*own)[0].status.state == "busy");
  CHECK((*own)[0].status.slots_in_use == 1);
  CHECK((*own)[0].status.slots == 1);
  CHECK_FALSE(supervisor_metrics(fx, w1, fx.head.sys));
  fx.cut(w1);
  auto during = metrics_now(fx.head);
  CHECK(during.nodes_up == 2);
  CHECK(during.nodes_lost == 1);
  CHECK(total_queued(during) + during.running == 2);
  std::map<std::string, std::string> states;
  for (auto& d : during.devices)
    states[d.status.node] = d.status.state;
  CHECK(states["w1"] == "lost");
  CHECK(states["w2"] == "busy");
  fx.run_to_quiescence();
  for (auto& r : {a, b}) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
  }
  auto after = metrics_now(fx.head);
  CHECK(total_queued(after) == 0);
  CHECK(after.running == 0);
  std::lock_guard<std::mutex> guard{events->mtx};
  CHECK(count_of(events->joins, std::string{"w1"}) == 1);
  CHECK(count_of(events->joins, std::string{"w2"}) == 1);
  CHECK(count_of(events->losses, std::string{"w1"}) == 1);
  CHECK(count_of(events->losses, std::string{"w2"}) == 0);
  CHECK(events->ended.size() == 1);
  CHECK(count_of(events->ended, {"succeeded", "none"}) == 2);
  CHECK(events->runs == 2);
}

TEST_CASE("metrics are refused to actors of other nodes",
          "[metrics][cluster]") {
  cluster_fixture fx;
  fx.head.start_node(test::cluster_settings_with(1), "sim:1");
  auto& w = fx.add_worker("w1", "sim:1");
  auto refused = std::make_shared<caf::error>();
  auto admission = fx.head.node.admission;
  w.sys.spawn([=](caf::event_based_actor* self) {
    self->request(admission, caf::infinite, actors::metrics_atom::value)
      .then([](actors::node_metrics&) {},
            [=](caf::error& err) { *refused = std::move(err); });
  });
  fx.run();
  CHECK(runtime::is(*refused, errc::unauthorized));
}
