#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/device_ledger.hpp"
#include "vidnode/actors/placement.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/model_pattern.hpp"

#include "support/random_devices.hpp"

using namespace vidnode;
using actors::choose_device;
using actors::device_ledger;
using actors::device_slot;
using actors::placement_candidate;
using test::all_kinds;
using test::chance;
using test::factories;
using test::gib;
using test::model_names;
using test::pick;
using test::some_bytes;

namespace {

/// What a node with the built-in models serves.
const std::vector<std::string> sim_models{"sim", "sim-*"};

/// What a node that serves every model registers.
const std::vector<std::string> every_model{"*"};

runtime::device_info sim_device(int32_t index, uint64_t memory) {
  runtime::device_info info;
  info.index = index;
  info.kind = runtime::device_kind::sim;
  info.ordinal = index;
  info.memory_bytes = memory;
  return info;
}

const gpu::model_factory& sim_model() {
  static auto catalog = [] {
    std::string reason;
    auto made = gpu::model_catalog::make({}, reason);
    REQUIRE(made);
    return made;
  }();
  return *catalog->find("sim");
}

/// The models the random nodes n0 to n4 serve: every model, two names, a
/// prefix, the same two names in another order, none.
const std::vector<std::vector<std::string>> node_models{
  {"*"}, {"a", "b"}, {"d*"}, {"b", "a", "b"}, {}};

/// The name of random node `i`.
std::string node_name(int i) {
  return "n" + std::to_string(i);
}

/// Whether random node `node` serves `model`, from node_models directly.
bool node_serves(const std::string& node, const std::string& model) {
  const auto& patterns = node_models.at(std::stoul(node.substr(1)));
  return std::any_of(patterns.begin(), patterns.end(), [&](auto& pattern) {
    return runtime::model_pattern_matches(pattern, model);
  });
}

/// Whether `device` of a random node can run a job of `model`.
bool can_run(const device_slot& device, const gpu::model_factory& factory,
             const std::string& model) {
  return factory.runs_on(device.info.kind) && node_serves(device.node, model);
}

/// choose_device's candidates for every slot of `ledger` of random nodes,
/// for a job without crash history.
std::vector<placement_candidate>
candidates_of(const device_ledger& ledger, int32_t slots,
              const gpu::model_factory& factory, const std::string& model) {
  std::vector<placement_candidate> result(static_cast<size_t>(ledger.size()));
  ledger.for_each([&](int32_t slot, const device_slot& device) {
    auto& c = result[static_cast<size_t>(slot)];
    c.available = device.state == device_slot::health::up
                  && can_run(device, factory, model);
    c.running = static_cast<int32_t>(device.running.size());
    c.slots = slots;
    c.memory_bytes = device.budget();
    c.memory_reserved = device.reserved;
    auto cached = device.find_model(model);
    c.has_model = cached != nullptr && cached->loaded;
  });
  return result;
}

runtime::device_info random_device(std::mt19937& rng, int32_t index) {
  runtime::device_info info;
  info.index = index;
  info.kind = pick(rng, all_kinds);
  info.memory_bytes = some_bytes(rng);
  return info;
}

/// One random change to the device in `slot`, made through `device`.
void change(std::mt19937& rng, device_slot& device, int32_t slot) {
  using health = device_slot::health;
  switch (std::uniform_int_distribution<int>{0, 7}(rng)) {
    case 0:
      device.state =
        pick(rng, std::vector<health>{health::starting, health::up, health::up,
                                      health::up, health::restarting,
                                      health::quarantined, health::lost});
      break;
    case 1:
      device.running.push_back(runtime::job_id{static_cast<uint64_t>(slot)});
      break;
    case 2:
      if (!device.running.empty())
        device.running.pop_back();
      break;
    case 3:
      device.reserved = some_bytes(rng);
      break;
    case 4:
      device.resident = some_bytes(rng) / 2;
      break;
    case 5: {
      const auto& name = pick(rng, model_names);
      if (auto model = device.find_model(name))
        model->loaded = !model->loaded;
      else
        device.models.push_back({name, 1, chance(rng, 0.7)});
      break;
    }
    case 6:
      device.info.memory_bytes = some_bytes(rng);
      break;
    default:
      device.lose_worker();
      break;
  }
}

} // namespace

TEST_CASE("the device ledger numbers each node's devices in slots and finds "
          "them by node and index",
          "[device_ledger]") {
  device_ledger ledger;
  auto a0 = ledger.add("a", sim_device(0, 100), sim_models);
  auto a1 = ledger.add("a", sim_device(1, 100), sim_models);
  auto b0 = ledger.add("b", sim_device(0, 100), sim_models);
  CHECK(ledger.size() == 3);
  CHECK(ledger.slot_of("a", 0) == a0);
  CHECK(ledger.slot_of("a", 1) == a1);
  CHECK(ledger.slot_of("b", 0) == b0);
  CHECK(ledger.slot_of("b", 1) == -1);
  CHECK(ledger.slot_of("c", 0) == -1);
  CHECK(ledger.at(b0).node == "b");
  CHECK(ledger.at(b0).name == "sim:0");
}

TEST_CASE("a freed slot is empty and reused by the next device",
          "[device_ledger]") {
  device_ledger ledger;
  ledger.add("a", sim_device(0, 100), sim_models);
  auto b0 = ledger.add("b", sim_device(0, 100), sim_models);
  ledger.free(b0);
  CHECK(ledger.find(b0) == nullptr);
  CHECK(ledger.slot_of("b", 0) == -1);
  CHECK(ledger.statuses(1).size() == 1);
  CHECK(ledger.add("c", sim_device(0, 100), sim_models) == b0);
  CHECK(ledger.at(b0).node == "c");
  CHECK(ledger.find(-1) == nullptr);
  CHECK(ledger.find(7) == nullptr);
}

TEST_CASE("lost and quarantined devices take no jobs, and a lost node's "
          "devices still count for what the cluster can run",
          "[device_ledger]") {
  device_ledger ledger;
  auto a0 = ledger.add("a", sim_device(0, 100), sim_models);
  auto b0 = ledger.add("b", sim_device(0, 300), sim_models);
  CHECK_FALSE(ledger.any_free_slot(1));
  ledger.at(a0).state = device_slot::health::up;
  CHECK(ledger.any_free_slot(1));
  ledger.at(a0).running.push_back(runtime::job_id{1});
  CHECK_FALSE(ledger.any_free_slot(1));
  CHECK(ledger.any_free_slot(2));
  CHECK(ledger.largest_budget() == 300);
  CHECK(ledger.largest_budget_for(sim_model(), "sim") == 300);
  ledger.at(b0).state = device_slot::health::lost;
  CHECK(ledger.largest_budget() == 300);
  CHECK(ledger.largest_budget_for(sim_model(), "sim") == 300);
  CHECK(ledger.any_runs(sim_model(), "sim"));
  CHECK(ledger.slot_of("b", 0) == -1);
  CHECK_FALSE(ledger.no_device_left_for(sim_model(), "sim"));
  ledger.at(a0).state = device_slot::health::quarantined;
  ledger.at(a0).last_error = "worn out";
  auto why = ledger.no_device_left_for(sim_model(), "sim");
  REQUIRE(why);
  CHECK(why->find("sim:0: worn out") != std::string::npos);
  auto statuses = ledger.statuses(2);
  REQUIRE(statuses.size() == 2);
  CHECK(statuses[0].state == "quarantined");
  CHECK(statuses[1].state == "lost");
  CHECK(statuses[1].node == "b");
}

TEST_CASE("a device's budget leaves out what its loaded models hold",
          "[device_ledger]") {
  device_slot slot;
  slot.info = sim_device(0, 100);
  slot.resident = 30;
  CHECK(slot.budget() == 70);
  slot.resident = 300;
  CHECK(slot.budget() == 0);
  slot.state = device_slot::health::up;
  slot.worker = nullptr;
  slot.lose_worker();
  CHECK(slot.state == device_slot::health::restarting);
  slot.state = device_slot::health::quarantined;
  slot.lose_worker();
  CHECK(slot.state == device_slot::health::quarantined);
}

TEST_CASE("the ledger's choice follows every change made through find, at "
          "and for_each, through adds and frees of nodes serving different "
          "models",
          "[placement_index]") {
  std::mt19937 rng{8};
  auto add = [&](device_ledger& ledger, int node, int32_t index) {
    ledger.add(node_name(node), random_device(rng, index),
               node_models[static_cast<size_t>(node)]);
  };
  for (int round = 0; round < 40; ++round) {
    device_ledger ledger;
    auto slots = std::uniform_int_distribution<int32_t>{1, 3}(rng);
    int32_t next_index = 0;
    for (int i = 0; i < 12; ++i)
      add(ledger, i % 3, next_index++);
    for (int step = 0; step < 150; ++step) {
      auto slot = std::uniform_int_distribution<int32_t>{0, ledger.size()}(rng);
      switch (std::uniform_int_distribution<int>{0, 9}(rng)) {
        case 0:
          ledger.free(slot);
          break;
        case 1:
          add(ledger, step % 5, next_index++);
          break;
        case 2:
          ledger.for_each([&](int32_t i, device_slot& device) {
            if (chance(rng, 0.3))
              change(rng, device, i);
          });
          break;
        case 3:
          if (ledger.find(slot) != nullptr)
            change(rng, ledger.at(slot), slot);
          break;
        case 4:
          if (chance(rng, 0.2))
            slots = std::uniform_int_distribution<int32_t>{1, 3}(rng);
          break;
        default:
          if (auto device = ledger.find(slot))
            change(rng, *device, slot);
          break;
      }
      for (const auto& factory : factories) {
        for (const std::string model : {"a", "b", "d", "dx"}) {
          auto bytes = some_bytes(rng);
          INFO("round " << round << ", step " << step << ", model " << model
                        << ", bytes " << bytes);
          CHECK(ledger.choose(factory, model, bytes, slots)
                == choose_device(candidates_of(ledger, slots, factory, model),
                                 bytes));
          auto free_for = false;
          auto in_service = false;
          auto served = false;
          ledger.for_each([&](int32_t, const device_slot& device) {
            auto serving = device.present()
                           && device.state != device_slot::health::quarantined;
            served = served || (serving && node_serves(device.node, model));
            if (!can_run(device, factory, model))
              return;
            in_service = in_service || serving;
            free_for =
              free_for
              || (device.state == device_slot::health::up
                  && device.running.size() < static_cast<size_t>(slots));
          });
          CHECK(ledger.any_free_slot_for(factory, model, slots) == free_for);
          CHECK(ledger.any_in_service_for(factory, model) == in_service);
          CHECK(ledger.any_node_serves(model) == served);
          // The other queries are checked against a scan by the ledger
          // itself (VIDNODE_CHECK_PLACEMENT).
          ledger.largest_budget_for(factory, model);
          ledger.any_runs(factory, model);
          ledger.no_device_left_for(factory, model);
          auto ranks = std::uniform_int_distribution<int32_t>{1, 5}(rng);
          for (auto across : {false, true}) {
            ledger.choose_gang(factory, model, bytes / 2, ranks, across, slots);
            ledger.largest_gang_for(factory, model, bytes, across);
          }
        }
      }
      ledger.any_free_slot(slots);
      ledger.largest_budget();
    }
  }
}

TEST_CASE("a reference kept across a query is seen again once touched",
          "[placement_index]") {
  device_ledger ledger;
  runtime::device_info info;
  info.memory_bytes = 16 * gib;
  auto slot = ledger.add("a", info, every_model);
  auto& device = ledger.at(slot);
  CHECK(ledger.choose(factories[0], "a", gib, 1) == -1);
  device.state = device_slot::health::up;
  ledger.touch(slot);
  CHECK(ledger.choose(factories[0], "a", gib, 1) == slot);
  CHECK(ledger.any_free_slot(1));
  ledger.at(slot).running.push_back(runtime::job_id{1});
  CHECK_FALSE(ledger.any_free_slot(1));
  CHECK(ledger.choose(factories[0], "a", gib, 1) == -1);
  CHECK(ledger.choose(factories[0], "a", gib, 2) == slot);
}

TEST_CASE("a job goes to a device with its model even when another has "
          "room, and to the least loaded one without",
          "[placement_index]") {
  device_ledger ledger;
  runtime::device_info info;
  info.memory_bytes = 16 * gib;
  for (int32_t i = 0; i < 3; ++i) {
    info.index = i;
    ledger.at(ledger.add("a", info, every_model)).state =
      device_slot::health::up;
  }
  ledger.at(2).models.push_back({"m", 1, true});
  ledger.at(2).running.push_back(runtime::job_id{1});
  ledger.at(0).reserved = 4 * gib;
  CHECK(ledger.choose(factories[0], "m", gib, 2) == 2);
  CHECK(ledger.choose(factories[0], "other", gib, 2) == 1);
  CHECK(ledger.choose(factories[0], "m", gib, 1) == 1);
  CHECK(ledger.choose(factories[0], "m", 13 * gib, 1) == 1);
  CHECK(ledger.choose(factories[0], "m", 16 * gib, 1) == 1);
  CHECK(ledger.choose(factories[0], "m", 16 * gib + 1, 2) == -1);
  CHECK(ledger.choose(factories[3], "m", gib, 2) == -1);
}

TEST_CASE("a job goes only to devices of nodes that serve its model, and a "
          "lost node's models count until its slots are freed",
          "[device_ledger]") {
  device_ledger ledger;
  const std::vector<std::string> with_toy{"sim", "sim-*", "toy"};
  auto a0 = ledger.add("a", sim_device(0, 100), sim_models);
  auto b0 = ledger.add("b", sim_device(0, 300), with_toy);
  auto c0 = ledger.add("c", sim_device(0, 100), {"sim-*", "sim"});
  for (auto slot : {a0, b0, c0})
    ledger.at(slot).state = device_slot::health::up;
  // b is the busiest, and the only one that serves toy.
  ledger.at(b0).running.push_back(runtime::job_id{1});
  const auto& sim = sim_model();
  CHECK(ledger.choose(sim, "toy", 0, 2) == b0);
  CHECK(ledger.choose(sim, "sim", 0, 2) == a0);
  CHECK(ledger.choose(sim, "toy", 0, 1) == -1);
  CHECK_FALSE(ledger.any_free_slot_for(sim, "toy", 1));
  CHECK(ledger.any_free_slot_for(sim, "sim-x", 1));
  CHECK(ledger.largest_budget_for(sim, "toy") == 300);
  CHECK(ledger.largest_budget_for(sim, "sim") == 300);
  CHECK(ledger.largest_budget_for(sim, "other") == 0);
  CHECK_FALSE(ledger.any_runs(sim, "other"));
  // Nodes that serve the same models share one profile.
  CHECK(ledger.at(a0).profile == ledger.at(c0).profile);
  CHECK(ledger.at(a0).profile != ledger.at(b0).profile);
  CHECK(ledger.served_by(ledger.at(c0)) == sim_models);
  CHECK(ledger.status_of(b0, 1).served_models == with_toy);
  ledger.at(b0).state = device_slot::health::lost;
  CHECK_FALSE(ledger.any_in_service_for(sim, "toy"));
  CHECK_FALSE(ledger.any_node_serves("toy"));
  CHECK(ledger.any_runs(sim, "toy"));
  CHECK_FALSE(ledger.no_device_left_for(sim, "toy"));
  CHECK(ledger.any_node_serves("sim"));
  ledger.free(b0);
  CHECK_FALSE(ledger.any_runs(sim, "toy"));
  CHECK(ledger.largest_budget_for(sim, "toy") == 0);
  // A node that serves toy again gets the freed slot and a fresh profile.
  auto d0 = ledger.add("d", sim_device(0, 200), {"toy"});
  ledger.at(d0).state = device_slot::health::up;
  CHECK(ledger.choose(sim, "toy", 0, 1) == d0);
  CHECK(ledger.choose(sim, "sim", 0, 1) == a0);
  CHECK(ledger.served_by(ledger.at(d0)) == std::vector<std::string>{"toy"});
}

TEST_CASE("a gang goes only to devices that are up, on one node if one has "
          "enough, and finding none changes nothing",
          "[device_ledger][gang]") {
  using health = device_slot::health;
  device_ledger ledger;
  std::vector<int32_t> a;
  std::vector<int32_t> b;
  for (int32_t i = 0; i < 4; ++i) {
    a.push_back(ledger.add("a", sim_device(i, 16 * gib), every_model));
    b.push_back(ledger.add("b", sim_device(i, 16 * gib), every_model));
  }
  CHECK(ledger.at(a[0]).node_number == ledger.at(a[3]).node_number);
  CHECK(ledger.at(a[0]).node_number != ledger.at(b[0]).node_number);
  for (auto slot : {a[0], b[0], b[1], b[3]})
    ledger.at(slot).state = health::up;
  ledger.at(a[2]).state = health::quarantined;
  ledger.at(a[3]).state = health::restarting;
  ledger.at(b[2]).state = health::lost;
  const auto& sim = sim_model();
  CHECK(ledger.choose_gang(sim, "m", gib, 3, false, 2)
        == std::vector<int32_t>{b[0], b[1], b[3]});
  // Each rank needs its memory on its own device: 3 x 10 GiB fit on b.
  CHECK(ledger.choose_gang(sim, "m", 10 * gib, 3, false, 2).size() == 3);
  CHECK(ledger.choose_gang(sim, "m", 17 * gib, 1, true, 2).empty());
  CHECK(ledger.choose_gang(sim, "m", gib, 4, false, 2).empty());
  CHECK(ledger.choose_gang(sim, "m", gib, 4, true, 2)
        == std::vector<int32_t>{b[0], b[1], b[3], a[0]});
  ledger.at(b[1]).running.push_back(runtime::job_id{1});
  ledger.at(b[1]).reserved = 16 * gib - 1;
  CHECK(ledger.choose_gang(sim, "m", gib, 4, true, 2).empty());
  CHECK(ledger.choose_gang(sim, "m", gib, 3, true, 1)
        == std::vector<int32_t>{b[0], b[3], a[0]});
  CHECK(ledger.choose_gang(sim, "m", gib, 3, false, 1).empty());
  // Nothing was reserved for the gangs that did not fit.
  for (auto slot : {a[0], b[0], b[3]}) {
    CHECK(ledger.at(slot).running.empty());
    CHECK(ledger.at(slot).reserved == 0);
  }
  CHECK(ledger.at(b[1]).running.size() == 1);
  // What could ever run counts every device in the ledger, whatever its
  // health or load, as largest_budget_for does.
  CHECK(ledger.largest_gang_for(sim, "m", 16 * gib, false) == 4);
  CHECK(ledger.largest_gang_for(sim, "m", 16 * gib, true) == 8);
  CHECK(ledger.largest_gang_for(sim, "m", 16 * gib + 1, true) == 0);
  CHECK(ledger.largest_gang_for(factories[3], "m", gib, true) == 0);
  ledger.at(b[0]).resident = 10 * gib;
  ledger.at(a[1]).resident = 10 * gib;
  CHECK(ledger.largest_gang_for(sim, "m", 8 * gib, false) == 3);
  CHECK(ledger.largest_gang_for(sim, "m", 8 * gib, true) == 6);
  CHECK(ledger.largest_gang_for(sim, "m", 6 * gib, false) == 4);
}

TEST_CASE("a node's number is shared by its devices and reused once every "
          "one of them is freed",
          "[device_ledger][gang]") {
  device_ledger ledger;
  auto a0 = ledger.add("a", sim_device(0, gib), every_model);
  auto b0 = ledger.add("b", sim_device(0, gib), every_model);
  auto a1 = ledger.add("a", sim_device(1, gib), every_model);
  auto a = ledger.at(a0).node_number;
  CHECK(ledger.at(a1).node_number == a);
  CHECK(ledger.at(b0).node_number != a);
  ledger.free(a0);
  CHECK(ledger.at(ledger.add("c", sim_device(0, gib), every_model)).node_number
        != a);
  ledger.free(a1);
  auto c1 = ledger.add("c", sim_device(1, gib), every_model);
  auto d0 = ledger.add("d", sim_device(0, gib), every_model);
  CHECK(ledger.at(d0).node_number == a);
  CHECK(ledger.at(c1).node_number != ledger.at(b0).node_number);
  for (auto slot : {b0, d0})
    ledger.at(slot).state = device_slot::health::up;
  CHECK(ledger.largest_gang_for(sim_model(), "m", gib, false) == 2);
  CHECK(ledger.largest_gang_for(sim_model(), "m", gib, true) == 4);
  CHECK(ledger.choose_gang(sim_model(), "m", gib, 2, false, 1).empty());
  CHECK(ledger.choose_gang(sim_model(), "m", gib, 2, true, 1).size() == 2);
}
