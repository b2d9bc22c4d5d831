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
