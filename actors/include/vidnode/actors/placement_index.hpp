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
/// ranks them, and per device kind the aggregates admission's checks need.
///
/// Every device that is up with a free slot (fewer than `slots()` jobs
/// running) is in the group of its kind and in the group of each model it
/// has loaded, ordered by (jobs running, memory reserved, slot); each group
/// also keeps the largest unreserved memory of its members. Per kind it
/// counts present and in-service devices and keeps their budgets.
///
/// Costs, for n devices, k device kinds (at most 3) and m models loaded on
/// a device: set() is O((1 + m) log n); the aggregates are O(k); choose()
/// is O(k log n) plus the devices it passes over that lack the memory.
/// Not thread-safe; the ledger's owner (admission) is its only user.
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
  /// candidate that is available if up and its kind runs `factory`'s
  /// model, has `slots()` slots, the budget as memory, and has the model if
  /// `model` is among its loaded models: the slot of the device a job of
  /// `model` needing `bytes` goes to, or -1 if none fits.
  int32_t choose(const gpu::model_factory& factory, const std::string& model,
                 uint64_t bytes) const;

  /// Whether some device is up with a free slot. O(1).
  bool any_free_slot() const noexcept {
    return free_devices_ > 0;
  }

  /// Whether some device of a kind that runs `factory`'s model is up with
  /// a free slot.
  bool any_free_slot_for(const gpu::model_factory& factory) const;

  /// Whether a present device can run `factory`'s model.
  bool any_present_for(const gpu::model_factory& factory) const;

  /// Whether a present device that is not quarantined can run `factory`'s
  /// model.
  bool any_in_service_for(const gpu::model_factory& factory) const;

  /// The largest budget (bytes) of a present device that runs `factory`'s
  /// model; 0 if none.
  uint64_t largest_budget_for(const gpu::model_factory& factory) const;

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

  /// What the index keeps per device kind.
  struct kind_state {
    int32_t present = 0;
    int32_t in_service = 0;
    /// Budgets of the present devices.
    std::multiset<uint64_t> budgets;
    /// Every device of the kind that is up with a free slot.
    group free;
  };

  /// The first member of `x`, in order, with `bytes` of unreserved memory;
  /// -1 if none.
  int32_t first_fit(const group& x, uint64_t bytes) const;

  /// Whether `x` takes a job now (up with a free slot).
  bool takes_jobs(const placement_entry& x) const noexcept;

  kind_state& state_of(runtime::device_kind kind);

  /// The group of `model`'s devices of `kind`.
  group& model_group(const std::string& model, runtime::device_kind kind);

  void join(int32_t slot, const placement_entry& x);
  void leave(int32_t slot, const placement_entry& x);

  /// Whether `x` and `y` belong to the same groups and counts (they differ
  /// in load at most).
  bool same_groups(const placement_entry& x, const placement_entry& y) const;

  /// Moves `slot` from `from` to `to` within the groups both belong to.
  void move(int32_t slot, const placement_entry& from,
            const placement_entry& to);

  /// Calls `f(kind, const kind_state&)` for every kind that runs
  /// `factory`'s model.
  template <class F>
  void for_kinds_of(const gpu::model_factory& factory, F&& f) const;

  int32_t slots_;
  std::vector<placement_entry> entries_;
  /// Indexed by device kind.
  std::vector<kind_state> kinds_;
  /// Model name -> groups indexed by device kind.
  std::map<std::string, std::vector<group>, std::less<>> by_model_;
  int32_t free_devices_ = 0;
};

} // namespace vidnode::actors
