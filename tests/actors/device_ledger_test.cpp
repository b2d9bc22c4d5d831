#include <catch2/catch.hpp>

#include "vidnode/actors/device_ledger.hpp"
#include "vidnode/gpu/model_catalog.hpp"

using namespace vidnode;
using actors::device_ledger;
using actors::device_slot;

namespace {

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

} // namespace

TEST_CASE("the device ledger numbers each node's devices in slots and finds "
          "them by node and index",
          "[device_ledger]") {
  device_ledger ledger;
  auto a0 = ledger.add("a", sim_device(0, 100));
  auto a1 = ledger.add("a", sim_device(1, 100));
  auto b0 = ledger.add("b", sim_device(0, 100));
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
  ledger.add("a", sim_device(0, 100));
  auto b0 = ledger.add("b", sim_device(0, 100));
  ledger.free(b0);
  CHECK(ledger.find(b0) == nullptr);
  CHECK(ledger.slot_of("b", 0) == -1);
  CHECK(ledger.statuses(1).size() == 1);
  CHECK(ledger.add("c", sim_device(0, 100)) == b0);
  CHECK(ledger.at(b0).node == "c");
  CHECK(ledger.find(-1) == nullptr);
  CHECK(ledger.find(7) == nullptr);
}

TEST_CASE("lost and quarantined devices take no jobs, and a lost node's "
          "devices still count for what the cluster can run",
          "[device_ledger]") {
  device_ledger ledger;
  auto a0 = ledger.add("a", sim_device(0, 100));
  auto b0 = ledger.add("b", sim_device(0, 300));
  CHECK_FALSE(ledger.any_free_slot(1));
  ledger.at(a0).state = device_slot::health::up;
  CHECK(ledger.any_free_slot(1));
  ledger.at(a0).running.push_back(runtime::job_id{1});
  CHECK_FALSE(ledger.any_free_slot(1));
  CHECK(ledger.any_free_slot(2));
  CHECK(ledger.largest_budget() == 300);
  CHECK(ledger.largest_budget_for(sim_model()) == 300);
  ledger.at(b0).state = device_slot::health::lost;
  CHECK(ledger.largest_budget() == 300);
  CHECK(ledger.largest_budget_for(sim_model()) == 300);
  CHECK(ledger.any_runs(sim_model()));
  CHECK(ledger.slot_of("b", 0) == -1);
  CHECK_FALSE(ledger.no_device_left_for(sim_model()));
  ledger.at(a0).state = device_slot::health::quarantined;
  ledger.at(a0).last_error = "worn out";
  auto why = ledger.no_device_left_for(sim_model());
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
