#include "vidnode/actors/placement_index.hpp"

#include <algorithm>
#include <tuple>

namespace vidnode::actors {

namespace {

/// Unreserved memory of a device; 0 if over-reserved.
uint64_t room_of(const placement_entry& x) {
  return x.budget > x.reserved ? x.budget - x.reserved : 0;
}

/// choose_device's memory test.
bool fits(const placement_entry& x, uint64_t bytes) {
  return x.reserved <= x.budget && x.budget - x.reserved >= bytes;
}

const placement_entry unused_entry{};

/// The element of `xs` for `x`'s class, made if missing.
template <class T>
T& class_of(std::vector<std::vector<T>>& xs, const placement_entry& x) {
  auto p = static_cast<size_t>(x.profile);
  if (p >= xs.size())
    xs.resize(p + 1);
  auto& kinds = xs[p];
  auto k = static_cast<size_t>(x.kind);
  if (k >= kinds.size())
    kinds.resize(k + 1);
  return kinds[k];
}

} // namespace

bool operator==(const placement_entry& x, const placement_entry& y) {
  return std::tie(x.in_use, x.present, x.in_service, x.up, x.kind, x.profile,
                  x.running, x.reserved, x.budget, x.models)
         == std::tie(y.in_use, y.present, y.in_service, y.up, y.kind, y.profile,
                     y.running, y.reserved, y.budget, y.models);
}

void placement_index::group::insert(int32_t slot, const placement_entry& x) {
  order.insert(rank{x.running, x.reserved, slot});
  room.insert(room_of(x));
}

void placement_index::group::erase(int32_t slot, const placement_entry& x) {
  order.erase(rank{x.running, x.reserved, slot});
  auto i = room.find(room_of(x));
  if (i != room.end())
    room.erase(i);
}

placement_index::placement_index(int32_t slots) : slots_(slots) {}

const placement_entry& placement_index::entry(int32_t slot) const {
  if (slot < 0 || static_cast<size_t>(slot) >= entries_.size())
    return unused_entry;
  return entries_[static_cast<size_t>(slot)];
}

void placement_index::group::move(int32_t slot, const placement_entry& from,
                                  const placement_entry& to) {
  if (auto member = order.extract(rank{from.running, from.reserved, slot})) {
    member.value() = rank{to.running, to.reserved, slot};
    order.insert(std::move(member));
  }
  auto i = room.find(room_of(from));
  if (i == room.end()) {
    room.insert(room_of(to));
    return;
  }
  auto space = room.extract(i);
  space.value() = room_of(to);
  room.insert(std::move(space));
}

void placement_index::set(int32_t slot, const placement_entry& x) {
  auto i = static_cast<size_t>(slot);
  if (i >= entries_.size())
    entries_.resize(i + 1);
  auto& old = entries_[i];
  if (old == x)
    return;
  if (same_groups(old, x)) {
    move(slot, old, x);
  } else {
    leave(slot, old);
    join(slot, x);
  }
  // Copied, not moved: the old entry's models keep their storage.
  old = x;
}

bool placement_index::same_groups(const placement_entry& x,
                                  const placement_entry& y) const {
  return x.in_use && y.in_use && x.kind == y.kind && x.profile == y.profile
         && x.present == y.present && x.in_service == y.in_service
         && takes_jobs(x) == takes_jobs(y) && x.models == y.models;
}

void placement_index::move(int32_t slot, const placement_entry& from,
                           const placement_entry& to) {
  auto& state = state_of(from);
  if (from.present && from.budget != to.budget)
    if (auto budget = state.budgets.extract(from.budget)) {
      budget.value() = to.budget;
      state.budgets.insert(std::move(budget));
    }
  if (!takes_jobs(from))
    return;
  state.free.move(slot, from, to);
  for (const auto& model : from.models)
    model_group(model, from).move(slot, from, to);
}

bool placement_index::takes_jobs(const placement_entry& x) const noexcept {
  return x.in_use && x.up && x.running < slots_;
}

placement_index::class_state&
placement_index::state_of(const placement_entry& x) {
  return class_of(classes_, x);
}

placement_index::group& placement_index::model_group(const std::string& model,
                                                     const placement_entry& x) {
  auto i = by_model_.find(model);
  if (i == by_model_.end())
    i = by_model_.emplace(model, by_class<group>{}).first;
  return class_of(i->second, x);
}

void placement_index::join(int32_t slot, const placement_entry& x) {
  if (!x.in_use)
    return;
  auto& state = state_of(x);
  if (x.present) {
    ++state.present;
    state.budgets.insert(x.budget);
  }
  if (x.in_service)
    ++state.in_service;
  if (!takes_jobs(x))
    return;
  ++free_devices_;
  state.free.insert(slot, x);
  for (const auto& model : x.models)
    model_group(model, x).insert(slot, x);
}

void placement_index::leave(int32_t slot, const placement_entry& x) {
  if (!x.in_use)
    return;
  auto& state = state_of(x);
  if (x.present) {
    --state.present;
    auto i = state.budgets.find(x.budget);
    if (i != state.budgets.end())
      state.budgets.erase(i);
  }
  if (x.in_service)
    --state.in_service;
  if (!takes_jobs(x))
    return;
  --free_devices_;
  state.free.erase(slot, x);
  for (const auto& model : x.models)
    model_group(model, x).erase(slot, x);
}

int32_t placement_index::first_fit(const group& x, uint64_t bytes) const {
  // The largest room bounds the walk: when no member has the memory, none
  // is visited.
  if (x.room.empty() || *x.room.rbegin() < bytes)
    return -1;
  for (const auto& member : x.order)
    if (fits(entries_[static_cast<size_t>(member.slot)], bytes))
      return member.slot;
  return -1;
}

template <class T, class F>
void placement_index::for_classes_of(const by_class<T>& xs,
                                     const gpu::model_factory& factory,
                                     const std::vector<int32_t>& profiles,
                                     F&& f) {
  for (auto profile : profiles) {
    auto p = static_cast<size_t>(profile);
    if (profile < 0 || p >= xs.size())
      continue;
    const auto& kinds = xs[p];
    for (size_t k = 0; k < kinds.size(); ++k)
      if (factory.runs_on(static_cast<runtime::device_kind>(k)))
        f(kinds[k]);
  }
}

int32_t placement_index::choose(const gpu::model_factory& factory,
                                const std::vector<int32_t>& profiles,
                                const std::string& model,
                                uint64_t bytes) const {
  // choose_device ranks a device with the model before any without it,
  // then by (running, reserved, slot): the best device with the model that
  // fits, else the best device that fits (one with the model would have
  // been found first, so none of those fits).
  auto best = -1;
  auto consider = [&](int32_t slot) {
    if (slot < 0)
      return;
    const auto& x = entries_[static_cast<size_t>(slot)];
    if (best >= 0) {
      const auto& y = entries_[static_cast<size_t>(best)];
      if (!(rank{x.running, x.reserved, slot}
            < rank{y.running, y.reserved, best}))
        return;
    }
    best = slot;
  };
  auto with_model = by_model_.find(model);
  if (with_model != by_model_.end())
    for_classes_of(with_model->second, factory, profiles,
                   [&](const group& x) { consider(first_fit(x, bytes)); });
  if (best >= 0)
    return best;
  for_classes_of(classes_, factory, profiles, [&](const class_state& x) {
    consider(first_fit(x.free, bytes));
  });
  return best;
}

bool placement_index::any_free_slot_for(
  const gpu::model_factory& factory,
  const std::vector<int32_t>& profiles) const {
  auto any = false;
  for_classes_of(classes_, factory, profiles, [&](const class_state& x) {
    any = any || !x.free.order.empty();
  });
  return any;
}

bool placement_index::any_present_for(
  const gpu::model_factory& factory,
  const std::vector<int32_t>& profiles) const {
  auto any = false;
  for_classes_of(classes_, factory, profiles,
                 [&](const class_state& x) { any = any || x.present > 0; });
  return any;
}

bool placement_index::any_in_service_for(
  const gpu::model_factory& factory,
  const std::vector<int32_t>& profiles) const {
  auto any = false;
  for_classes_of(classes_, factory, profiles,
                 [&](const class_state& x) { any = any || x.in_service > 0; });
  return any;
}

bool placement_index::any_in_service_in(
  const std::vector<int32_t>& profiles) const {
  for (auto profile : profiles) {
    auto p = static_cast<size_t>(profile);
    if (profile < 0 || p >= classes_.size())
      continue;
    for (const auto& x : classes_[p])
      if (x.in_service > 0)
        return true;
  }
  return false;
}

uint64_t placement_index::largest_budget_for(
  const gpu::model_factory& factory,
  const std::vector<int32_t>& profiles) const {
  uint64_t largest = 0;
  for_classes_of(classes_, factory, profiles, [&](const class_state& x) {
    if (!x.budgets.empty())
      largest = std::max(largest, *x.budgets.rbegin());
  });
  return largest;
}

uint64_t placement_index::largest_budget() const {
  uint64_t largest = 0;
  for (const auto& kinds : classes_)
    for (const auto& x : kinds)
      if (!x.budgets.empty())
        largest = std::max(largest, *x.budgets.rbegin());
  return largest;
}

} // namespace vidnode::actors
