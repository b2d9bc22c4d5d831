#include "vidnode/actors/device_ledger.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>

namespace vidnode::actors {

runtime::model_load_info* device_slot::find_model(const std::string& model) {
  for (auto& x : models)
    if (x.model == model)
      return &x;
  return nullptr;
}

const runtime::model_load_info*
device_slot::find_model(const std::string& model) const {
  for (const auto& x : models)
    if (x.model == model)
      return &x;
  return nullptr;
}

void device_slot::lose_worker() {
  worker = nullptr;
  if (state != health::quarantined && state != health::lost)
    state = health::restarting;
}

device_ledger::device_ledger()
  : check_(std::getenv("VIDNODE_CHECK_PLACEMENT") != nullptr) {}

int32_t device_ledger::add(std::string node, runtime::device_info info,
                           const std::vector<std::string>& served) {
  device_slot slot;
  slot.name = info.name();
  slot.info = std::move(info);
  auto named = node_numbers_.find(node);
  if (named == node_numbers_.end()) {
    auto number = static_cast<int32_t>(node_numbers_.size());
    if (!free_node_numbers_.empty()) {
      number = free_node_numbers_.back();
      free_node_numbers_.pop_back();
    }
    named = node_numbers_.emplace(node, node_number_use{number, 0}).first;
  }
  ++named->second.devices;
  slot.node_number = named->second.number;
  slot.node = std::move(node);
  slot.profile = profiles_.acquire(served);
  if (!free_slots_.empty()) {
    auto index = free_slots_.back();
    free_slots_.pop_back();
    slots_[static_cast<size_t>(index)] = std::move(slot);
    in_use_[static_cast<size_t>(index)] = true;
    touch(index);
    return index;
  }
  slots_.push_back(std::move(slot));
  in_use_.push_back(true);
  touched_flags_.push_back(false);
  auto index = static_cast<int32_t>(slots_.size() - 1);
  touch(index);
  return index;
}

void device_ledger::free(int32_t slot) {
  if (find(slot) == nullptr)
    return;
  const auto& device = slots_[static_cast<size_t>(slot)];
  profiles_.release(device.profile);
  auto named = node_numbers_.find(device.node);
  if (named != node_numbers_.end() && --named->second.devices == 0) {
    free_node_numbers_.push_back(named->second.number);
    node_numbers_.erase(named);
  }
  slots_[static_cast<size_t>(slot)] = device_slot{};
  in_use_[static_cast<size_t>(slot)] = false;
  free_slots_.push_back(slot);
}

device_slot* device_ledger::find(int32_t slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= slots_.size()
      || !in_use_[static_cast<size_t>(slot)])
    return nullptr;
  touch(slot);
  return &slots_[static_cast<size_t>(slot)];
}

const device_slot* device_ledger::find(int32_t slot) const {
  if (slot < 0 || static_cast<size_t>(slot) >= slots_.size()
      || !in_use_[static_cast<size_t>(slot)])
    return nullptr;
  return &slots_[static_cast<size_t>(slot)];
}

int32_t device_ledger::slot_of(const std::string& node, int32_t index) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (in_use_[i] && slots_[i].info.index == index && slots_[i].node == node
        && slots_[i].present())
      return static_cast<int32_t>(i);
  return -1;
}

// -- the index ---------------------------------------------------------------

const placement_entry& device_ledger::entry_of(size_t i,
                                               placement_entry& x) const {
  x.models.clear();
  if (!in_use_[i]) {
    x = placement_entry{};
    return x;
  }
  const auto& device = slots_[i];
  x.in_use = true;
  // A lost node's devices still count for what the cluster can run (it may
  // come back), but are never in service.
  x.present = true;
  x.in_service =
    device.present() && device.state != device_slot::health::quarantined;
  x.up = device.state == device_slot::health::up;
  x.kind = device.info.kind;
  x.profile = device.profile;
  x.running = static_cast<int32_t>(device.running.size());
  x.reserved = device.reserved;
  x.budget = device.budget();
  x.node = device.node_number;
  for (const auto& model : device.models)
    if (model.loaded)
      x.models.push_back(model.model);
  return x;
}

bool device_ledger::indexed_as(const placement_entry& x, size_t i) const {
  if (!in_use_[i])
    return !x.in_use;
  const auto& device = slots_[i];
  auto present = device.present();
  if (!x.in_use || !x.present
      || x.in_service
           != (present && device.state != device_slot::health::quarantined)
      || x.up != (device.state == device_slot::health::up)
      || x.kind != device.info.kind || x.profile != device.profile
      || x.running != static_cast<int32_t>(device.running.size())
      || x.reserved != device.reserved || x.budget != device.budget()
      || x.node != device.node_number)
    return false;
  size_t n = 0;
  for (const auto& model : device.models)
    if (model.loaded) {
      if (n == x.models.size() || x.models[n] != model.model)
        return false;
      ++n;
    }
  return n == x.models.size();
}

void device_ledger::sync() const {
  for (auto slot : touched_) {
    auto i = static_cast<size_t>(slot);
    touched_flags_[i] = false;
    if (!indexed_as(index_.entry(slot), i))
      index_.set(slot, entry_of(i, scratch_));
  }
  touched_.clear();
}

void device_ledger::sync(int32_t max_concurrency) const {
  if (index_.slots() != max_concurrency) {
    index_ = placement_index{max_concurrency};
    touched_.clear();
    for (size_t i = 0; i < slots_.size(); ++i) {
      touched_flags_[i] = true;
      touched_.push_back(static_cast<int32_t>(i));
    }
  }
  sync();
}

void device_ledger::index_differs(const char* query, const std::string& indexed,
                                  const std::string& scanned) {
  std::cerr << "vidnode: device_ledger::" << query << ": the placement index "
            << "answered " << indexed << ", a scan of every device " << scanned
            << " (a slot changed through a reference kept across a query, "
               "or a bug in the index; see device_ledger.hpp)\n";
  std::abort();
}

// -- queries
// -------------------------------------------------------------------

bool device_ledger::any_free_slot(int32_t max_concurrency) const {
  sync(max_concurrency);
  auto any = index_.any_free_slot();
  if (check_ && any != any_free_slot_by_scan(max_concurrency))
    index_differs("any_free_slot", std::to_string(any), std::to_string(!any));
  return any;
}

bool device_ledger::any_free_slot_for(const gpu::model_factory& factory,
                                      const std::string& model,
                                      int32_t max_concurrency) const {
  sync(max_concurrency);
  auto any = index_.any_free_slot_for(factory, profiles_.serving(model));
  if (check_
      && any != any_free_slot_for_by_scan(factory, model, max_concurrency))
    index_differs("any_free_slot_for", std::to_string(any),
                  std::to_string(!any));
  return any;
}

int32_t device_ledger::choose(const gpu::model_factory& factory,
                              const std::string& model, uint64_t bytes,
                              int32_t max_concurrency) const {
  sync(max_concurrency);
  auto slot = index_.choose(factory, profiles_.serving(model), model, bytes);
  if (check_) {
    auto scanned = choose_by_scan(factory, model, bytes, max_concurrency);
    if (slot != scanned)
      index_differs("choose", "slot " + std::to_string(slot),
                    "slot " + std::to_string(scanned));
  }
  return slot;
}

namespace {

/// A gang's slots, for index_differs.
std::string describe_gang(const std::vector<int32_t>& slots) {
  if (slots.empty())
    return "no gang";
  std::string result = "slots";
  for (auto slot : slots)
    result += ' ' + std::to_string(slot);
  return result;
}

} // namespace

std::vector<int32_t> device_ledger::choose_gang(
  const gpu::model_factory& factory, const std::string& model, uint64_t bytes,
  int32_t ranks, bool across_nodes, int32_t max_concurrency) const {
  sync(max_concurrency);
  auto gang = index_.choose_gang(factory, profiles_.serving(model), model,
                                 bytes, ranks, across_nodes);
  if (check_) {
    auto scanned = choose_gang_by_scan(factory, model, bytes, ranks,
                                       across_nodes, max_concurrency);
    if (gang != scanned)
      index_differs("choose_gang", describe_gang(gang), describe_gang(scanned));
  }
  return gang;
}

int32_t device_ledger::largest_gang_for(const gpu::model_factory& factory,
                                        const std::string& model,
                                        uint64_t bytes,
                                        bool across_nodes) const {
  sync();
  auto largest = index_.largest_gang_for(factory, profiles_.serving(model),
                                         bytes, across_nodes);
  if (check_) {
    auto scanned =
      largest_gang_for_by_scan(factory, model, bytes, across_nodes);
    if (largest != scanned)
      index_differs("largest_gang_for", std::to_string(largest),
                    std::to_string(scanned));
  }
  return largest;
}

std::optional<std::string>
device_ledger::no_device_left_for(const gpu::model_factory& factory,
                                  const std::string& model) const {
  sync();
  // Only when none is in service but some are present is it worth a scan:
  // the answer names every quarantined device.
  const auto& serving = profiles_.serving(model);
  auto in_service = index_.any_in_service_for(factory, serving);
  auto why = in_service || !index_.any_present_for(factory, serving)
               ? std::nullopt
               : no_device_left_by_scan(factory, model);
  if (check_ && why != no_device_left_by_scan(factory, model))
    index_differs("no_device_left_for", why ? *why : "nothing", "otherwise");
  return why;
}

bool device_ledger::any_runs(const gpu::model_factory& factory,
                             const std::string& model) const {
  sync();
  auto any = index_.any_present_for(factory, profiles_.serving(model));
  if (check_ && any != any_runs_by_scan(factory, model))
    index_differs("any_runs", std::to_string(any), std::to_string(!any));
  return any;
}

bool device_ledger::any_in_service_for(const gpu::model_factory& factory,
                                       const std::string& model) const {
  sync();
  auto any = index_.any_in_service_for(factory, profiles_.serving(model));
  if (check_ && any != any_in_service_for_by_scan(factory, model))
    index_differs("any_in_service_for", std::to_string(any),
                  std::to_string(!any));
  return any;
}

bool device_ledger::any_node_serves(const std::string& model) const {
  sync();
  auto any = index_.any_in_service_in(profiles_.serving(model));
  if (check_ && any != any_node_serves_by_scan(model))
    index_differs("any_node_serves", std::to_string(any), std::to_string(!any));
  return any;
}

uint64_t device_ledger::largest_budget_for(const gpu::model_factory& factory,
                                           const std::string& model) const {
  sync();
  auto largest = index_.largest_budget_for(factory, profiles_.serving(model));
  if (check_ && largest != largest_budget_for_by_scan(factory, model))
    index_differs("largest_budget_for", std::to_string(largest),
                  std::to_string(largest_budget_for_by_scan(factory, model)));
  return largest;
}

uint64_t device_ledger::largest_budget() const {
  sync();
  auto largest = index_.largest_budget();
  if (check_ && largest != largest_budget_by_scan())
    index_differs("largest_budget", std::to_string(largest),
                  std::to_string(largest_budget_by_scan()));
  return largest;
}

// -- the same by scans
// ---------------------------------------------------------

bool device_ledger::can_run(const device_slot& device,
                            const gpu::model_factory& factory,
                            const std::string& model) const {
  return factory.runs_on(device.info.kind) && serves(device, model);
}

bool device_ledger::any_free_slot_by_scan(int32_t max_concurrency) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (in_use_[i] && slots_[i].state == device_slot::health::up
        && slots_[i].running.size() < static_cast<size_t>(max_concurrency))
      return true;
  return false;
}

bool device_ledger::any_free_slot_for_by_scan(const gpu::model_factory& factory,
                                              const std::string& model,
                                              int32_t max_concurrency) const {
  auto any = false;
  for_each([&](int32_t, const device_slot& device) {
    any = any
          || (device.state == device_slot::health::up
              && device.running.size() < static_cast<size_t>(max_concurrency)
              && can_run(device, factory, model));
  });
  return any;
}

int32_t device_ledger::choose_by_scan(const gpu::model_factory& factory,
                                      const std::string& model, uint64_t bytes,
                                      int32_t max_concurrency) const {
  std::vector<placement_candidate> candidates(slots_.size());
  for_each([&](int32_t i, const device_slot& device) {
    auto& c = candidates[static_cast<size_t>(i)];
    c.available = device.state == device_slot::health::up
                  && can_run(device, factory, model);
    c.running = static_cast<int32_t>(device.running.size());
    c.slots = max_concurrency;
    c.memory_bytes = device.budget();
    c.memory_reserved = device.reserved;
    auto cached = device.find_model(model);
    c.has_model = cached != nullptr && cached->loaded;
  });
  return choose_device(candidates, bytes);
}

std::vector<int32_t> device_ledger::choose_gang_by_scan(
  const gpu::model_factory& factory, const std::string& model, uint64_t bytes,
  int32_t ranks, bool across_nodes, int32_t max_concurrency) const {
  std::vector<gang_candidate> candidates(slots_.size());
  for_each([&](int32_t i, const device_slot& device) {
    auto& c = candidates[static_cast<size_t>(i)];
    c.node = device.node_number;
    c.device.available = device.state == device_slot::health::up
                         && can_run(device, factory, model);
    c.device.running = static_cast<int32_t>(device.running.size());
    c.device.slots = max_concurrency;
    c.device.memory_bytes = device.budget();
    c.device.memory_reserved = device.reserved;
    auto cached = device.find_model(model);
    c.device.has_model = cached != nullptr && cached->loaded;
  });
  return choose_gang_devices(candidates, bytes, ranks, across_nodes);
}

int32_t device_ledger::largest_gang_for_by_scan(
  const gpu::model_factory& factory, const std::string& model, uint64_t bytes,
  bool across_nodes) const {
  std::map<int32_t, int32_t> per_node;
  int32_t total = 0;
  for_each([&](int32_t, const device_slot& device) {
    if (can_run(device, factory, model) && device.budget() >= bytes) {
      ++per_node[device.node_number];
      ++total;
    }
  });
  int32_t largest = 0;
  for (const auto& [node, count] : per_node)
    largest = std::max(largest, count);
  return across_nodes ? total : largest;
}

std::optional<std::string>
device_ledger::no_device_left_by_scan(const gpu::model_factory& factory,
                                      const std::string& model) const {
  std::string quarantined;
  bool any_in_service = false;
  for_each([&](int32_t, const device_slot& device) {
    if (any_in_service || !device.present() || !can_run(device, factory, model))
      return;
    if (device.state != device_slot::health::quarantined) {
      any_in_service = true;
      return;
    }
    quarantined += (quarantined.empty() ? "" : "; ") + device.name + ": "
                   + device.last_error;
  });
  if (any_in_service || quarantined.empty())
    return std::nullopt;
  return "every device that can run this model is quarantined (" + quarantined
         + ")";
}

bool device_ledger::any_runs_by_scan(const gpu::model_factory& factory,
                                     const std::string& model) const {
  bool any = false;
  for_each([&](int32_t, const device_slot& device) {
    any = any || can_run(device, factory, model);
  });
  return any;
}

bool device_ledger::any_in_service_for_by_scan(
  const gpu::model_factory& factory, const std::string& model) const {
  bool any = false;
  for_each([&](int32_t, const device_slot& device) {
    any =
      any
      || (device.present() && device.state != device_slot::health::quarantined
          && can_run(device, factory, model));
  });
  return any;
}

bool device_ledger::any_node_serves_by_scan(const std::string& model) const {
  bool any = false;
  for_each([&](int32_t, const device_slot& device) {
    any =
      any
      || (device.present() && device.state != device_slot::health::quarantined
          && serves(device, model));
  });
  return any;
}

uint64_t
device_ledger::largest_budget_for_by_scan(const gpu::model_factory& factory,
                                          const std::string& model) const {
  uint64_t largest = 0;
  for_each([&](int32_t, const device_slot& device) {
    if (can_run(device, factory, model))
      largest = std::max(largest, device.budget());
  });
  return largest;
}

uint64_t device_ledger::largest_budget_by_scan() const {
  uint64_t largest = 0;
  for_each([&](int32_t, const device_slot& device) {
    largest = std::max(largest, device.budget());
  });
  return largest;
}

const char* to_string(device_slot::health state, bool busy) {
  switch (state) {
    case device_slot::health::starting:
      return "starting";
    case device_slot::health::up:
      return busy ? "busy" : "idle";
    case device_slot::health::restarting:
      return "restarting";
    case device_slot::health::quarantined:
      return "quarantined";
    case device_slot::health::lost:
      return "lost";
  }
  return "unknown";
}

runtime::device_status device_ledger::status_of(int32_t slot,
                                                int32_t max_concurrency) const {
  const auto& device = at(slot);
  runtime::device_status status;
  status.node = device.node;
  status.device = device.name;
  status.state = to_string(device.state, !device.running.empty());
  status.slots_in_use = static_cast<int32_t>(device.running.size());
  status.slots = max_concurrency;
  status.memory_bytes = device.info.memory_bytes;
  status.memory_reserved = device.reserved + device.resident;
  status.models = device.models;
  status.running = device.running;
  status.restarts = device.restarts;
  status.last_error = device.last_error;
  status.served_models = served_by(device);
  return status;
}

std::vector<runtime::device_status>
device_ledger::statuses(int32_t max_concurrency) const {
  std::vector<runtime::device_status> result;
  for_each([&](int32_t slot, const device_slot&) {
    result.push_back(status_of(slot, max_concurrency));
  });
  return result;
}

} // namespace vidnode::actors
