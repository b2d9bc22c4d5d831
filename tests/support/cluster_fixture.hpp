#pragma once

/// @file
/// A head and worker nodes for deterministic tests: each worker node is an
/// actor system of its own (its own CAF node id) on a test coordinator of
/// its own, in this process; the fixture runs every system's messages and
/// moves their clocks together. A node is "lost" the way CAF reports it: its
/// supervisor's proxy on the head goes down with remote_link_unreachable.

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
#include "support/models.hpp"
#include "vidnode/actors/cluster.hpp"
#include "vidnode/actors/node_supervisor.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::test {

using namespace std::chrono_literals;

using time_point = caf::actor_clock::time_point;

/// test::settings_with for a head that worker nodes may join
/// (--cluster-listen).
inline runtime::node_settings cluster_settings_with(int32_t concurrency) {
  auto settings = test::settings_with(concurrency);
  settings.accepts_worker_nodes = true;
  return settings;
}

/// A deterministic config with CAF's middleman on its testing backend, for
/// the CAF node id it gives the system (nothing goes over a network).
struct worker_config : test::deterministic_config {
  worker_config() {
    load<caf::io::middleman>();
    set("middleman.network-backend", caf::atom("testing"));
    set("middleman.manual-multiplexing", true);
    set("middleman.workers", size_t{0});
  }
};

/// One worker node: its own actor system, supervisor and cluster member.
struct worker_system {
  worker_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched{
    dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())};
  std::string name;
  actors::node_supervisor_actor supervisor;
  caf::actor member;
  caf::actor connector;
  int joins = 0;
  caf::error refusal;
  /// A frozen node runs nothing and its clock stands still (SIGSTOP), until
  /// it thaws: then what fell due meanwhile runs at once.
  bool frozen = false;

  /// Ends the node's actors: the supervisor ends its workers first.
  ~worker_system() {
    if (supervisor) {
      auto sup = supervisor;
      sys.spawn([sup](caf::event_based_actor* self) {
        self->request(sup, caf::infinite, actors::shutdown_atom::value)
          .then([=](caf::ok_atom) {
            self->send_exit(sup, caf::exit_reason::user_shutdown);
          });
      });
    }
    for (auto& handle : {caf::actor_cast<caf::actor>(member), connector})
      if (handle)
        caf::anon_send_exit(handle, caf::exit_reason::kill);
    while (sched.run() > 0 || sched.trigger_timeout())
      ;
  }
};

/// How the connects a test scripts end, in turn: each takes the next
/// error; once none is left, they succeed.
using connect_script = std::shared_ptr<std::deque<caf::error>>;

/// Answers the member's connect as the middleman would: with the head's
/// registry, or with the next error of `script`.
inline caf::behavior fake_connector(caf::event_based_actor*, caf::node_id head,
                                    caf::strong_actor_ptr registry,
                                    std::set<std::string> interface,
                                    connect_script script) {
  return {
    [=](caf::connect_atom, const std::string&,
        uint16_t) -> caf::result<caf::node_id, caf::strong_actor_ptr,
                                 std::set<std::string>> {
      if (!script->empty()) {
        auto err = std::move(script->front());
        script->pop_front();
        return err;
      }
      return {head, registry, interface};
    },
  };
}

struct cluster_fixture {
  test::deterministic_fixture head;
  std::vector<std::unique_ptr<worker_system>> workers;

  /// Starts a worker node `name` with `devices` that joins the head,
  /// serving the models of `catalog` (null: the built-in models) and
  /// registering `registered` as what it serves (default: its catalog's);
  /// its connection attempts play back `script` (see fake_connector).
  worker_system& add_worker(
    const std::string& name, const std::string& devices,
    runtime::node_settings settings = cluster_settings_with(1),
    std::shared_ptr<const gpu::model_catalog> catalog = nullptr,
    std::optional<std::vector<std::string>> registered = {},
    connect_script script = std::make_shared<std::deque<caf::error>>()) {
    auto& w = *workers.emplace_back(std::make_unique<worker_system>());
    w.name = name;
    settings.node_name = name;
    std::vector<runtime::device_info> infos;
    std::string error;
    REQUIRE(gpu::parse_devices(devices, infos, error));
    if (!catalog)
      catalog = gpu::model_catalog::builtin();
    auto models = registered ? *registered : catalog->served();
    w.supervisor = actors::spawn_node_supervisor(
      w.sys, settings, infos, actors::admission_control_actor{}, catalog);
    w.connector =
      w.sys.spawn(fake_connector, head.sys.node(),
                  caf::actor_cast<caf::strong_actor_ptr>(head.node.registry),
                  head.sys.message_types<actors::cluster_registry_actor>(),
                  std::move(script));
    actors::join_options options;
    options.host = "head";
    options.port = 1;
    options.connector = w.connector;
    auto* out = &w;
    options.on_joined = [out](const std::string&) { ++out->joins; };
    options.on_refused = [out](const caf::error& why) { out->refusal = why; };
    w.member = actors::spawn_cluster_member(w.sys, name, infos, models,
                                            w.supervisor, options);
    run();
    return w;
  }

  /// Runs every system's messages that are due now.
  void run() {
    for (;;) {
      auto ran = head.sched.run();
      for (auto& w : workers)
        if (!w->frozen)
          ran += w->sched.run();
      if (ran == 0)
        return;
    }
  }

  time_point next_timeout() {
    auto next = time_point::max();
    auto of = [&](caf::scheduler::test_coordinator& s) {
      const auto& schedule = s.clock().schedule();
      if (!schedule.empty())
        next = std::min(next, schedule.begin()->first);
    };
    of(head.sched);
    for (auto& w : workers)
      if (!w->frozen)
        of(w->sched);
    return next;
  }

  void set_time(time_point t) {
    auto move = [&](caf::scheduler::test_coordinator& s) {
      const auto& schedule = s.clock().schedule();
      if (!schedule.empty() && schedule.begin()->first <= t)
        s.trigger_timeout();
      if (s.clock().current_time < t)
        s.clock().current_time = t;
    };
    move(head.sched);
    for (auto& w : workers)
      if (!w->frozen)
        move(w->sched);
  }

  /// `w` thaws (see worker_system::frozen): its clock jumps to now; what
  /// fell due meanwhile runs with the next advance.
  void thaw(worker_system& w) {
    w.frozen = false;
    w.sched.clock().current_time = head.now();
  }

  /// Moves every clock forward by `delta`, running what falls due.
  void advance(caf::timespan delta) {
    auto target = head.now() + delta;
    run();
    for (auto t = next_timeout(); t <= target; t = next_timeout()) {
      set_time(t);
      run();
    }
    set_time(target);
    run();
  }

  /// Runs until nothing is left to do, at most `limit` ahead.
  void run_to_quiescence(caf::timespan limit = 10min) {
    auto target = head.now() + limit;
    run();
    for (auto t = next_timeout(); t <= target; t = next_timeout()) {
      set_time(t);
      run();
    }
  }

  /// The head loses `w` as CAF reports a dropped connection: the head's
  /// monitor of the node's supervisor fires with remote_link_unreachable.
  /// The node itself goes on (a partition): its workers still report, too
  /// late.
  void cut(worker_system& w) {
    caf::send_as(caf::actor_cast<caf::actor>(w.supervisor),
                 caf::actor_cast<caf::actor>(head.node.admission),
                 caf::down_msg{w.supervisor.address(),
                               caf::exit_reason::remote_link_unreachable});
    run();
  }

  /// The head loses `w` as when its operator stops it (SIGTERM): the
  /// monitor of the node's supervisor fires with user_shutdown.
  void stop(worker_system& w) {
    caf::send_as(
      caf::actor_cast<caf::actor>(w.supervisor),
      caf::actor_cast<caf::actor>(head.node.admission),
      caf::down_msg{w.supervisor.address(), caf::exit_reason::user_shutdown});
    run();
  }

  /// `w` loses the head as CAF reports a dropped connection (the head
  /// loses `w` too): the member's monitor of the registry fires with
  /// remote_link_unreachable.
  void lose_head(worker_system& w) {
    cut(w);
    auto registry = caf::actor_cast<caf::actor>(head.node.registry);
    caf::send_as(registry, w.member,
                 caf::down_msg{registry.address(),
                               caf::exit_reason::remote_link_unreachable});
    run();
  }

  std::vector<runtime::device_status> devices_of(const std::string& node) {
    std::vector<runtime::device_status> result;
    for (auto& device : head.nodes_now())
      if (device.node == node)
        result.push_back(device);
    return result;
  }
};

} // namespace vidnode::test
