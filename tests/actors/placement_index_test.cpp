#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/placement.hpp"
#include "vidnode/actors/placement_index.hpp"
#include "vidnode/gpu/model_catalog.hpp"

#include "support/random_devices.hpp"

using namespace vidnode;
using actors::choose_device;
using actors::placement_candidate;
using actors::placement_entry;
using actors::placement_index;
using runtime::device_kind;
using test::all_kinds;
using test::chance;
using test::factories;
using test::model_names;
using test::pick;
using test::some_bytes;

namespace {

placement_entry random_entry(std::mt19937& rng) {
  placement_entry x;
  x.in_use = chance(rng, 0.9);
  x.present = chance(rng, 0.9);
  x.in_service = x.present && chance(rng, 0.8);
  x.up = x.in_service && chance(rng, 0.8);
  x.kind = pick(rng, all_kinds);
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
  c.available = x.up && factory.runs_on(x.kind);
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
          "thousands of random device sets and changes",
          "[placement_index]") {
  std::mt19937 rng{20261127};
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
        for (const auto& model : {"a", "b", "c", "d"}) {
          std::vector<placement_candidate> candidates;
          for (const auto& x : entries)
            candidates.push_back(candidate_of(x, slots, factory, model));
          auto bytes = some_bytes(rng);
          INFO("round " << round << ", step " << step << ", model " << model
                        << ", bytes " << bytes);
          CHECK(index.choose(factory, model, bytes)
                == choose_device(candidates, bytes));
        }
        auto free_for = false;
        auto present = false;
        auto in_service = false;
        uint64_t budget_for = 0;
        for (const auto& x : entries) {
          if (!x.in_use)
            continue;
          auto runs = factory.runs_on(x.kind);
          free_for = free_for || (runs && x.up && x.running < slots);
          present = present || (runs && x.present);
          in_service = in_service || (runs && x.in_service);
          if (runs && x.present)
            budget_for = std::max(budget_for, x.budget);
        }
        CHECK(index.any_free_slot_for(factory) == free_for);
        CHECK(index.any_present_for(factory) == present);
        CHECK(index.any_in_service_for(factory) == in_service);
        CHECK(index.largest_budget_for(factory) == budget_for);
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
