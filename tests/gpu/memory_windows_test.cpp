// Which memory measurements a device's lanes may attribute to one job
// (gpu/'s private memory_windows.hpp: plain C++, tested on any machine).

#include "../../gpu/src/memory_windows.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

using vidnode::gpu::memory_windows;

namespace {

/// open() and close() that record whether their callbacks ran.
struct probe {
  explicit probe(memory_windows& on) : windows(on) {}

  memory_windows& windows;
  bool reset = false;
  memory_windows::ticket ticket;

  void open() {
    ticket = windows.open([&] { reset = true; });
  }

  bool close() {
    return windows.close(ticket, [] {});
  }
};

} // namespace

TEST_CASE("a measurement window that no other overlaps is clean, and it "
          "alone resets the statistics",
          "[memory_windows]") {
  memory_windows windows;
  for (int round = 0; round < 3; ++round) {
    probe a{windows};
    a.open();
    CHECK(a.reset);
    CHECK(a.ticket.alone);
    CHECK(windows.open_windows() == 1);
    bool read = false;
    CHECK(windows.close(a.ticket, [&] { read = true; }));
    CHECK(read);
    CHECK(windows.open_windows() == 0);
  }
}

TEST_CASE("windows that overlap are none of them clean, whichever opened "
          "first and whichever closed first",
          "[memory_windows]") {
  memory_windows windows;
  SECTION("nested: the inner opens and closes inside the outer") {
    probe outer{windows};
    probe inner{windows};
    outer.open();
    inner.open();
    CHECK(outer.reset);
    CHECK_FALSE(inner.reset);
    CHECK_FALSE(inner.close());
    CHECK_FALSE(outer.close());
  }
  SECTION("staggered: the first closes while the second is open") {
    probe first{windows};
    probe second{windows};
    first.open();
    second.open();
    CHECK_FALSE(second.reset);
    CHECK_FALSE(first.close());
    CHECK_FALSE(second.close());
  }
  CHECK(windows.open_windows() == 0);
  probe later{windows};
  later.open();
  CHECK(later.reset);
  CHECK(later.close());
}

TEST_CASE("each device has its own registry of windows", "[memory_windows]") {
  auto& zero = memory_windows::of(0);
  auto& one = memory_windows::of(1);
  CHECK(&zero == &memory_windows::of(0));
  CHECK(&zero != &one);
  probe on_zero{zero};
  probe on_one{one};
  on_zero.open();
  on_one.open();
  CHECK(on_one.reset);
  CHECK(on_one.close());
  CHECK(on_zero.close());
}

TEST_CASE("under threads that open and close windows at once, a window is "
          "clean only when nothing overlapped it",
          "[memory_windows]") {
  memory_windows windows;
  std::atomic<int32_t> inside{0};
  std::atomic<int32_t> resets_while_shared{0};
  std::atomic<int32_t> clean_while_shared{0};
  std::atomic<int32_t> clean{0};
  std::atomic<bool> go{false};
  constexpr int rounds = 5000;
  auto lane = [&] {
    while (!go.load())
      std::this_thread::yield();
    for (int i = 0; i < rounds; ++i) {
      auto ticket = windows.open([&] {
        if (inside.load() != 0)
          ++resets_while_shared;
      });
      // A measured call: what it allocates is seen by every open window.
      auto others = inside.fetch_add(1);
      for (int spin = 0; spin < 64; ++spin)
        others += inside.load() - 1;
      auto overlapped = others != 0;
      inside.fetch_sub(1);
      auto was_clean = windows.close(ticket, [&] {
        if (inside.load() != 0)
          ++clean_while_shared;
      });
      if (was_clean && overlapped)
        ++clean_while_shared;
      if (was_clean)
        ++clean;
    }
  };
  std::vector<std::thread> lanes;
  for (int i = 0; i < 4; ++i)
    lanes.emplace_back(lane);
  go = true;
  for (auto& t : lanes)
    t.join();
  CHECK(resets_while_shared == 0);
  CHECK(clean_while_shared == 0);
  CHECK(windows.open_windows() == 0);
  std::printf("[memory_windows] 4 threads x %d windows: %d clean\n", rounds,
              clean.load());
}

TEST_CASE("opening and closing a window costs well under a microsecond "
          "uncontended",
          "[memory_windows][timing]") {
  memory_windows windows;
  constexpr int rounds = 200000;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i)
    windows.close(windows.open([] {}), [] {});
  auto each = std::chrono::duration<double, std::nano>(
                std::chrono::steady_clock::now() - started)
                .count()
              / rounds;
  std::printf("[memory_windows] one window opened and closed, uncontended: "
              "%.0f ns\n",
              each);
  // Generous: the machine's cores are shared with other work.
  CHECK(each < 5000);
}
