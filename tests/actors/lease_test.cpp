/// Deterministic tests of attempts held by worker nodes that the head
/// cannot reach: the head keeps them for the node for its lease grace, the
/// node runs them on for that grace less its node timeout, and when the
/// node rejoins the head takes over those it still wants (see
/// node_settings::lease_grace and lease_book).

#include "support/cluster_fixture.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using test::cluster_fixture;
using test::sim_job;
using test::worker_system;

namespace {

runtime::node_settings settings_with_grace(caf::timespan grace) {
  auto settings = test::cluster_settings_with(1);
  settings.lease_grace = grace;
  return settings;
}

/// A head with the given lease grace and worker node "w1" of one sim
/// device, whose connects after a loss of the head can be made to fail.
struct lease_fixture {
  cluster_fixture fx;
  test::connect_script script = std::make_shared<std::deque<caf::error>>();
  worker_system* w1 = nullptr;

  explicit lease_fixture(caf::timespan grace, int32_t max_attempts = 2) {
    auto settings = settings_with_grace(grace);
    settings.max_attempts = max_attempts;
    fx.head.start_node(settings, "none");
    w1 = &fx.add_worker("w1", "sim:1", test::cluster_settings_with(1), nullptr,
                        {}, script);
  }

  /// w1 loses the head, and its next `failed_connects` connects fail
  /// (nothing listens): with the default backoff it is back about
  /// 0.1 s x (2^n - 1), capped at 5 s a try, later.
  void lose_head(int failed_connects) {
    for (int i = 0; i < failed_connects; ++i)
      script->push_back(caf::sec::cannot_connect_to_node);
    fx.lose_head(*w1);
  }
};

/// What `w`'s supervisor says its devices hold.
std::vector<actors::held_lease> held_by(cluster_fixture& fx, worker_system& w) {
  auto result = std::make_shared<std::vector<actors::held_lease>>();
  auto answered = std::make_shared<bool>(false);
  auto supervisor = w.supervisor;
  w.sys.spawn([=](caf::event_based_actor* self) {
    self->request(supervisor, caf::infinite, actors::held_atom::value)
      .then([=](std::vector<actors::held_lease>& leases) {
        *result = std::move(leases);
        *answered = true;
      });
  });
  fx.run();
  REQUIRE(*answered);
  return *result;
}

} // namespace

TEST_CASE("a worker node that loses the head runs its job on, and the head "
          "takes it over when the node rejoins within the lease grace",
          "[cluster][lease]") {
  lease_fixture lf{30s};
  auto& fx = lf.fx;
  auto& w1 = *lf.w1;
  // 100 steps of 100 ms: 10 s.
  auto r = fx.head.execute(sim_job(100, 100));
  fx.advance(1s);
  REQUIRE(fx.head.status_now(job_id{1}).node == "w1");
  lf.lose_head(5);
  CHECK(fx.devices_of("w1").at(0).state == "lost");
  auto away = fx.head.status_now(job_id{1});
  CHECK(away.state == job_state::running);
  CHECK(away.attempts == 1);
  // Five failed connects: back after about 3.1 s, while the job still runs.
  fx.advance(2s);
  REQUIRE(held_by(fx, w1).size() == 1);
  CHECK(w1.joins == 1);
  fx.advance(2s);
  CHECK(w1.joins == 2);
  auto back = fx.devices_of("w1");
  REQUIRE(back.size() == 1);
  CHECK(back[0].state == "busy");
  CHECK(back[0].running == std::vector<job_id>{job_id{1}});
  CHECK(fx.head.status_now(job_id{1}).step >= 40);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 1);
  CHECK(r->value->node == "w1");
  // It ran once, from its start to its end: 10 s.
  CHECK(r->value->run_time == 10s);
}

TEST_CASE("an attempt that ends while the head is away counts once its node "
          "is back, and its waiter hears of it once",
          "[cluster][lease]") {
  lease_fixture lf{30s};
  auto& fx = lf.fx;
  auto& w1 = *lf.w1;
  auto r = fx.head.execute(sim_job(10, 100));
  auto events = fx.head.subscribe(job_id{1});
  fx.advance(300ms);
  lf.lose_head(6);
  // The job ends on w1 after 1 s; its report does not count while the
  // head holds the attempt for a node it cannot reach.
  fx.advance(2s);
  CHECK_FALSE(r->value);
  CHECK(fx.head.status_now(job_id{1}).state == job_state::running);
  REQUIRE(held_by(fx, w1).size() == 1);
  fx.run_to_quiescence();
  CHECK(w1.joins == 2);
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 1);
  CHECK(r->value->node == "w1");
  size_t ends = 0;
  for (const auto& event : events->events)
    ends += runtime::is_terminal(event.state) ? 1 : 0;
  CHECK(ends == 1);
  // The head heard the outcome: the node forgets it when it next joins.
  fx.lose_head(w1);
  fx.run_to_quiescence();
  CHECK(w1.joins == 3);
  CHECK(held_by(fx, w1).empty());
}

TEST_CASE("a job queued behind an attempt that ended while the head was away "
          "runs once the node is back, charged nothing",
          "[cluster][lease]") {
  lease_fixture lf{30s};
  auto& fx = lf.fx;
  auto a = fx.head.execute(sim_job(10, 100));
  auto b = fx.head.execute(sim_job(10, 100));
  fx.advance(300ms);
  lf.lose_head(6);
  fx.run_to_quiescence();
  for (auto& r : {a, b}) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
    CHECK(r->value->attempts == 1);
  }
}

TEST_CASE("past the lease grace the head runs the job again elsewhere, and "
          "the node that could not come back has stopped it by then",
          "[cluster][lease]") {
  lease_fixture lf{10s};
  auto& fx = lf.fx;
  auto& w1 = *lf.w1;
  // 200 steps of 100 ms: 20 s.
  auto r = fx.head.execute(sim_job(200, 100));
  fx.advance(1s);
  REQUIRE(fx.head.status_now(job_id{1}).node == "w1");
  fx.add_worker("w2", "sim:1");
  lf.lose_head(20);
  // The node stops the attempt at the grace less its node timeout (5 s);
  // the head still holds it for the node until the grace (10 s) passes.
  fx.advance(9s);
  CHECK(held_by(fx, w1).empty());
  auto held = fx.head.status_now(job_id{1});
  CHECK(held.state == job_state::running);
  CHECK(held.node == "w1");
  fx.advance(1s + 1ms);
  auto again = fx.head.status_now(job_id{1});
  CHECK(again.attempts == 2);
  CHECK(again.node == "w2");
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  CHECK(r->value->node == "w2");
}

TEST_CASE("a node frozen past its lease (SIGSTOP) does not finish its "
          "attempt when it thaws: the job ran again elsewhere and succeeds "
          "once",
          "[cluster][lease]") {
  lease_fixture lf{10s};
  auto& fx = lf.fx;
  auto& w1 = *lf.w1;
  // 20 steps of 100 ms: 2 s.
  auto r = fx.head.execute(sim_job(20, 100));
  fx.advance(1500ms);
  REQUIRE(fx.head.status_now(job_id{1}).node == "w1");
  fx.add_worker("w2", "sim:1");
  w1.frozen = true;
  // The head notices the silence and keeps the attempt for the grace,
  // then runs it again on w2.
  fx.cut(w1);
  fx.advance(11s);
  auto again = fx.head.status_now(job_id{1});
  CHECK(again.attempts == 2);
  CHECK(again.node == "w2");
  // Thawed, w1 would finish the last steps at once: its lease ran out (it
  // last heard from the head 11 s ago), so it stops the attempt instead.
  fx.thaw(w1);
  fx.advance(50ms);
  CHECK(held_by(fx, w1).empty());
  // It finds its connection closed and joins again, holding nothing.
  fx.lose_head(w1);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
  CHECK(r->value->node == "w2");
  CHECK(w1.joins == 2);
}

TEST_CASE("an attempt cancelled while its node is away is stopped when the "
          "node comes back",
          "[cluster][lease]") {
  lease_fixture lf{30s};
  auto& fx = lf.fx;
  auto& w1 = *lf.w1;
  auto r = fx.head.execute(sim_job(100, 100));
  fx.advance(1s);
  lf.lose_head(4);
  auto cancelled = fx.head.cancel(job_id{1});
  fx.run();
  REQUIRE(cancelled->value);
  CHECK(cancelled->value->state == job_state::cancelled);
  REQUIRE(held_by(fx, w1).size() == 1);
  fx.advance(3s);
  CHECK(w1.joins == 2);
  CHECK(held_by(fx, w1).empty());
  CHECK(fx.devices_of("w1").at(0).running.empty());
  fx.run_to_quiescence();
  CHECK(fx.head.status_now(job_id{1}).state == job_state::cancelled);
  // A new job runs on the device the stopped attempt held.
  auto next = fx.head.execute(sim_job(10, 100));
  fx.run_to_quiescence();
  REQUIRE(next->value);
  CHECK(next->value->state == job_state::succeeded);
  CHECK(next->value->node == "w1");
}

TEST_CASE("a node that comes back without the attempts it held (it "
          "restarted) has them queued again at once, charged",
          "[cluster][lease]") {
  lease_fixture lf{30s, 3};
  auto& fx = lf.fx;
  auto& w1 = *lf.w1;
  auto r = fx.head.execute(sim_job(100, 100));
  fx.advance(1s);
  fx.cut(w1);
  CHECK(fx.head.status_now(job_id{1}).state == job_state::running);
  // A new process under the same name: it holds nothing.
  fx.add_worker("w1", "sim:1");
  auto again = fx.head.status_now(job_id{1});
  CHECK(again.attempts == 2);
  CHECK(again.state == job_state::running);
  // The first process's late reports are ignored.
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->attempts == 2);
}
