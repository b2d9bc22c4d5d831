#pragma once

/// @file
/// An index of the devices placement may choose, kept up to date one slot at
/// a time, so that choosing a device for a job and admission's checks do not
/// scan every device (the device ledger owns one; see device_ledger.hpp).

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "vidnode/actors/placement.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/device.hpp"

namespace vidnode::actors {

/// What the placement index knows of one ledger slot: the fields that
/// placement and admission's checks read, copied from the slot.
struct placement_entry {
  /// The slot holds a device (it was not freed).
  bool in_use = false;
  /// The device is in the cluster (its node was not lost).
  bool present = false;
  /// Present and not quarantined.
  bool in_service = false;
  /// Its worker takes jobs.
  bool up = false;
  runtime::device_kind kind = runtime::device_kind::sim;
  /// The serving profile of its node (serving_profiles.hpp; >= 0): which
  /// models may run on it.
  int32_t profile = 0;
  /// Jobs holding one of its slots.
  int32_t running = 0;
  /// Memory reserved by running jobs, in bytes.
  uint64_t reserved = 0;
  /// Memory jobs may reserve (the device's less its loaded models'), bytes.
  uint64_t budget = 0;
  /// Models in (or being loaded into) its cache, in cache order.
  std::vector<std::string> models;
  /// Its node, as a number (the ledger interns node names): devices with
  /// equal numbers are on the same node. -1: unknown, the device counts as
  /// a node of its own.
  int32_t node = -1;

  friend bool operator==(const placement_entry& x, const placement_entry& y);

  friend bool operator!=(const placement_entry& x, const placement_entry& y) {
    return !(x == y);
  }
};

/// What gang placement needs to know of one device: choose_device's
/// candidate and its node.
struct gang_candidate {
  /// The device as choose_device sees it.
  placement_candidate device;
  /// As placement_entry::node (a device of node -1 is a node of its own,
  /// numbered after every other).
  int32_t node = -1;
};

/// Chooses the devices of a gang: `ranks` distinct devices, each with a
/// free slot and `bytes` of unreserved memory (the devices choose_device
/// would take, with `bytes` each), all or none. Returns their indices in
/// rank order (rank 0 first), or nothing if no such `ranks` devices exist
/// (or `ranks` < 1).
///
/// One node if any node has `ranks` such devices: its first `ranks` in
/// choose_device's order (with the model first, then fewest running, least
/// reserved, lowest index). Among such nodes, the one whose chosen devices
/// have the model most often, then run fewest jobs in all, then have the
/// least memory reserved in all, then hold the lowest index.
///
/// Else, only if `across_nodes`, the fewest nodes: nodes by most such
/// devices, then most of them with the model, then lowest node number,
/// each taken whole (the last one only for the ranks still missing) with
/// its devices in choose_device's order; ranks follow that order, so the
/// ranks of one node are consecutive.
///
/// A scan of every device, O(n log n); placement_index::choose_gang gives
/// the same answer from its index. For a gang that must avoid some
/// devices, mark them unavailable and call this.
std::vector<int32_t>
choose_gang_devices(const std::vector<gang_candidate>& devices, uint64_t bytes,
                    int32_t ranks, bool across_nodes);

/// The devices placement may choose, grouped and ordered as choose_device
/// ranks them, and per device class the aggregates admission's checks need.
///
/// A device's class is its (serving profile, kind): the devices of every
/// node that serves the same models, of one kind. A job may run only on a
/// device of a kind its model runs on (`factory`) whose profile serves its
/// model: the queries take the factory and the profiles that serve the
/// model (serving_profiles::serving), so they visit only the classes that
/// may take the job, never a device of another.
///
/// Every device that is up with a free slot (fewer than `slots()` jobs
/// running) is in the group of its class and in the group of each model it
/// has loaded (per class), ordered by (jobs running, memory reserved,
/// slot); each group also keeps the largest unreserved memory of its
/// members. Per class it counts present and in-service devices and keeps
/// their budgets; per profile and node, the budgets of its present devices
/// of each kind.
///
/// Costs, for n devices, k device kinds (at most 3), p profiles that serve
/// the job's model and m models loaded on a device: set() is
/// O((1 + m) log n) (plus the devices of its node when it joins or leaves
/// or its budget changes); the aggregates are O(p k); choose() is
/// O(p k log n) plus the devices it passes over that lack the memory;
/// choose_gang() is O(f log f) for the f devices of those classes that
/// take jobs; largest_gang_for() is O(N k log N) for the N nodes of those
/// profiles. Nodes that serve the same models share a profile, so p is the
/// number of distinct model lists, not of nodes. Not thread-safe, not even
/// its const queries (choose_gang and largest_gang_for reuse scratch
/// space); the ledger's owner (admission) is its only user.
class placement_index {
public:
  /// An empty index for devices with `slots` slots each (max_concurrency).
  explicit placement_index(int32_t slots = 0);

  /// Slots per device.
  int32_t slots() const noexcept {
    return slots_;
  }

  /// What the index holds for `slot` (an unused entry if never set).
  const placement_entry& entry(int32_t slot) const;

  /// Replaces what the index holds for `slot` (`slot` >= 0). Allocates
  /// nothing when only the load (running, reserved, budget) changed.
  void set(int32_t slot, const placement_entry& entry);

  /// Exactly choose_device (placement.hpp) over every slot, each seen as a
  /// candidate that is available if up, its kind runs `factory`'s model
  /// and its profile is among `profiles` (those that serve `model`,
  /// ascending), has `slots()` slots, the budget as memory, and has the
  /// model if `model` is among its loaded models: the slot of the device a
  /// job of `model` needing `bytes` goes to, or -1 if none fits.
  int32_t choose(const gpu::model_factory& factory,
                 const std::vector<int32_t>& profiles, const std::string& model,
                 uint64_t bytes) const;

  /// Exactly choose_gang_devices over every slot, each seen as in choose()
  /// with its node: the slots, in rank order, of the `ranks` devices a gang
  /// of `model` needing `bytes` per rank goes to, on one node or (if
  /// `across_nodes`) on the fewest nodes; empty if it fits nowhere (nothing
  /// is held for it). Visits each device of those classes that takes jobs
  /// once (none of a class whose largest unreserved memory is short of
  /// `bytes`); allocates only the result and, when it grows, scratch space.
  std::vector<int32_t> choose_gang(const gpu::model_factory& factory,
                                   const std::vector<int32_t>& profiles,
                                   const std::string& model, uint64_t bytes,
                                   int32_t ranks, bool across_nodes) const;

  /// The most ranks a gang of a model needing `bytes` per rank could ever
  /// get, whatever the load: the most present devices that run the model
  /// with a budget of at least `bytes` on one node, or on all nodes
  /// together if `across_nodes`. 0 if none.
  int32_t largest_gang_for(const gpu::model_factory& factory,
                           const std::vector<int32_t>& profiles, uint64_t bytes,
                           bool across_nodes) const;

  /// Whether some device is up with a free slot. O(1).
  bool any_free_slot() const noexcept {
    return free_devices_ > 0;
  }

  // In the queries below, a device "runs the model" if its kind runs
  // `factory`'s model and its profile is among `profiles`.

  /// Whether some device that runs the model is up with a free slot.
  bool any_free_slot_for(const gpu::model_factory& factory,
                         const std::vector<int32_t>& profiles) const;

  /// Whether a present device runs the model.
  bool any_present_for(const gpu::model_factory& factory,
                       const std::vector<int32_t>& profiles) const;

  /// Whether a present device that is not quarantined runs the model.
  bool any_in_service_for(const gpu::model_factory& factory,
                          const std::vector<int32_t>& profiles) const;

  /// Whether a present device that is not quarantined, of any kind, has
  /// one of `profiles`.
  bool any_in_service_in(const std::vector<int32_t>& profiles) const;

  /// The largest budget (bytes) of a present device that runs the model; 0
  /// if none.
  uint64_t largest_budget_for(const gpu::model_factory& factory,
                              const std::vector<int32_t>& profiles) const;

  /// The largest budget (bytes) of any present device; 0 if none.
  uint64_t largest_budget() const;

private:
  /// Where a device stands in choose_device's order (it has, or lacks, the
  /// model like every other member of its group).
  struct rank {
    int32_t running;
    uint64_t reserved;
    int32_t slot;

    friend bool operator<(const rank& x, const rank& y) {
      return std::tie(x.running, x.reserved, x.slot)
             < std::tie(y.running, y.reserved, y.slot);
    }
  };

  /// Devices that are up with a free slot, in choose_device's order.
  struct group {
    std::set<rank> order;
    /// Unreserved memory of each member (0 if over-reserved).
    std::multiset<uint64_t> room;

    void insert(int32_t slot, const placement_entry& x);
    void erase(int32_t slot, const placement_entry& x);
    /// A member's load changed from `from` to `to` (reusing the nodes).
    void move(int32_t slot, const placement_entry& from,
              const placement_entry& to);
  };

  /// What the index keeps per device class (profile, kind).
  struct class_state {
    int32_t present = 0;
    int32_t in_service = 0;
    /// Budgets of the present devices.
    std::multiset<uint64_t> budgets;
    /// Every device of the class that is up with a free slot.
    group free;
  };

  /// Per profile, per kind (each indexed by its number).
  template <class T>
  using by_class = std::vector<std::vector<T>>;

  /// Per kind (indexed by its number), the budgets of a node's present
  /// devices of one profile, ascending.
  using node_budgets = std::vector<std::vector<uint64_t>>;

  /// A device choose_gang may take, in the order it ranks them.
  struct gang_member {
    /// node_key() of its node.
    int64_t node;
    bool has_model;
    int32_t running;
    uint64_t reserved;
    int32_t slot;
  };

  /// A node with devices choose_gang may take: gang_members_[first] and
  /// the `count` after it, of which `with_model` have the model.
  struct gang_node {
    int64_t node;
    size_t first;
    int32_t count;
    int32_t with_model;
  };

  /// What groups devices by node: `node`, or a key of the slot's own for a
  /// device of no node (-1), after every node number.
  static int64_t node_key(int32_t node, int32_t slot) noexcept;

  /// The budgets of the present devices of `x`'s node and profile.
  node_budgets& budgets_of_node(int32_t slot, const placement_entry& x);

  /// Records (`add`) or forgets a present device's budget in its node's.
  void count_budget(int32_t slot, const placement_entry& x, bool add);

  /// The first member of `x`, in order, with `bytes` of unreserved memory;
  /// -1 if none.
  int32_t first_fit(const group& x, uint64_t bytes) const;

  /// Whether `x` takes a job now (up with a free slot).
  bool takes_jobs(const placement_entry& x) const noexcept;

  class_state& state_of(const placement_entry& x);

  /// The group of `model`'s devices of `x`'s class.
  group& model_group(const std::string& model, const placement_entry& x);

  void join(int32_t slot, const placement_entry& x);
  void leave(int32_t slot, const placement_entry& x);

  /// Whether `x` and `y` belong to the same groups and counts (they differ
  /// in load at most).
  bool same_groups(const placement_entry& x, const placement_entry& y) const;

  /// Moves `slot` from `from` to `to` within the groups both belong to.
  void move(int32_t slot, const placement_entry& from,
            const placement_entry& to);

  /// Calls `f(const T&)` for every element of `xs` whose profile is among
  /// `profiles` and whose kind runs `factory`'s model.
  template <class T, class F>
  static void for_classes_of(const by_class<T>& xs,
                             const gpu::model_factory& factory,
                             const std::vector<int32_t>& profiles, F&& f);

  int32_t slots_;
  std::vector<placement_entry> entries_;
  by_class<class_state> classes_;
  /// Model name -> groups of the devices with the model loaded.
  std::map<std::string, by_class<group>, std::less<>> by_model_;
  /// Per profile: node_key() -> the budgets of its present devices.
  std::vector<std::map<int64_t, node_budgets>> nodes_;
  int32_t free_devices_ = 0;
  /// Scratch space of choose_gang and largest_gang_for.
  mutable std::vector<gang_member> gang_members_;
  mutable std::vector<gang_node> gang_nodes_;
  mutable std::vector<std::pair<int64_t, int32_t>> node_counts_;
};

} // namespace vidnode::actors
