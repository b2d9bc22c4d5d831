/// Deterministic tests of a head and worker nodes: each worker node is an
/// actor system of its own (its own CAF node id) on a test coordinator of
/// its own, in this process; the fixture runs every system's messages and
/// moves their clocks together. A node is "lost" the way CAF reports it: its
/// supervisor's proxy on the head goes down with remote_link_unreachable.

#include <map>

#include "support/cluster_fixture.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using test::cluster_fixture;
using test::connect_script;
using test::sim_job;
using test::worker_system;
using time_point = caf::actor_clock::time_point;

namespace {

/// test::cluster_settings_with, with a lease grace of zero: a lost node's
/// attempts are queued again at once (lease_test.cpp covers the grace).
runtime::node_settings settings_with(int32_t concurrency) {
  auto settings = test::cluster_settings_with(concurrency);
  settings.lease_grace = 0s;
  return settings;
}

} // namespace

TEST_CASE("worker nodes join the head and their devices run its jobs",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "none");
  auto& w1 = fx.add_worker("w1", "sim:2");
  auto& w2 = fx.add_worker("w2", "sim:2");
  REQUIRE(w1.sys.node() != fx.head.sys.node());
  CHECK(w1.joins == 1);
  CHECK(w2.joins == 1);
  CHECK(fx.devices_of("w1").size() == 2);
  CHECK(fx.devices_of("w2").size() == 2);
  std::vector<std::shared_ptr<test::reply<runtime::job_result>>> replies;
  for (int i = 0; i < 8; ++i)
    replies.push_back(fx.head.execute(sim_job(10, 100)));
  fx.run_to_quiescence();
  std::map<std::string, int> per_node;
  for (auto& r : replies) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
    CHECK(r->value->attempts == 1);
    per_node[r->value->node] += 1;
  }
  CHECK(per_node["w1"] == 4);
  CHECK(per_node["w2"] == 4);
}

TEST_CASE("a lost node's running jobs run again elsewhere with the attempt "
          "counted, and its late reports are ignored",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "none");
  auto& w1 = fx.add_worker("w1", "sim:1");
  fx.add_worker("w2", "sim:1");
  // Two jobs of 10 x 100 ms: one per node.
  auto a = fx.head.execute(sim_job(10, 100));
  auto b = fx.head.execute(sim_job(10, 100));
  fx.advance(300ms);
  auto on_w1 =
    fx.head.status_now(job_id{1}).node == "w1" ? job_id{1} : job_id{2};
  auto cut_at = fx.head.now();
  fx.cut(w1);
  auto lost = fx.devices_of("w1");
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].state == "lost");
  CHECK(lost[0].last_error.find("node lost") != std::string::npos);
  auto requeued = fx.head.status_now(on_w1);
  CHECK(requeued.state == job_state::queued);
  // w1's worker goes on and reports progress and success: all ignored.
  fx.run_to_quiescence();
  for (auto& r : {a, b}) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
    CHECK(r->value->node == "w2");
  }
  auto again = fx.head.status_now(on_w1);
  CHECK(again.attempts == 2);
  CHECK(again.node == "w2");
  // It ran after the other job, on the one device left.
  CHECK(again.started_at
        > fx.head.status_now(on_w1 == job_id{1} ? job_id{2} : job_id{1})
            .started_at);
  (void)cut_at;
}

TEST_CASE("a job whose node is lost under every attempt fails after "
          "max-attempts instead of looping",
          "[cluster]") {
  cluster_fixture fx;
  auto settings = settings_with(1);
  settings.max_attempts = 2;
  fx.head.start_node(settings, "none");
  auto& w1 = fx.add_worker("w1", "sim:1");
  auto r = fx.head.execute(sim_job(10, 100));
  fx.advance(200ms);
  fx.cut(w1);
  CHECK(fx.head.status_now(job_id{1}).state == job_state::queued);
  auto& w2 = fx.add_worker("w2", "sim:1");
  fx.advance(200ms);
  CHECK(fx.head.status_now(job_id{1}).node == "w2");
  fx.cut(w2);
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::failed);
  CHECK(r->value->attempts == 2);
  CHECK(runtime::is(r->value->error, errc::worker_lost));
  CHECK(runtime::describe(r->value->error).find("node w2 was lost")
        != std::string::npos);
}

TEST_CASE("a node stopped on purpose under every attempt costs the job no "
          "attempt",
          "[cluster]") {
  cluster_fixture fx;
  auto settings = settings_with(1);
  settings.max_attempts = 2;
  fx.head.start_node(settings, "none");
  auto r = fx.head.execute(sim_job(10, 100));
  for (const char* name : {"w1", "w2", "w3"}) {
    auto& w = fx.add_worker(name, "sim:1");
    fx.advance(200ms);
    REQUIRE(fx.head.status_now(job_id{1}).node == name);
    fx.stop(w);
    CHECK(fx.head.status_now(job_id{1}).state == job_state::queued);
  }
  fx.add_worker("w4", "sim:1");
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->node == "w4");
}

TEST_CASE("a lost node is shown until lost-node-ttl, then forgotten, a node "
          "under its name then joins as new",
          "[cluster]") {
  cluster_fixture fx;
  auto settings = settings_with(1);
  settings.lost_node_ttl = 1min;
  fx.head.start_node(settings, "sim:1");
  auto& w1 = fx.add_worker("w1", "sim:2");
  fx.cut(w1);
  CHECK(fx.devices_of("w1").size() == 2);
  fx.advance(59s);
  CHECK(fx.devices_of("w1").size() == 2);
  fx.advance(2s);
  CHECK(fx.devices_of("w1").empty());
  auto& again = fx.add_worker("w1", "sim:1");
  CHECK(again.joins == 1);
  auto devices = fx.devices_of("w1");
  REQUIRE(devices.size() == 1);
  CHECK(devices[0].state == "idle");
  // The head's own device is untouched throughout.
  CHECK(fx.devices_of("test-node").size() == 1);
}

TEST_CASE("a node under a name that is up is refused, under a lost node's "
          "name it replaces the lost one at once",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "sim:1");
  auto& w1 = fx.add_worker("w1", "sim:1");
  auto& twin = fx.add_worker("w1", "sim:4");
  CHECK(twin.joins == 0);
  CHECK(runtime::is(twin.refusal, errc::invalid_request));
  CHECK(runtime::describe(twin.refusal).find("'w1' is already taken")
        != std::string::npos);
  auto& head_name = fx.add_worker("test-node", "sim:1");
  CHECK(runtime::describe(head_name.refusal).find("the head itself")
        != std::string::npos);
  CHECK(fx.devices_of("w1").size() == 1);
  fx.cut(w1);
  auto& successor = fx.add_worker("w1", "sim:3");
  CHECK(successor.joins == 1);
  auto devices = fx.devices_of("w1");
  CHECK(devices.size() == 3);
  for (auto& device : devices)
    CHECK(device.state == "idle");
}

TEST_CASE("actors of a node that never registered cannot attach devices, "
          "detach them, report on jobs or fake a node's loss",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "none");
  fx.add_worker("w1", "sim:1");
  auto r = fx.head.execute(sim_job(10, 100));
  fx.advance(100ms);
  auto before = fx.head.status_now(job_id{1});
  REQUIRE(before.state == job_state::running);
  // An outsider: its own node, never joined.
  worker_system outsider;
  outsider.name = "outsider";
  auto admission = fx.head.node.admission;
  auto lease = uint64_t{1};
  auto w1_supervisor = fx.workers.front()->supervisor;
  outsider.sys.spawn([=](caf::event_based_actor* self) {
    // A forged loss of w1: a down message not sent by its supervisor.
    self->send(caf::actor_cast<caf::actor>(admission),
               caf::down_msg{w1_supervisor.address(),
                             caf::exit_reason::remote_link_unreachable});
    runtime::device_info info;
    info.index = 0;
    info.memory_bytes = 1;
    self->send(admission, actors::attach_atom::value, info,
               actors::device_worker_actor{}, int32_t{0},
               std::vector<std::string>{}, uint64_t{0});
    self->send(admission, actors::done_atom::value, job_id{1}, lease,
               actors::finished_job{"/etc/passwd", 0, {}});
    self->send(admission, actors::failed_atom::value, job_id{1}, lease,
               runtime::make_error(errc::internal, "forged"), uint64_t{0});
    self->request(admission, caf::infinite, actors::detach_atom::value,
                  int32_t{0}, runtime::make_error(errc::internal, "forged"));
  });
  outsider.sched.run();
  fx.run();
  auto after = fx.head.status_now(job_id{1});
  CHECK(after.state == job_state::running);
  CHECK(after.attempts == 1);
  auto w1 = fx.devices_of("w1");
  REQUIRE(w1.size() == 1);
  CHECK(w1[0].state == "busy");
  CHECK(fx.head.nodes_now().size() == 1);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->output != "/etc/passwd");
}

TEST_CASE("a worker node keeps trying while nothing listens and gives up "
          "after three connections in a row closed during the handshake, "
          "saying why",
          "[cluster]") {
  using caf::sec;
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "sim:1");
  auto cut = caf::make_error(sec::disconnect_during_handshake);
  auto refused = caf::make_error(sec::cannot_connect_to_node);
  auto silent = caf::make_error(sec::connection_timeout);
  // Refused connections start the count again; silence leaves it.
  auto script = std::make_shared<std::deque<caf::error>>(std::deque<caf::error>{
    refused, refused, refused, refused, refused, refused, refused, refused, cut,
    cut, refused, cut, silent, cut, cut});
  auto& w = fx.add_worker("w1", "sim:1", settings_with(1), nullptr, {}, script);
  fx.run_to_quiescence();
  CHECK(script->empty());
  CHECK(w.joins == 0);
  CHECK(runtime::is(w.refusal, errc::unauthorized));
  auto why = runtime::describe(w.refusal);
  CHECK(why.find("the connection to the head at head:1 was closed during "
                 "the handshake 3 times in a row")
        != std::string::npos);
  CHECK(why.find("this node runs without TLS") != std::string::npos);
  CHECK(fx.devices_of("w1").empty());
}

TEST_CASE("a worker node that joined before gives up after three "
          "connections in a row closed during the handshake too, and joins "
          "again after two",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "sim:1");
  auto cut = caf::make_error(caf::sec::disconnect_during_handshake);
  auto script = std::make_shared<std::deque<caf::error>>();
  auto& w = fx.add_worker("w1", "sim:1", settings_with(1), nullptr, {}, script);
  REQUIRE(w.joins == 1);
  *script = {cut, cut};
  fx.lose_head(w);
  fx.run_to_quiescence(1min);
  CHECK(script->empty());
  CHECK(w.joins == 2);
  CHECK_FALSE(w.refusal);
  CHECK(fx.devices_of("w1").size() == 1);
  *script = {cut, cut, cut};
  fx.lose_head(w);
  fx.run_to_quiescence(1min);
  CHECK(script->empty());
  CHECK(w.joins == 2);
  CHECK(runtime::is(w.refusal, errc::unauthorized));
}

namespace {

/// A job of the test model "toy" (a sim model under another name).
runtime::job_spec toy_job(int32_t steps, int step_ms) {
  auto spec = sim_job(steps, step_ms);
  spec.model = "toy";
  return spec;
}

} // namespace

TEST_CASE("jobs of a model one node serves run only there, jobs of the "
          "models every node serves run anywhere, and the head shows what "
          "each node serves",
          "[cluster]") {
  cluster_fixture fx;
  auto toy = test::catalog_with("toy");
  fx.head.start_node(settings_with(1), "none", toy);
  fx.add_worker("w1", "sim:1");
  fx.add_worker("w2", "sim:1", settings_with(1), toy);
  auto w1 = fx.devices_of("w1");
  auto w2 = fx.devices_of("w2");
  REQUIRE(w1.size() == 1);
  REQUIRE(w2.size() == 1);
  auto builtin = gpu::model_catalog::builtin()->served();
  std::sort(builtin.begin(), builtin.end());
  CHECK(w1[0].served_models == builtin);
  auto with_toy = builtin;
  with_toy.push_back("toy");
  CHECK(w2[0].served_models == with_toy);
  std::vector<std::shared_ptr<test::reply<runtime::job_result>>> toys, sims;
  for (int i = 0; i < 3; ++i)
    toys.push_back(fx.head.execute(toy_job(10, 100)));
  for (int i = 0; i < 3; ++i)
    sims.push_back(fx.head.execute(sim_job(10, 100)));
  fx.run_to_quiescence();
  for (auto& r : toys) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
    CHECK(r->value->node == "w2");
  }
  // The toy jobs queued for w2 held up none of the sim jobs behind them:
  // w1 ran those meanwhile.
  for (auto& r : sims) {
    REQUIRE(r->value);
    CHECK(r->value->state == job_state::succeeded);
    CHECK(r->value->node == "w1");
    CHECK(r->value->queue_time < 3s);
  }
}

TEST_CASE("a job whose only node is lost waits queued without going to "
          "another node, and runs on that node once it registers again",
          "[cluster]") {
  cluster_fixture fx;
  auto toy = test::catalog_with("toy");
  fx.head.start_node(settings_with(1), "none", toy);
  fx.add_worker("w1", "sim:1");
  auto& w2 = fx.add_worker("w2", "sim:1", settings_with(1), toy);
  auto r = fx.head.execute(toy_job(10, 100));
  fx.advance(300ms);
  REQUIRE(fx.head.status_now(job_id{1}).node == "w2");
  fx.cut(w2);
  // A minute without a node that serves toy: the job waits, and sim jobs
  // submitted meanwhile run on w1 past it.
  auto sim = fx.head.execute(sim_job(10, 100));
  fx.advance(1min);
  auto waiting = fx.head.status_now(job_id{1});
  CHECK(waiting.state == job_state::queued);
  CHECK(waiting.attempts == 1);
  REQUIRE(sim->value);
  CHECK(sim->value->state == job_state::succeeded);
  CHECK(sim->value->node == "w1");
  CHECK_FALSE(r->arrived());
  fx.add_worker("w2", "sim:1", settings_with(1), toy);
  fx.run_to_quiescence();
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::succeeded);
  CHECK(r->value->node == "w2");
  CHECK(r->value->attempts == 2);
}

TEST_CASE("a job of a model no node serves is accepted, holds up no other "
          "job and times out in the queue saying that no registered node "
          "serves it",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "none", test::catalog_with("toy"));
  fx.add_worker("w1", "sim:1");
  auto spec = toy_job(10, 100);
  spec.queue_timeout = 30s;
  auto r = fx.head.execute(spec);
  auto sim = fx.head.execute(sim_job(10, 100));
  fx.advance(29s);
  CHECK(fx.head.status_now(job_id{1}).state == job_state::queued);
  REQUIRE(sim->value);
  CHECK(sim->value->state == job_state::succeeded);
  fx.advance(2s);
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::timed_out);
  CHECK(runtime::is(r->value->error, errc::queue_timeout));
  CHECK_THAT(runtime::describe(r->value->error),
             Catch::Contains("waited 30s in the queue: no registered node "
                             "serves model 'toy'"));
  // A model the head itself does not know is refused as before.
  auto unknown = toy_job(1, 1);
  unknown.model = "nobody-knows";
  auto refused = fx.head.submit(unknown);
  fx.run();
  CHECK(runtime::is(refused->error, errc::unknown_model));
}

TEST_CASE("a queued job too large for every device of the node that comes "
          "to serve its model fails when that node joins",
          "[cluster]") {
  cluster_fixture fx;
  auto toy = test::catalog_with("toy");
  fx.head.start_node(settings_with(1), "none", toy);
  auto spec = toy_job(10, 100);
  spec.options["mem_mb"] = "2048";
  auto r = fx.head.execute(spec);
  fx.run();
  CHECK(fx.head.status_now(job_id{1}).state == job_state::queued);
  fx.add_worker("w2", "sim:1:1GiB", settings_with(1), toy);
  REQUIRE(r->value);
  CHECK(r->value->state == job_state::failed);
  CHECK(runtime::is(r->value->error, errc::too_large));
  CHECK_THAT(runtime::describe(r->value->error),
             Catch::Contains("the largest device that can run model 'toy' "
                             "has 1GiB"));
}

TEST_CASE("a node that registers a malformed model pattern is refused, "
          "naming it",
          "[cluster]") {
  cluster_fixture fx;
  fx.head.start_node(settings_with(1), "none");
  auto& w = fx.add_worker("w1", "sim:1", settings_with(1), nullptr,
                          std::vector<std::string>{"sim", "s*m"});
  CHECK(w.joins == 0);
  CHECK(runtime::is(w.refusal, errc::invalid_request));
  CHECK_THAT(runtime::describe(w.refusal), Catch::Contains("models: 's*m'"));
  CHECK(fx.devices_of("w1").empty());
}
