#include "vidnode/actors/device_ledger.hpp"

#include <algorithm>

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

int32_t device_ledger::add(std::string node, runtime::device_info info) {
  device_slot slot;
  slot.name = info.name();
  slot.info = std::move(info);
  slot.node = std::move(node);
  if (!free_slots_.empty()) {
    auto index = free_slots_.back();
    free_slots_.pop_back();
    slots_[static_cast<size_t>(index)] = std::move(slot);
    in_use_[static_cast<size_t>(index)] = true;
    return index;
  }
  slots_.push_back(std::move(slot));
  in_use_.push_back(true);
  return static_cast<int32_t>(slots_.size() - 1);
}

void device_ledger::free(int32_t slot) {
  if (find(slot) == nullptr)
    return;
  slots_[static_cast<size_t>(slot)] = device_slot{};
  in_use_[static_cast<size_t>(slot)] = false;
  free_slots_.push_back(slot);
}

device_slot* device_ledger::find(int32_t slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= slots_.size()
      || !in_use_[static_cast<size_t>(slot)])
    return nullptr;
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

bool device_ledger::any_free_slot(int32_t max_concurrency) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (in_use_[i] && slots_[i].state == device_slot::health::up
        && slots_[i].running.size() < static_cast<size_t>(max_concurrency))
      return true;
  return false;
}

std::optional<std::string>
device_ledger::no_device_left_for(const gpu::model_factory& factory) const {
  std::string quarantined;
  bool any_in_service = false;
  for_each([&](int32_t, const device_slot& device) {
    if (any_in_service || !device.present()
        || !factory.runs_on(device.info.kind))
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

bool device_ledger::any_runs(const gpu::model_factory& factory) const {
  bool any = false;
  for_each([&](int32_t, const device_slot& device) {
    any = any || factory.runs_on(device.info.kind);
  });
  return any;
}

uint64_t
device_ledger::largest_budget_for(const gpu::model_factory& factory) const {
  uint64_t largest = 0;
  for_each([&](int32_t, const device_slot& device) {
    if (factory.runs_on(device.info.kind))
      largest = std::max(largest, device.budget());
  });
  return largest;
}

uint64_t device_ledger::largest_budget() const {
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
