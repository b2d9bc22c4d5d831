#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/placement.hpp"

using vidnode::actors::choose_device;
using vidnode::actors::placement_candidate;

namespace {

constexpr uint64_t gib = 1ull << 30;

/// An available device with 2 slots and 16 GiB, idle, without the model.
placement_candidate device() {
  placement_candidate x;
  x.available = true;
  x.slots = 2;
  x.memory_bytes = 16 * gib;
  return x;
}

placement_candidate running(int32_t jobs) {
  auto x = device();
  x.running = jobs;
  return x;
}

placement_candidate reserved(uint64_t bytes) {
  auto x = device();
  x.memory_reserved = bytes;
  return x;
}

placement_candidate with_model(placement_candidate x) {
  x.has_model = true;
  return x;
}

} // namespace

TEST_CASE("a device that has the model wins even when busier", "[placement]") {
  CHECK(choose_device({device(), with_model(running(1))}, gib) == 1);
  CHECK(choose_device({with_model(reserved(8 * gib)), device()}, gib) == 0);
}

TEST_CASE("among devices alike in model the one running fewest jobs wins",
          "[placement]") {
  CHECK(choose_device({running(1), device(), running(1)}, gib) == 1);
  CHECK(choose_device({with_model(running(1)), with_model(device())}, gib)
        == 1);
}

TEST_CASE("with equal load the device with least memory reserved wins",
          "[placement]") {
  CHECK(choose_device({reserved(4 * gib), reserved(2 * gib)}, gib) == 1);
  CHECK(choose_device({reserved(2 * gib), running(1)}, gib) == 0);
}

TEST_CASE("a full tie goes to the lowest index", "[placement]") {
  CHECK(choose_device({device(), device(), device()}, gib) == 0);
}

TEST_CASE("a device without a free slot is not chosen", "[placement]") {
  CHECK(choose_device({with_model(running(2)), running(1)}, gib) == 1);
  auto no_slots = device();
  no_slots.slots = 0;
  CHECK(choose_device({no_slots}, 0) == -1);
}

TEST_CASE("a device without enough unreserved memory is not chosen",
          "[placement]") {
  CHECK(choose_device({with_model(reserved(13 * gib)), running(1)}, 4 * gib)
        == 1);
  CHECK(choose_device({with_model(reserved(12 * gib)), running(1)}, 4 * gib)
        == 0);
  CHECK(choose_device({device()}, 16 * gib + 1) == -1);
}

TEST_CASE("an over-reserved device is not chosen even for a tiny job",
          "[placement]") {
  CHECK(choose_device({reserved(17 * gib)}, 1) == -1);
}

TEST_CASE("an unavailable device is not chosen even with the model",
          "[placement]") {
  auto down = with_model(device());
  down.available = false;
  CHECK(choose_device({down, running(1)}, gib) == 1);
  CHECK(choose_device({down}, gib) == -1);
}

TEST_CASE("no devices means no choice", "[placement]") {
  CHECK(choose_device({}, 0) == -1);
}
