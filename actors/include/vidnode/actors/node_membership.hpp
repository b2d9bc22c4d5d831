#pragma once

/// @file
/// The head's table of the nodes in the cluster: which node each
/// supervisor and CAF node id belongs to, which ledger slots hold its
/// devices, and the nodes lost recently (kept for `vidctl nodes` until
/// forgotten). Holds no policy: admission decides what a join or a loss
/// does to jobs.

#include <cstdint>
#include <list>
#include <string>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/expected.hpp>
#include <caf/node_id.hpp>
#include <caf/timestamp.hpp>

#include "vidnode/actors/interfaces.hpp"

namespace vidnode::actors {

/// One node of the cluster, as the head sees it.
struct cluster_node {
  using time_point = caf::actor_clock::time_point;

  enum class status {
    /// Registered: its devices are in the ledger.
    up,
    /// Its connection dropped or fell silent: its devices left the ledger.
    lost,
  };

  /// Its `--node-name`, unique among the nodes up.
  std::string name;
  /// The CAF node its actors run on (the head's own for the local node).
  caf::node_id id;
  /// Its supervisor, which attaches and detaches its device workers.
  node_supervisor_actor supervisor;
  /// Whether it is the head's own node (never lost).
  bool local = false;
  status state = status::up;
  /// Ledger slots of its devices (device_ledger).
  std::vector<int32_t> slots;
  /// Counts the registrations of its name since the head started (or since
  /// the name was last forgotten): 1 for the first.
  uint64_t incarnation = 1;
  /// When it was lost (actor clock, and wall clock for people).
  time_point lost_at;
  caf::timestamp lost_wall;
  /// Why it was lost.
  std::string lost_reason;
};

/// The nodes of the cluster by name. A name is held by one node at a time;
/// a lost node keeps its name (shown as lost) until it registers again or
/// is forgotten.
class node_membership {
public:
  using time_point = caf::actor_clock::time_point;

  /// Registers node `name` on CAF node `id` with `supervisor`. A node that is
  /// up under `name` on another CAF node is a duplicate: refused with
  /// errc::invalid_request saying so. The same CAF node registering again
  /// (it lost the head and came back), or a node registering under the
  /// name of a lost one, replaces the old entry: the caller must first have
  /// dropped the old registration's devices (see find). Returns the node's
  /// entry, with its `slots` empty.
  caf::expected<cluster_node*> join(const std::string& name, caf::node_id id,
                                    node_supervisor_actor supervisor,
                                    bool local = false);

  /// Why node `name` on CAF node `id` may not register now (another node
  /// that is up holds the name), or none.
  caf::error check_join(const std::string& name, const caf::node_id& id) const;

  /// The entry of `name`, or null.
  cluster_node* find(const std::string& name);

  /// The entry of `name`, or null.
  const cluster_node* find(const std::string& name) const;

  /// The entry of the node that is up on CAF node `id`, or null.
  cluster_node* find_up(const caf::node_id& id);

  /// The entry of the node that is up and whose supervisor is `sender`, or
  /// null.
  cluster_node* by_supervisor(const caf::strong_actor_ptr& sender);

  /// Marks `node` lost at `t` (wall clock `wall`) for `reason`.
  static void lose(cluster_node& node, time_point t, caf::timestamp wall,
                   std::string reason);

  /// The names of the nodes lost at least `ttl` before `t` (to forget).
  std::vector<std::string> lost_before(time_point t, caf::timespan ttl) const;

  /// Forgets `name` entirely.
  void forget(const std::string& name);

  /// When the earliest lost node is due to be forgotten after `ttl`, or
  /// time_point::max() if no node is lost.
  time_point next_forget(caf::timespan ttl) const;

  /// Every node, up and lost, in registration order. Entries stay where
  /// they are until forgotten.
  const std::list<cluster_node>& nodes() const noexcept {
    return nodes_;
  }

  /// Nodes up, including the local one.
  size_t up_count() const noexcept;

private:
  std::list<cluster_node> nodes_;
};

} // namespace vidnode::actors
