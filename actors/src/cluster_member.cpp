#include <algorithm>
#include <limits>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/units.hpp"
#include "stray_errors.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;
using runtime::make_error;

/// The member's timer: try joining now.
using rejoin_atom = caf::atom_constant<caf::atom("rejoin")>;
/// The member's timer: the head has been away longer than the node may run
/// its attempts for it.
using fence_atom = caf::atom_constant<caf::atom("fence")>;

struct member_state {
  static inline const char* name = "vidnode.cluster_member";

  std::string node_name;
  std::vector<runtime::device_info> devices;
  /// The models the node serves (gpu::model_catalog::served).
  std::vector<std::string> models;
  node_supervisor_actor supervisor;
  join_options options;
  /// The head's registry and admission actor while joined.
  cluster_registry_actor registry;
  admission_control_actor admission;
  /// Delay before the next try.
  caf::timespan backoff{};
  /// Bumped by every try; a late answer to an older try is ignored.
  uint64_t attempt = 0;
  bool joined = false;
  bool stopping = false;
  /// Joined at least once: later losses are logged as the head's loss.
  bool ever_joined = false;
  /// Connections in a row closed during the handshake (see join_options).
  int cut_handshakes = 0;
  /// The head's lease grace (join_answer), from its last answer.
  caf::timespan lease_grace{0};
  /// Bumped by every join and every loss of the head: a renewal or fence
  /// timer of an earlier join or loss is ignored.
  uint64_t losses = 0;
};

using member_pointer = caf::stateful_actor<member_state>*;

/// How long the node's attempts may run on after the head was last heard
/// from: the head keeps them for lease_grace after it lost the node, which
/// may be up to a node timeout before the node lost the head. Zero: no
/// limit is kept (the head queues them again at once, and the node stops
/// them as soon as it notices the loss).
caf::timespan run_on_of(const member_state& st) {
  return std::max(st.lease_grace - st.options.node_timeout, caf::timespan{0});
}

/// How often a joined member asks the head whether it still answers.
caf::timespan renew_interval(const member_state& st) {
  return std::max(st.options.node_timeout / 4,
                  caf::timespan{std::chrono::milliseconds{50}});
}

/// The head answered at `heard` or later: the node's attempts may run until
/// `heard` plus run_on_of, but at least two renewal intervals (so that a
/// grace shorter than the node timeout does not stop them between two
/// answers); for ever without a lease grace.
void renew_leases(member_pointer self, caf::actor_clock::time_point heard) {
  auto& st = self->state;
  auto run_on = std::max(run_on_of(st), 2 * renew_interval(st));
  auto until = st.lease_grace.count() == 0
                 ? std::numeric_limits<int64_t>::max()
                 : std::chrono::duration_cast<std::chrono::nanoseconds>(
                     (heard + run_on).time_since_epoch())
                     .count();
  self->send(st.supervisor, renew_atom::value, static_cast<int64_t>(until));
}

std::string where(const join_options& options) {
  return options.host + ":" + std::to_string(options.port);
}

void try_join(member_pointer self);

void retry_later(member_pointer self, const caf::error& why) {
  auto& st = self->state;
  if (st.stopping)
    return;
  if (why == caf::sec::disconnect_during_handshake)
    spdlog::warn("cannot join the head at {}: the connection was closed "
                 "during the handshake ({} in a row); next try in {}",
                 where(st.options), st.cut_handshakes,
                 runtime::format_duration(st.backoff));
  else
    spdlog::warn("cannot join the head at {}: {}; next try in {}",
                 where(st.options), runtime::describe(why),
                 runtime::format_duration(st.backoff));
  self->delayed_send(self, st.backoff, rejoin_atom::value, st.attempt);
  st.backoff = std::min(st.backoff * 2, st.options.backoff_max);
}

/// Why the member gives up after handshakes cut in a row.
caf::error handshake_refusal(const member_state& st) {
  return make_error(
    errc::unauthorized,
    "the connection to the head at " + where(st.options)
      + " was closed during the handshake " + std::to_string(st.cut_handshakes)
      + " times in a row: TLS is on at one end only, or one end does not "
        "trust the other's certificate (this node runs "
      + (st.options.tls ? "with" : "without")
      + " TLS; compare --tls-cert, --tls-key and --tls-ca here and on the "
        "head)");
}

void refuse(member_pointer self, const caf::error& why) {
  auto& st = self->state;
  st.stopping = true;
  if (st.options.on_refused)
    st.options.on_refused(why);
  else
    spdlog::error("the head at {} refused this node: {}", where(st.options),
                  runtime::describe(why));
}

/// The head's registry answered: bind the supervisor to its admission actor
/// and watch both; the attempts the head does not want are stopped.
void joined(member_pointer self, cluster_registry_actor registry,
            admission_control_actor admission, join_answer answer) {
  auto& st = self->state;
  st.registry = std::move(registry);
  st.admission = std::move(admission);
  st.joined = true;
  st.ever_joined = true;
  st.backoff = st.options.backoff;
  st.lease_grace = answer.lease_grace;
  ++st.losses;
  self->monitor(st.registry);
  self->monitor(st.admission);
  self->send(st.supervisor, bind_atom::value,
             caf::actor_cast<caf::actor>(st.admission), answer.stop);
  renew_leases(self, self->clock().now());
  self->delayed_send(self, renew_interval(st), renew_atom::value, st.losses);
  if (answer.stop.empty())
    spdlog::info("joined the head {} at {} as {}", answer.head,
                 where(st.options), st.node_name);
  else
    spdlog::info("joined the head {} at {} as {}; it stops {} attempt(s) it "
                 "no longer wants",
                 answer.head, where(st.options), st.node_name,
                 answer.stop.size());
  if (st.options.on_joined)
    st.options.on_joined(answer.head);
}

void register_with(member_pointer self, cluster_registry_actor registry,
                   uint64_t attempt, std::vector<held_lease> leases) {
  auto& st = self->state;
  node_registration reg;
  reg.name = st.node_name;
  reg.protocol = runtime::protocol_version;
  reg.supervisor = st.supervisor;
  reg.devices = st.devices;
  reg.models = st.models;
  reg.leases = std::move(leases);
  self
    ->request(registry, st.options.join_timeout, join_atom::value,
              std::move(reg))
    .then(
      [=](admission_control_actor& admission, join_answer& answer) {
        if (self->state.stopping || attempt != self->state.attempt)
          return;
        joined(self, registry, std::move(admission), std::move(answer));
      },
      [=](caf::error& err) {
        if (self->state.stopping || attempt != self->state.attempt)
          return;
        if (runtime::is(err, errc::invalid_request)
            || runtime::is(err, errc::unauthorized))
          refuse(self, err);
        else
          retry_later(self, err);
      });
}

void try_join(member_pointer self) {
  auto& st = self->state;
  if (st.stopping || st.joined)
    return;
  auto attempt = ++st.attempt;
  self
    ->request(st.options.connector, st.options.connect_timeout,
              caf::connect_atom::value, st.options.host, st.options.port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
          const std::set<std::string>& interface) {
        auto& st = self->state;
        if (st.stopping || attempt != st.attempt)
          return;
        st.cut_handshakes = 0;
        if (!ptr) {
          retry_later(self,
                      make_error(errc::node_lost, "nothing is published at "
                                                    + where(st.options)));
          return;
        }
        auto expected = self->system().message_types<cluster_registry_actor>();
        if (interface != expected) {
          refuse(self, make_error(errc::invalid_request,
                                  "join: " + where(st.options)
                                    + " is not a vidnode cluster port (is it "
                                      "the head's client port? The cluster "
                                      "port is the head's --cluster-listen)"));
          return;
        }
        // What the devices hold goes with the registration.
        auto registry = caf::actor_cast<cluster_registry_actor>(ptr);
        self->request(st.supervisor, st.options.join_timeout, held_atom::value)
          .then(
            [=](std::vector<held_lease>& leases) {
              if (self->state.stopping || attempt != self->state.attempt)
                return;
              register_with(self, registry, attempt, std::move(leases));
            },
            [=](caf::error& err) {
              if (self->state.stopping || attempt != self->state.attempt)
                return;
              retry_later(self, err);
            });
      },
      [=](caf::error& err) {
        auto& st = self->state;
        if (st.stopping || attempt != st.attempt)
          return;
        if (err == caf::sec::disconnect_during_handshake) {
          ++st.cut_handshakes;
          if (st.options.handshake_failure_limit > 0
              && st.cut_handshakes >= st.options.handshake_failure_limit) {
            refuse(self, handshake_refusal(st));
            return;
          }
        } else if (err == caf::sec::cannot_connect_to_node) {
          st.cut_handshakes = 0;
        }
        retry_later(self, err);
      });
}

/// The head is gone (`why`): join again; the node's jobs run on for at most
/// run_on_of (then fence_atom stops them), or stop at once.
void head_lost(member_pointer self, const std::string& why) {
  auto& st = self->state;
  st.joined = false;
  st.admission = nullptr;
  st.registry = nullptr;
  // The head keeps this node's attempts for lease_grace after it lost the
  // node, which may be up to a node timeout before the node lost the
  // head: past lease_grace less that, the head may run them elsewhere.
  auto run_on = run_on_of(st);
  auto loss = ++st.losses;
  if (run_on.count() == 0) {
    spdlog::warn("lost the head at {} ({}); stopping this node's jobs and "
                 "joining again",
                 where(st.options), why);
    self->send(st.supervisor, bind_atom::value, caf::actor{},
               std::vector<held_lease>{});
  } else {
    spdlog::warn("lost the head at {} ({}); this node's jobs run on for up "
                 "to {} while it joins again",
                 where(st.options), why, runtime::format_duration(run_on));
    self->delayed_send(self, run_on, fence_atom::value, loss);
  }
  self->delayed_send(self, st.backoff, rejoin_atom::value, st.attempt);
}

caf::behavior member_behavior(member_pointer self, std::string name,
                              std::vector<runtime::device_info> devices,
                              std::vector<std::string> models,
                              node_supervisor_actor supervisor,
                              join_options options) {
  auto& st = self->state;
  st.node_name = std::move(name);
  st.devices = std::move(devices);
  st.models = std::move(models);
  st.supervisor = std::move(supervisor);
  st.options = std::move(options);
  st.backoff = st.options.backoff;
  survive_stray_errors(self, "the cluster member");
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (!st.joined
        || (msg.source != st.admission.address()
            && msg.source != st.registry.address()))
      return;
    head_lost(self, runtime::describe(msg.reason));
  });
  self->send(self, rejoin_atom::value, st.attempt);
  return {
    [=](rejoin_atom, uint64_t attempt) {
      if (attempt == self->state.attempt)
        try_join(self);
    },
    [=](renew_atom, uint64_t joined) {
      auto& st = self->state;
      if (st.stopping || !st.joined || joined != st.losses)
        return;
      auto asked = self->clock().now();
      self->request(st.admission, st.options.node_timeout, renew_atom::value)
        .then(
          [=](caf::ok_atom) {
            if (self->state.joined && joined == self->state.losses)
              renew_leases(self, asked);
          },
          [](caf::error&) {
            // No answer, or the head lost this node (node_lost): the leases
            // run out unless a later answer comes. A lost connection, the
            // only way the head loses a node whose member still runs, ends
            // the monitor too (then the node joins again).
          });
      self->delayed_send(self, renew_interval(st), renew_atom::value, joined);
    },
    [=](fence_atom, uint64_t loss) {
      auto& st = self->state;
      if (st.stopping || st.joined || loss != st.losses)
        return;
      spdlog::warn("the head at {} has been away for longer than its lease "
                   "grace ({}) less this node's timeout; stopping this "
                   "node's jobs (the head runs them again elsewhere)",
                   where(st.options), runtime::format_duration(st.lease_grace));
      self->send(st.supervisor, bind_atom::value, caf::actor{},
                 std::vector<held_lease>{});
    },
    [=](shutdown_atom) {
      self->state.stopping = true;
      self->quit();
      return caf::ok_atom::value;
    },
  };
}

} // namespace

caf::actor spawn_cluster_member(caf::actor_system& sys, std::string name,
                                std::vector<runtime::device_info> devices,
                                std::vector<std::string> models,
                                node_supervisor_actor supervisor,
                                join_options options) {
  return sys.spawn(member_behavior, std::move(name), std::move(devices),
                   std::move(models), std::move(supervisor),
                   std::move(options));
}

} // namespace vidnode::actors
