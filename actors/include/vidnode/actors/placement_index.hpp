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
#include <vector>

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

  friend bool operator==(const placement_entry& x, const placement_entry& y);

  friend bool operator!=(const placement_entry& x, const placement_entry& y) {
    return !(x == y);
  }
};

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
/// their budgets.
///
/// Costs, for n devices, k device kinds (at most 3), p profiles that serve
/// the job's model and m models loaded on a device: set() is
/// O((1 + m) log n); the aggregates are O(p k); choose() is O(p k log n)
/// plus the devices it passes over that lack the memory. Nodes that serve
/// the same models share a profile, so p is the number of distinct model
/// lists, not of nodes. Not thread-safe; the ledger's owner (admission) is
/// its only user.
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
  int32_t free_devices_ = 0;
};

} // namespace vidnode::actors
