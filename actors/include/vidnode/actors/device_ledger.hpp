#pragma once

/// @file
/// Admission's ledger of devices: for every device of every node, its
/// worker, health, slots in use and memory reserved. Holds no policy:
/// admission decides what runs where and who is to blame for a death.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/placement.hpp"
#include "vidnode/actors/placement_index.hpp"
#include "vidnode/actors/serving_profiles.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::actors {

/// Admission's view of one device. The fields placement reads (state,
/// info, running, reserved, resident, models, profile) are indexed by the
/// ledger:
/// change a slot of a ledger only through its non-const accessors (see
/// device_ledger).
struct device_slot {
  enum class health {
    /// Registered; its worker has not attached yet.
    starting,
    /// Its worker takes jobs.
    up,
    /// Its worker died; the supervisor restarts it.
    restarting,
    /// Out of service until probed after a cool-down.
    quarantined,
    /// Its node was lost: the slot takes nothing until it is freed.
    lost,
  };

  runtime::device_info info;
  /// info.name(), made once.
  std::string name;
  /// The node the device belongs to.
  std::string node;
  /// The number of its node: devices with equal numbers are on the same
  /// node (gang placement). Set by the ledger.
  int32_t node_number = -1;
  /// The serving profile of its node: the number, in the ledger's
  /// serving_profiles, of the models the node serves. Set by the ledger.
  int32_t profile = -1;
  device_worker_actor worker;
  health state = health::starting;
  int32_t restarts = 0;
  std::string last_error;
  /// Crashes charged to the jobs that ran here, since the device was last
  /// quarantined: a device is only blamed for a job that crashed here and
  /// succeeded elsewhere if it crashes clearly more jobs than that other
  /// device.
  int32_t job_crashes = 0;
  /// Why the device was last quarantined (for last_error once probed).
  std::string quarantine_reason;
  /// Jobs holding one of its slots.
  std::vector<runtime::job_id> running;
  /// Jobs whose compute is done on this device and whose output is being
  /// written by the worker (no slot, no memory): lost if the worker dies.
  std::vector<runtime::job_id> finishing;
  /// Memory reserved by running jobs, in bytes.
  uint64_t reserved = 0;
  /// Device memory the loaded models hold (out of jobs' reach), in bytes.
  uint64_t resident = 0;
  /// Models the worker loaded (or is loading) and the count of loads.
  std::vector<runtime::model_load_info> models;
  /// The supervisor that attached the worker; told when a job proves the
  /// device at fault.
  node_supervisor_actor supervisor;
  /// The job whose own failure (out of memory, a crash) ends the current
  /// worker, reported by the worker before it exits; 0 if none.
  runtime::job_id culprit;
  /// The worker reported that the device itself failed (it exits next).
  bool failed_itself = false;
  /// Attempts its rejoined node still ran were put back in `running` before
  /// its worker attached: the attach keeps them, and asks the worker to
  /// send again the outcomes the head may have missed (resume_atom).
  bool taken_over = false;

  /// Memory jobs may reserve: the device's, less its loaded models'.
  uint64_t budget() const noexcept {
    return info.memory_bytes > resident ? info.memory_bytes - resident : 0;
  }

  /// Whether the slot still stands for a device in the cluster.
  bool present() const noexcept {
    return state != health::lost;
  }

  /// The cache entry of `model`, or null.
  runtime::model_load_info* find_model(const std::string& model);

  /// The cache entry of `model`, or null.
  const runtime::model_load_info* find_model(const std::string& model) const;

  /// The worker is gone or about to exit: nothing may be sent to it, and
  /// unless quarantined (or lost) the device awaits a new worker.
  void lose_worker();
};

/// Every device admission places jobs on, each in a numbered slot that stays
/// the device's until the slot is freed (its node forgotten). Slot numbers
/// are what job records and leases refer to.
///
/// Each device carries the models its node serves, as a serving profile
/// (serving_profiles.hpp): a job of a model runs only on a device whose
/// node serves the model and whose kind the model's factory (the head's,
/// which knows how to check and size the job) runs on. In the queries
/// below, such a device "can run" the job's model.
///
/// The ledger answers placement and admission's checks from a
/// placement_index instead of scanning every device: a slot handed out for
/// change (by the non-const find, at or for_each) is marked, and the next
/// query (choose, any_free_slot, the budgets, ...) first brings the index
/// up to date with the marked slots, O(log n) each for n devices (the costs
/// given below come on top). So a change made through a reference is seen
/// by every later query, with one exception: a reference kept across a
/// query and used to change the slot after it must be obtained again, or
/// the slot touch()ed, before the next query. The queries that take
/// `max_concurrency` expect the same figure every time: another one
/// rebuilds the index, O(n log n).
///
/// With the environment variable VIDNODE_CHECK_PLACEMENT set when the
/// ledger is made (the tests set it), every indexed answer is compared with
/// a scan of every device, and a difference aborts the process naming the
/// query: the test-time proof that no change escaped the index.
///
/// Not thread-safe, not even its const queries (they update the index):
/// the admission actor is its only user.
class device_ledger {
public:
  /// An empty ledger; checks against scans if VIDNODE_CHECK_PLACEMENT is set.
  device_ledger();

  /// Adds `node`'s device `info`, whose node serves the models `served`
  /// (model patterns, runtime/model_pattern.hpp); returns its slot number
  /// (a freed one is reused).
  int32_t add(std::string node, runtime::device_info info,
              const std::vector<std::string>& served);

  /// Frees `slot` for reuse (its node is forgotten).
  void free(int32_t slot);

  /// The device in `slot`, or null if there is none (out of range, freed).
  /// Marks the slot as changed (see the class comment).
  device_slot* find(int32_t slot);

  /// The device in `slot`, or null.
  const device_slot* find(int32_t slot) const;

  /// The device in `slot`, which must exist. Marks the slot as changed.
  device_slot& at(int32_t slot) {
    touch(slot);
    return slots_[static_cast<size_t>(slot)];
  }

  /// The device in `slot`, which must exist.
  const device_slot& at(int32_t slot) const {
    return slots_[static_cast<size_t>(slot)];
  }

  /// The slot of `node`'s device with index `index`, or -1.
  int32_t slot_of(const std::string& node, int32_t index) const;

  /// The number of slots (including freed ones: iterate with find).
  int32_t size() const noexcept {
    return static_cast<int32_t>(slots_.size());
  }

  /// Marks `slot` as changed (nothing if there is no such slot): the next
  /// query reads it again. Needed only for changes made through a
  /// reference obtained before a query.
  void touch(int32_t slot) {
    auto i = static_cast<size_t>(slot);
    if (slot >= 0 && i < touched_flags_.size() && !touched_flags_[i]) {
      touched_flags_[i] = true;
      touched_.push_back(slot);
    }
  }

  /// Whether some device takes jobs and has a free slot. O(1).
  bool any_free_slot(int32_t max_concurrency) const;

  // The queries for a job of `model`, run by `factory`, cost
  // O(device kinds x profiles that serve `model`) unless said otherwise,
  // and O(profiles) more the first time `model` is asked about after the
  // profiles changed (serving_profiles::serving).

  /// Whether some device that takes jobs, has a free slot and can run
  /// `model` exists.
  bool any_free_slot_for(const gpu::model_factory& factory,
                         const std::string& model,
                         int32_t max_concurrency) const;

  /// The slot of the device choose_device (placement.hpp) picks for a job
  /// of `model`, run by `factory`, that needs `bytes`, when every device
  /// that is up and can run `model` is available to it, with
  /// `max_concurrency` slots each; -1 if none fits. For a job that must
  /// avoid some devices (one whose worker died under it), build the
  /// candidates and call choose_device instead. O(log n) in the common
  /// case (times the classes above); devices passed over for lack of
  /// memory add to it.
  int32_t choose(const gpu::model_factory& factory, const std::string& model,
                 uint64_t bytes, int32_t max_concurrency) const;

  /// The slots, in rank order (rank 0 first), of the `ranks` distinct
  /// devices a gang of `model`, run by `factory`, needing `bytes` per rank
  /// goes to: devices that are up, can run `model` and have a free slot
  /// (of `max_concurrency`) and `bytes` of unreserved memory each, on one
  /// node if any node has that many, else (only if `across_nodes`) on the
  /// fewest nodes; empty if there are not that many now. The rules are
  /// choose_gang_devices' (placement_index.hpp). Reserves nothing: the
  /// caller starts every rank or none. O(f log f) for the f devices that
  /// can run `model` and have a free slot.
  std::vector<int32_t> choose_gang(const gpu::model_factory& factory,
                                   const std::string& model, uint64_t bytes,
                                   int32_t ranks, bool across_nodes,
                                   int32_t max_concurrency) const;

  /// The most ranks a gang of `model` needing `bytes` per rank could ever
  /// get from the devices in the ledger, whatever their load and health
  /// (lost and quarantined ones included, as for largest_budget_for): the
  /// devices that can run `model` with a budget of at least `bytes`,
  /// counted on the node that has most, or on all nodes if
  /// `across_nodes`. A gang of more ranks can be refused at once.
  /// O(N log N) for the N nodes that serve `model` (times the classes).
  int32_t largest_gang_for(const gpu::model_factory& factory,
                           const std::string& model, uint64_t bytes,
                           bool across_nodes) const;

  /// Why no device can take jobs of `model` any more (every present device
  /// that can run it is quarantined), or nothing if one can or none can
  /// run it at all. A scan when the answer is a reason (it names every
  /// quarantined device).
  std::optional<std::string>
  no_device_left_for(const gpu::model_factory& factory,
                     const std::string& model) const;

  /// Whether a device in the ledger can run `model`. Devices of a lost
  /// node count until it is forgotten: it may come back.
  bool any_runs(const gpu::model_factory& factory,
                const std::string& model) const;

  /// Whether a device in service (neither lost nor quarantined; its worker
  /// may still be starting) can run `model`.
  bool any_in_service_for(const gpu::model_factory& factory,
                          const std::string& model) const;

  /// Whether a device in service, of any kind, is on a node that serves
  /// `model`.
  bool any_node_serves(const std::string& model) const;

  /// The largest budget (bytes) of a device in the ledger (lost ones
  /// included) that can run `model`; 0 if none.
  uint64_t largest_budget_for(const gpu::model_factory& factory,
                              const std::string& model) const;

  /// The largest budget (bytes) of any device in the ledger; 0 if none.
  /// O(device kinds x profiles).
  uint64_t largest_budget() const;

  /// Whether `device`'s node serves `model`. O(its patterns).
  bool serves(const device_slot& device, const std::string& model) const {
    return profiles_.serves(device.profile, model);
  }

  /// The models `device`'s node serves, as model patterns, sorted.
  const std::vector<std::string>& served_by(const device_slot& device) const {
    return profiles_.patterns(device.profile);
  }

  /// What `vidctl nodes` shows for the device in `slot`, which must exist.
  runtime::device_status status_of(int32_t slot, int32_t max_concurrency) const;

  /// What `vidctl nodes` shows for every device, in slot order.
  std::vector<runtime::device_status> statuses(int32_t max_concurrency) const;

  /// Calls `f(int32_t slot, device_slot&)` for every used slot, and marks
  /// every one of them as changed: O(n log n) at the next query. Prefer the
  /// const overload to read.
  template <class F>
  void for_each(F&& f) {
    for (size_t i = 0; i < slots_.size(); ++i)
      if (in_use_[i]) {
        touch(static_cast<int32_t>(i));
        f(static_cast<int32_t>(i), slots_[i]);
      }
  }

  /// Calls `f(int32_t slot, const device_slot&)` for every used slot.
  template <class F>
  void for_each(F&& f) const {
    for (size_t i = 0; i < slots_.size(); ++i)
      if (in_use_[i])
        f(static_cast<int32_t>(i), slots_[i]);
  }

private:
  /// Brings the index up to date with the touched slots.
  void sync() const;

  /// sync(), for devices with `max_concurrency` slots each (a new figure
  /// rebuilds the index).
  void sync(int32_t max_concurrency) const;

  /// What the index should hold for slot `i`, written into `x` (whose
  /// storage is reused).
  const placement_entry& entry_of(size_t i, placement_entry& x) const;

  /// Whether `x` is what the index should hold for slot `i` (allocates
  /// nothing).
  bool indexed_as(const placement_entry& x, size_t i) const;

  // The answers of a scan over every device, for check_.

  /// Whether `device` is of a kind `factory` runs and its node serves
  /// `model`.
  bool can_run(const device_slot& device, const gpu::model_factory& factory,
               const std::string& model) const;

  bool any_free_slot_by_scan(int32_t max_concurrency) const;
  bool any_free_slot_for_by_scan(const gpu::model_factory& factory,
                                 const std::string& model,
                                 int32_t max_concurrency) const;
  int32_t choose_by_scan(const gpu::model_factory& factory,
                         const std::string& model, uint64_t bytes,
                         int32_t max_concurrency) const;
  std::vector<int32_t> choose_gang_by_scan(const gpu::model_factory& factory,
                                           const std::string& model,
                                           uint64_t bytes, int32_t ranks,
                                           bool across_nodes,
                                           int32_t max_concurrency) const;
  int32_t largest_gang_for_by_scan(const gpu::model_factory& factory,
                                   const std::string& model, uint64_t bytes,
                                   bool across_nodes) const;
  bool any_runs_by_scan(const gpu::model_factory& factory,
                        const std::string& model) const;
  bool any_in_service_for_by_scan(const gpu::model_factory& factory,
                                  const std::string& model) const;
  bool any_node_serves_by_scan(const std::string& model) const;
  uint64_t largest_budget_for_by_scan(const gpu::model_factory& factory,
                                      const std::string& model) const;
  uint64_t largest_budget_by_scan() const;
  std::optional<std::string>
  no_device_left_by_scan(const gpu::model_factory& factory,
                         const std::string& model) const;

  /// Reports an indexed answer that differs from the scan's, and aborts.
  [[noreturn]] static void index_differs(const char* query,
                                         const std::string& indexed,
                                         const std::string& scanned);

  std::vector<device_slot> slots_;
  std::vector<bool> in_use_;
  std::vector<int32_t> free_slots_;
  /// The serving profiles of the devices in use.
  serving_profiles profiles_;
  /// A node's number and the devices in use that refer to it.
  struct node_number_use {
    int32_t number;
    int32_t devices;
  };
  /// Names of the nodes of the devices in use -> their numbers.
  std::map<std::string, node_number_use, std::less<>> node_numbers_;
  /// Numbers no node has any more, for reuse.
  std::vector<int32_t> free_node_numbers_;
  /// Slots changed since the index was last brought up to date.
  mutable std::vector<int32_t> touched_;
  mutable std::vector<bool> touched_flags_;
  mutable placement_index index_;
  /// Scratch space of sync().
  mutable placement_entry scratch_;
  /// Compare every indexed answer with a scan (VIDNODE_CHECK_PLACEMENT).
  bool check_ = false;
};

/// The name `vidctl nodes` shows for a device's health.
const char* to_string(device_slot::health state, bool busy);

} // namespace vidnode::actors
