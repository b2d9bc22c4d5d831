#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/placement.hpp"
#include "vidnode/actors/placement_index.hpp"
#include "vidnode/actors/serving_profiles.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/model_pattern.hpp"

#include "support/random_devices.hpp"

using namespace vidnode;
using actors::choose_device;
using actors::choose_gang_devices;
using actors::gang_candidate;
using actors::placement_candidate;
using actors::placement_entry;
using actors::placement_index;
using actors::serving_profiles;
using runtime::device_kind;
using test::all_kinds;
using test::chance;
using test::factories;
using test::model_names;
using test::pick;
using test::some_bytes;

namespace {

/// Model lists nodes serve: every model, two names, a name and a prefix,
/// none.
const std::vector<std::vector<std::string>> model_lists{
  {"*"}, {"a", "b"}, {"c", "d*"}, {}};

/// The models the property tests place jobs of.
const std::vector<std::string> job_models{"a", "b", "c", "d", "dx"};

/// The profiles of model_lists, numbered in that order.
serving_profiles profiles_of_model_lists() {
  serving_profiles profiles;
  for (const auto& list : model_lists)
    profiles.acquire(list);
  return profiles;
}

/// Whether the node of `x` serves `model`, from model_lists directly.
bool serves(const placement_entry& x, const std::string& model) {
  const auto& list = model_lists[static_cast<size_t>(x.profile)];
  return std::any_of(list.begin(), list.end(), [&](const std::string& p) {
    return runtime::model_pattern_matches(p, model);
  });
}

placement_entry random_entry(std::mt19937& rng) {
  placement_entry x;
  x.in_use = chance(rng, 0.9);
  x.present = chance(rng, 0.9);
  x.in_service = x.present && chance(rng, 0.8);
  x.up = x.in_service && chance(rng, 0.8);
  x.kind = pick(rng, all_kinds);
  x.profile = std::uniform_int_distribution<int32_t>{
    0, static_cast<int32_t>(model_lists.size()) - 1}(rng);
  x.running = std::uniform_int_distribution<int32_t>{0, 3}(rng);
  x.reserved = some_bytes(rng);
  x.budget = some_bytes(rng);
  for (const auto& model : model_names)
    if (chance(rng, 0.4))
      x.models.push_back(model);
  x.node = std::uniform_int_distribution<int32_t>{-1, 3}(rng);
  return x;
}

/// choose_device's candidate for an index entry, for a job of `model`.
placement_candidate candidate_of(const placement_entry& x, int32_t slots,
                                 const gpu::model_factory& factory,
                                 const std::string& model) {
  placement_candidate c;
  if (!x.in_use)
    return c;
  c.available = x.up && factory.runs_on(x.kind) && serves(x, model);
  c.running = x.running;
  c.slots = slots;
  c.memory_bytes = x.budget;
  c.memory_reserved = x.reserved;
  for (const auto& m : x.models)
    c.has_model = c.has_model || m == model;
  return c;
}

/// A random entry, most of them able to take a rank of a gang of a model
/// their profile serves (up, lightly loaded, with room).
placement_entry random_gang_entry(std::mt19937& rng) {
  auto x = random_entry(rng);
  if (chance(rng, 0.3))
    return x;
  x.in_use = x.present = x.in_service = x.up = true;
  x.running = std::uniform_int_distribution<int32_t>{0, 1}(rng);
  x.reserved = test::gib * std::uniform_int_distribution<uint64_t>{0, 2}(rng);
  x.budget = test::gib * std::uniform_int_distribution<uint64_t>{3, 8}(rng);
  if (chance(rng, 0.5))
    x.profile = 0;
  return x;
}

/// The nodes a gang may use, as choose_gang groups them: a device of no
/// node is a node of its own, after every other.
int64_t node_of(const placement_entry& x, size_t slot) {
  return x.node >= 0 ? x.node
                     : int64_t{std::numeric_limits<int32_t>::max()} + 1
                         + static_cast<int64_t>(slot);
}

/// The gang choose_gang_devices' rules give, found the slow way: each
/// node's devices in the order choose_device takes them one after another
/// from that node alone.
std::vector<int32_t>
gang_by_choose_device(const std::vector<placement_entry>& entries,
                      int32_t slots, const gpu::model_factory& factory,
                      const std::string& model, uint64_t bytes, int32_t ranks,
                      bool across_nodes) {
  std::vector<placement_candidate> all;
  for (const auto& x : entries)
    all.push_back(candidate_of(x, slots, factory, model));
  std::map<int64_t, std::vector<int32_t>> picks;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto node = node_of(entries[i], i);
    if (picks.count(node) > 0)
      continue;
    auto mine = all;
    for (size_t j = 0; j < entries.size(); ++j)
      mine[j].available = mine[j].available && node_of(entries[j], j) == node;
    auto& taken = picks[node];
    for (int32_t slot; (slot = choose_device(mine, bytes)) >= 0;) {
      taken.push_back(slot);
      mine[static_cast<size_t>(slot)].available = false;
    }
  }
  auto with_model = [&](const std::vector<int32_t>& xs, size_t n) {
    int32_t count = 0;
    for (size_t r = 0; r < n; ++r)
      count += all[static_cast<size_t>(xs[r])].has_model ? 1 : 0;
    return count;
  };
  auto wanted = static_cast<size_t>(std::max(ranks, 0));
  std::vector<int32_t> best;
  std::tuple<int32_t, int64_t, uint64_t, int32_t> best_score;
  for (const auto& [node, taken] : picks) {
    if (ranks < 1 || taken.size() < wanted)
      continue;
    std::vector<int32_t> gang(taken.begin(), taken.begin() + ranks);
    int64_t running = 0;
    uint64_t reserved = 0;
    for (auto slot : gang) {
      running += all[static_cast<size_t>(slot)].running;
      reserved += all[static_cast<size_t>(slot)].memory_reserved;
    }
    std::tuple<int32_t, int64_t, uint64_t, int32_t> score{
      ranks - with_model(gang, wanted), running, reserved,
      *std::min_element(gang.begin(), gang.end())};
    if (best.empty() || score < best_score) {
      best = gang;
      best_score = score;
    }
  }
  if (!best.empty() || !across_nodes || ranks < 1)
    return best;
  std::vector<std::tuple<int32_t, int32_t, int64_t>> order;
  for (const auto& [node, taken] : picks)
    order.emplace_back(-static_cast<int32_t>(taken.size()),
                       -with_model(taken, taken.size()), node);
  std::sort(order.begin(), order.end());
  std::vector<int32_t> gang;
  for (const auto& entry : order)
    for (auto slot : picks[std::get<2>(entry)])
      if (gang.size() < wanted)
        gang.push_back(slot);
  if (gang.size() < wanted)
    gang.clear();
  return gang;
}

/// The most present devices that run `model` with `bytes` of budget on
/// one node, or on all of them.
int32_t largest_gang_by_count(const std::vector<placement_entry>& entries,
                              const gpu::model_factory& factory,
                              const std::string& model, uint64_t bytes,
                              bool across_nodes) {
  std::map<int64_t, int32_t> per_node;
  int32_t total = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& x = entries[i];
    if (x.in_use && x.present && factory.runs_on(x.kind) && serves(x, model)
        && x.budget >= bytes) {
      ++per_node[node_of(x, i)];
      ++total;
    }
  }
  int32_t largest = 0;
  for (const auto& [node, count] : per_node)
    largest = std::max(largest, count);
  return across_nodes ? total : largest;
}

/// A device that is up on `node`, with 8 GiB of budget.
placement_entry up_device(int32_t node, int32_t running = 0,
                          std::vector<std::string> models = {}) {
  placement_entry x;
  x.in_use = x.present = x.in_service = x.up = true;
  x.budget = 8 * test::gib;
  x.node = node;
  x.running = running;
  x.models = std::move(models);
  return x;
}

} // namespace

TEST_CASE("the placement index chooses what choose_device chooses over "
          "thousands of random device sets, serving profiles and changes",
          "[placement_index]") {
  std::mt19937 rng{20261127};
  auto profiles = profiles_of_model_lists();
  for (int round = 0; round < 200; ++round) {
    auto slots = std::uniform_int_distribution<int32_t>{1, 3}(rng);
    placement_index index{slots};
    std::vector<placement_entry> entries(
      std::uniform_int_distribution<size_t>{0, 24}(rng));
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i] = random_entry(rng);
      index.set(static_cast<int32_t>(i), entries[i]);
    }
    // Changes to random slots, each followed by queries: half of them
    // change only the load, as jobs starting and ending do.
    for (int step = 0; step < 40; ++step) {
      if (!entries.empty()) {
        auto i =
          std::uniform_int_distribution<size_t>{0, entries.size() - 1}(rng);
        if (chance(rng, 0.5)) {
          entries[i] = random_entry(rng);
        } else {
          entries[i].running =
            std::uniform_int_distribution<int32_t>{0, 3}(rng);
          entries[i].reserved = some_bytes(rng);
          if (chance(rng, 0.3))
            entries[i].budget = some_bytes(rng);
        }
        index.set(static_cast<int32_t>(i), entries[i]);
      }
      for (const auto& factory : factories) {
        for (const auto& model : job_models) {
          const auto& serving = profiles.serving(model);
          std::vector<placement_candidate> candidates;
          for (const auto& x : entries)
            candidates.push_back(candidate_of(x, slots, factory, model));
          auto bytes = some_bytes(rng);
          INFO("round " << round << ", step " << step << ", model " << model
                        << ", bytes " << bytes);
          CHECK(index.choose(factory, serving, model, bytes)
                == choose_device(candidates, bytes));
          auto free_for = false;
          auto present = false;
          auto in_service = false;
          auto node_serves = false;
          uint64_t budget_for = 0;
          for (const auto& x : entries) {
            if (!x.in_use)
              continue;
            node_serves = node_serves || (x.in_service && serves(x, model));
            auto runs = factory.runs_on(x.kind) && serves(x, model);
            free_for = free_for || (runs && x.up && x.running < slots);
            present = present || (runs && x.present);
            in_service = in_service || (runs && x.in_service);
            if (runs && x.present)
              budget_for = std::max(budget_for, x.budget);
          }
          CHECK(index.any_free_slot_for(factory, serving) == free_for);
          CHECK(index.any_present_for(factory, serving) == present);
          CHECK(index.any_in_service_for(factory, serving) == in_service);
          CHECK(index.any_in_service_in(serving) == node_serves);
          CHECK(index.largest_budget_for(factory, serving) == budget_for);
        }
      }
      auto any_free = false;
      uint64_t budget = 0;
      for (const auto& x : entries) {
        any_free = any_free || (x.in_use && x.up && x.running < slots);
        if (x.in_use && x.present)
          budget = std::max(budget, x.budget);
      }
      CHECK(index.any_free_slot() == any_free);
      CHECK(index.largest_budget() == budget);
    }
  }
}

TEST_CASE("a job goes only to devices whose profile serves its model, to "
          "the best of those even when a device of another profile is better",
          "[placement_index]") {
  serving_profiles profiles;
  auto names = profiles.acquire({"a", "b"});
  auto everything = profiles.acquire({"*"});
  auto prefixed = profiles.acquire({"c", "d*"});
  placement_index index{2};
  auto device = [&](int32_t slot, int32_t profile, int32_t running,
                    std::vector<std::string> loaded) {
    placement_entry x;
    x.in_use = x.present = x.in_service = x.up = true;
    x.budget = 8 * test::gib;
    x.profile = profile;
    x.running = running;
    x.models = std::move(loaded);
    index.set(slot, x);
  };
  device(0, names, 0, {});
  device(1, everything, 1, {});
  device(2, prefixed, 0, {"dx"});
  const auto& every_kind = factories[0];
  auto choose = [&](const std::string& model) {
    return index.choose(every_kind, profiles.serving(model), model, 0);
  };
  CHECK(choose("a") == 0);
  CHECK(choose("zz") == 1);
  CHECK(choose("c") == 2);
  CHECK(choose("dx") == 2);
  CHECK(choose("d") == 1);
  // The device that serves c fills up: its jobs go to the one that serves
  // everything, then nowhere, while jobs of a still have their device.
  device(2, prefixed, 2, {"dx"});
  CHECK(choose("c") == 1);
  device(1, everything, 2, {});
  CHECK(choose("c") == -1);
  CHECK(choose("a") == 0);
  CHECK_FALSE(index.any_free_slot_for(every_kind, profiles.serving("c")));
  CHECK(index.any_free_slot_for(every_kind, profiles.serving("a")));
  CHECK(index.any_in_service_in(profiles.serving("c")));
  // Without the device that serves everything, nothing serves zz.
  index.set(1, placement_entry{});
  CHECK_FALSE(index.any_in_service_in(profiles.serving("zz")));
  CHECK(index.any_in_service_in(profiles.serving("b")));
}

TEST_CASE("the placement index chooses the gang that choose_device's order "
          "and the gang rules give, over random device sets, nodes and "
          "changes",
          "[placement_index][gang]") {
  std::mt19937 rng{20261201};
  auto profiles = profiles_of_model_lists();
  for (int round = 0; round < 120; ++round) {
    auto slots = std::uniform_int_distribution<int32_t>{1, 3}(rng);
    placement_index index{slots};
    std::vector<placement_entry> entries(
      std::uniform_int_distribution<size_t>{0, 32}(rng));
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i] = random_gang_entry(rng);
      index.set(static_cast<int32_t>(i), entries[i]);
    }
    for (int step = 0; step < 30; ++step) {
      if (!entries.empty()) {
        auto i =
          std::uniform_int_distribution<size_t>{0, entries.size() - 1}(rng);
        if (chance(rng, 0.3)) {
          entries[i] = random_gang_entry(rng);
        } else if (chance(rng, 0.3)) {
          entries[i].node = std::uniform_int_distribution<int32_t>{-1, 3}(rng);
        } else {
          entries[i].running =
            std::uniform_int_distribution<int32_t>{0, 3}(rng);
          entries[i].reserved = some_bytes(rng) / 4;
          if (chance(rng, 0.3))
            entries[i].budget = some_bytes(rng);
        }
        index.set(static_cast<int32_t>(i), entries[i]);
      }
      for (const auto& factory : factories) {
        for (const auto& model : job_models) {
          const auto& serving = profiles.serving(model);
          std::vector<gang_candidate> candidates;
          for (const auto& x : entries)
            candidates.push_back(
              {candidate_of(x, slots, factory, model), x.node});
          auto bytes = some_bytes(rng) / 4;
          auto ranks = std::uniform_int_distribution<int32_t>{0, 6}(rng);
          INFO("round " << round << ", step " << step << ", model " << model
                        << ", bytes " << bytes << ", ranks " << ranks);
          for (auto across : {false, true}) {
            auto expected = gang_by_choose_device(entries, slots, factory,
                                                  model, bytes, ranks, across);
            CHECK(
              index.choose_gang(factory, serving, model, bytes, ranks, across)
              == expected);
            CHECK(choose_gang_devices(candidates, bytes, ranks, across)
                  == expected);
            CHECK(
              index.largest_gang_for(factory, serving, bytes, across)
              == largest_gang_by_count(entries, factory, model, bytes, across));
          }
          auto single = index.choose(factory, serving, model, bytes);
          CHECK(index.choose_gang(factory, serving, model, bytes, 1, false)
                == (single < 0 ? std::vector<int32_t>{}
                               : std::vector<int32_t>{single}));
        }
      }
    }
  }
}

TEST_CASE("a gang goes to one node that can take it whole rather than "
          "spread over less loaded devices",
          "[placement_index][gang]") {
  serving_profiles profiles;
  profiles.acquire({"*"});
  placement_index index{4};
  // Node 0: 2 idle devices. Node 1: 3 busy ones. Node 2: 1 idle one.
  int32_t slot = 0;
  for (auto node : {0, 0})
    index.set(slot++, up_device(node));
  for (auto node : {1, 1, 1})
    index.set(slot++, up_device(node, 3));
  index.set(slot++, up_device(2));
  const auto& serving = profiles.serving("m");
  const auto& any_kind = factories[0];
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 3, true)
        == std::vector<int32_t>{2, 3, 4});
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 3, false)
        == std::vector<int32_t>{2, 3, 4});
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 2, false)
        == std::vector<int32_t>{0, 1});
  // With node 1 full, 3 ranks fit only spread, and only if allowed.
  index.set(2, up_device(1, 4));
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 3, false).empty());
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 3, true)
        == std::vector<int32_t>{0, 1, 3});
}

TEST_CASE("a spread gang takes the fewest nodes, those with the most free "
          "devices first, then those with the model",
          "[placement_index][gang]") {
  serving_profiles profiles;
  profiles.acquire({"*"});
  placement_index index{1};
  // Node 3: 1 device; node 2: 2; node 1: 3; node 0: 2, one with the model.
  std::vector<int32_t> nodes{3, 2, 2, 1, 1, 1, 0, 0};
  for (size_t i = 0; i < nodes.size(); ++i)
    index.set(static_cast<int32_t>(i), up_device(nodes[i]));
  index.set(7, up_device(0, 0, {"m"}));
  const auto& serving = profiles.serving("m");
  const auto& any_kind = factories[0];
  // 3 + 2: node 0 before node 2 for its model, its device with the model
  // first.
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 5, true)
        == std::vector<int32_t>{3, 4, 5, 7, 6});
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 4, true)
        == std::vector<int32_t>{3, 4, 5, 7});
  // Without the model, node 0 and node 2 tie: the lower number first.
  CHECK(index.choose_gang(any_kind, serving, "other", 0, 4, true)
        == std::vector<int32_t>{3, 4, 5, 6});
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 8, true).size() == 8);
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 9, true).empty());
  CHECK(index.largest_gang_for(any_kind, serving, 0, false) == 3);
  CHECK(index.largest_gang_for(any_kind, serving, 0, true) == 8);
}

TEST_CASE("among nodes that can each take a gang, the one whose devices "
          "have the model wins, then the less loaded one",
          "[placement_index][gang]") {
  serving_profiles profiles;
  profiles.acquire({"*"});
  placement_index index{4};
  index.set(0, up_device(0));
  index.set(1, up_device(0));
  index.set(2, up_device(1, 2));
  index.set(3, up_device(1, 2, {"m"}));
  index.set(4, up_device(2, 1));
  index.set(5, up_device(2, 1));
  const auto& serving = profiles.serving("m");
  const auto& any_kind = factories[0];
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 2, false)
        == std::vector<int32_t>{3, 2});
  CHECK(index.choose_gang(any_kind, serving, "other", 0, 2, false)
        == std::vector<int32_t>{0, 1});
  // Equally loaded: the node with the lowest slot.
  index.set(0, up_device(0, 1));
  index.set(1, up_device(0, 1));
  CHECK(index.choose_gang(any_kind, serving, "other", 0, 2, false)
        == std::vector<int32_t>{0, 1});
  // Less loaded beats a lower slot; within the node, the idler first.
  index.set(3, up_device(1, 1));
  index.set(2, up_device(1, 0));
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 2, false)
        == std::vector<int32_t>{2, 3});
}

TEST_CASE("a gang gets every rank or none: one device short, or short of "
          "memory on one, gets nothing",
          "[placement_index][gang]") {
  serving_profiles profiles;
  profiles.acquire({"*"});
  placement_index index{2};
  for (int32_t i = 0; i < 4; ++i)
    index.set(i, up_device(0));
  const auto& serving = profiles.serving("m");
  const auto& any_kind = factories[0];
  CHECK(
    index.choose_gang(any_kind, serving, "m", 8 * test::gib, 4, false).size()
    == 4);
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 5, true).empty());
  auto reserved = up_device(0, 1);
  reserved.reserved = test::gib;
  index.set(2, reserved);
  CHECK(
    index.choose_gang(any_kind, serving, "m", 8 * test::gib, 4, true).empty());
  CHECK(index.choose_gang(any_kind, serving, "m", 7 * test::gib, 4, false)
        == std::vector<int32_t>{0, 1, 3, 2});
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 0, true).empty());
  // Each rank needs a device of its own, whatever the slots each has.
  CHECK(index.choose_gang(any_kind, serving, "m", 0, 5, true).empty());
  auto gang = index.choose_gang(any_kind, serving, "m", 0, 4, false);
  std::sort(gang.begin(), gang.end());
  CHECK(gang == std::vector<int32_t>{0, 1, 2, 3});
  // The budget, not what is free, bounds the largest gang.
  CHECK(index.largest_gang_for(any_kind, serving, 8 * test::gib, false) == 4);
  CHECK(index.largest_gang_for(any_kind, serving, 9 * test::gib, true) == 0);
}
