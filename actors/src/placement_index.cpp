#include "vidnode/actors/placement_index.hpp"

#include <algorithm>
#include <limits>
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

/// Whether `model` is among `models`.
bool has(const std::vector<std::string>& models, const std::string& model) {
  return std::find(models.begin(), models.end(), model) != models.end();
}

/// How a one-node gang ranks against another: fewer of its devices without
/// the model, fewer jobs running, less memory reserved, lowest slot.
using gang_score = std::tuple<int32_t, int64_t, uint64_t, int32_t>;

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
                  x.running, x.reserved, x.budget, x.models, x.node)
         == std::tie(y.in_use, y.present, y.in_service, y.up, y.kind, y.profile,
                     y.running, y.reserved, y.budget, y.models, y.node);
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
         && x.node == y.node && x.present == y.present
         && x.in_service == y.in_service && takes_jobs(x) == takes_jobs(y)
         && x.models == y.models;
}

void placement_index::move(int32_t slot, const placement_entry& from,
                           const placement_entry& to) {
  auto& state = state_of(from);
  if (from.present && from.budget != to.budget) {
    if (auto budget = state.budgets.extract(from.budget)) {
      budget.value() = to.budget;
      state.budgets.insert(std::move(budget));
    }
    count_budget(slot, from, false);
    count_budget(slot, to, true);
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

int64_t placement_index::node_key(int32_t node, int32_t slot) noexcept {
  if (node >= 0)
    return node;
  return int64_t{std::numeric_limits<int32_t>::max()} + 1 + slot;
}

placement_index::node_budgets&
placement_index::budgets_of_node(int32_t slot, const placement_entry& x) {
  auto p = static_cast<size_t>(x.profile);
  if (p >= nodes_.size())
    nodes_.resize(p + 1);
  auto& kinds = nodes_[p][node_key(x.node, slot)];
  auto k = static_cast<size_t>(x.kind);
  if (k >= kinds.size())
    kinds.resize(k + 1);
  return kinds;
}

void placement_index::count_budget(int32_t slot, const placement_entry& x,
                                   bool add) {
  auto& kinds = budgets_of_node(slot, x);
  auto& budgets = kinds[static_cast<size_t>(x.kind)];
  auto i = std::lower_bound(budgets.begin(), budgets.end(), x.budget);
  if (add) {
    budgets.insert(i, x.budget);
    return;
  }
  if (i != budgets.end() && *i == x.budget)
    budgets.erase(i);
  if (std::all_of(kinds.begin(), kinds.end(),
                  [](const std::vector<uint64_t>& xs) { return xs.empty(); }))
    nodes_[static_cast<size_t>(x.profile)].erase(node_key(x.node, slot));
}

void placement_index::join(int32_t slot, const placement_entry& x) {
  if (!x.in_use)
    return;
  auto& state = state_of(x);
  if (x.present) {
    ++state.present;
    state.budgets.insert(x.budget);
    count_budget(slot, x, true);
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
    count_budget(slot, x, false);
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

std::vector<int32_t>
placement_index::choose_gang(const gpu::model_factory& factory,
                             const std::vector<int32_t>& profiles,
                             const std::string& model, uint64_t bytes,
                             int32_t ranks, bool across_nodes) const {
  std::vector<int32_t> gang;
  if (ranks < 1)
    return gang;
  auto& members = gang_members_;
  members.clear();
  for_classes_of(classes_, factory, profiles, [&](const class_state& x) {
    if (x.free.room.empty() || *x.free.room.rbegin() < bytes)
      return;
    for (const auto& member : x.free.order) {
      const auto& e = entries_[static_cast<size_t>(member.slot)];
      if (fits(e, bytes))
        members.push_back(gang_member{node_key(e.node, member.slot),
                                      has(e.models, model), e.running,
                                      e.reserved, member.slot});
    }
  });
  if (members.size() < static_cast<size_t>(ranks))
    return gang;
  // By node, each node's devices in choose_device's order.
  std::sort(members.begin(), members.end(),
            [](const gang_member& x, const gang_member& y) {
              return std::make_tuple(x.node, !x.has_model, x.running,
                                     x.reserved, x.slot)
                     < std::make_tuple(y.node, !y.has_model, y.running,
                                       y.reserved, y.slot);
            });
  auto& nodes = gang_nodes_;
  nodes.clear();
  for (size_t i = 0; i < members.size(); ++i) {
    if (nodes.empty() || nodes.back().node != members[i].node)
      nodes.push_back(gang_node{members[i].node, i, 0, 0});
    ++nodes.back().count;
    nodes.back().with_model += members[i].has_model ? 1 : 0;
  }
  // One node: its first `ranks` devices.
  const gang_node* best = nullptr;
  gang_score best_score;
  for (const auto& node : nodes) {
    if (node.count < ranks)
      continue;
    int64_t running = 0;
    uint64_t reserved = 0;
    auto lowest = std::numeric_limits<int32_t>::max();
    for (size_t i = node.first; i < node.first + static_cast<size_t>(ranks);
         ++i) {
      running += members[i].running;
      reserved += members[i].reserved;
      lowest = std::min(lowest, members[i].slot);
    }
    gang_score score{ranks - std::min(node.with_model, ranks), running,
                     reserved, lowest};
    if (best == nullptr || score < best_score) {
      best = &node;
      best_score = score;
    }
  }
  if (best != nullptr) {
    gang.reserve(static_cast<size_t>(ranks));
    for (size_t i = best->first; gang.size() < static_cast<size_t>(ranks); ++i)
      gang.push_back(members[i].slot);
    return gang;
  }
  if (!across_nodes)
    return gang;
  // The fewest nodes: the largest first, each whole but the last.
  std::sort(nodes.begin(), nodes.end(),
            [](const gang_node& x, const gang_node& y) {
              return std::make_tuple(-x.count, -x.with_model, x.node)
                     < std::make_tuple(-y.count, -y.with_model, y.node);
            });
  gang.reserve(static_cast<size_t>(ranks));
  for (const auto& node : nodes)
    for (auto i = node.first; i < node.first + static_cast<size_t>(node.count)
                              && gang.size() < static_cast<size_t>(ranks);
         ++i)
      gang.push_back(members[i].slot);
  return gang;
}

int32_t placement_index::largest_gang_for(const gpu::model_factory& factory,
                                          const std::vector<int32_t>& profiles,
                                          uint64_t bytes,
                                          bool across_nodes) const {
  // A node's devices share a profile; should one have several, its counts
  // are added up below.
  auto& counts = node_counts_;
  counts.clear();
  for (auto profile : profiles) {
    auto p = static_cast<size_t>(profile);
    if (profile < 0 || p >= nodes_.size())
      continue;
    for (const auto& [node, kinds] : nodes_[p]) {
      int32_t count = 0;
      for (size_t k = 0; k < kinds.size(); ++k)
        if (factory.runs_on(static_cast<runtime::device_kind>(k)))
          count += static_cast<int32_t>(
            kinds[k].end()
            - std::lower_bound(kinds[k].begin(), kinds[k].end(), bytes));
      if (count > 0)
        counts.emplace_back(node, count);
    }
  }
  int32_t total = 0;
  int32_t largest = 0;
  std::sort(counts.begin(), counts.end());
  for (size_t i = 0; i < counts.size();) {
    int32_t on_node = 0;
    auto node = counts[i].first;
    for (; i < counts.size() && counts[i].first == node; ++i)
      on_node += counts[i].second;
    largest = std::max(largest, on_node);
    total += on_node;
  }
  return across_nodes ? total : largest;
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

std::vector<int32_t>
choose_gang_devices(const std::vector<gang_candidate>& devices, uint64_t bytes,
                    int32_t ranks, bool across_nodes) {
  std::vector<int32_t> gang;
  if (ranks < 1)
    return gang;
  auto wanted = static_cast<size_t>(ranks);
  auto before = [&](int32_t x, int32_t y) {
    const auto& a = devices[static_cast<size_t>(x)].device;
    const auto& b = devices[static_cast<size_t>(y)].device;
    return std::make_tuple(!a.has_model, a.running, a.memory_reserved, x)
           < std::make_tuple(!b.has_model, b.running, b.memory_reserved, y);
  };
  // Node -> the devices that may take a rank, in choose_device's order.
  std::map<int64_t, std::vector<int32_t>> nodes;
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& x = devices[i].device;
    if (!x.available || x.running >= x.slots
        || x.memory_reserved > x.memory_bytes
        || x.memory_bytes - x.memory_reserved < bytes)
      continue;
    auto node = devices[i].node >= 0
                  ? int64_t{devices[i].node}
                  : int64_t{std::numeric_limits<int32_t>::max()} + 1
                      + static_cast<int64_t>(i);
    nodes[node].push_back(static_cast<int32_t>(i));
  }
  auto with_model = [&](const std::vector<int32_t>& slots, size_t n) {
    return static_cast<int32_t>(std::count_if(
      slots.begin(), slots.begin() + static_cast<long>(n), [&](int32_t slot) {
        return devices[static_cast<size_t>(slot)].device.has_model;
      }));
  };
  const std::vector<int32_t>* best = nullptr;
  gang_score best_score;
  for (auto& [node, slots] : nodes) {
    std::sort(slots.begin(), slots.end(), before);
    if (slots.size() < wanted)
      continue;
    int64_t running = 0;
    uint64_t reserved = 0;
    for (size_t r = 0; r < wanted; ++r) {
      const auto& x = devices[static_cast<size_t>(slots[r])].device;
      running += x.running;
      reserved += x.memory_reserved;
    }
    gang_score score{ranks - with_model(slots, wanted), running, reserved,
                     *std::min_element(slots.begin(), slots.begin() + ranks)};
    if (best == nullptr || score < best_score) {
      best = &slots;
      best_score = score;
    }
  }
  if (best != nullptr)
    return {best->begin(), best->begin() + ranks};
  if (!across_nodes)
    return gang;
  std::vector<
    std::tuple<int32_t, int32_t, int64_t, const std::vector<int32_t>*>>
    order;
  for (const auto& [node, slots] : nodes) {
    auto size = static_cast<int32_t>(slots.size());
    order.emplace_back(-size, -with_model(slots, slots.size()), node, &slots);
  }
  std::sort(order.begin(), order.end());
  for (const auto& entry : order)
    for (auto slot : *std::get<3>(entry))
      if (gang.size() < wanted)
        gang.push_back(slot);
  if (gang.size() < wanted)
    gang.clear();
  return gang;
}

} // namespace vidnode::actors
