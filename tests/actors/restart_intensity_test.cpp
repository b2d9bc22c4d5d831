#include <optional>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/restart_intensity.hpp"

using namespace std::chrono_literals;
using vidnode::actors::restart_intensity;
using vidnode::runtime::restart_policy;

namespace {

using delay = std::optional<caf::timespan>;

const restart_intensity::time_point t0{};

restart_policy policy(int32_t max_restarts, caf::timespan window = 60s) {
  restart_policy p;
  p.max_restarts = max_restarts;
  p.window = window;
  p.backoff = 100ms;
  p.backoff_max = 1s;
  return p;
}

delay after(caf::timespan x) {
  return x;
}

} // namespace

TEST_CASE("the restart delay doubles within the window up to backoff_max",
          "[restart_intensity]") {
  restart_intensity r{policy(10)};
  std::vector<delay> delays;
  for (int i = 0; i < 6; ++i)
    delays.push_back(r.on_death(t0 + i * 1s));
  CHECK(delays
        == std::vector<delay>{after(100ms), after(200ms), after(400ms),
                              after(800ms), after(1s), after(1s)});
  CHECK(r.recent() == 6);
}

TEST_CASE("a death after max_restarts restarts within the window "
          "quarantines the device",
          "[restart_intensity]") {
  restart_intensity r{policy(3)};
  CHECK(r.on_death(t0));
  CHECK(r.on_death(t0 + 1s));
  CHECK(r.on_death(t0 + 2s));
  CHECK(r.on_death(t0 + 3s) == std::nullopt);
  CHECK(r.recent() == 3);
}

TEST_CASE("deaths older than the window no longer count",
          "[restart_intensity]") {
  restart_intensity r{policy(2, 60s)};
  CHECK(r.on_death(t0) == after(100ms));
  CHECK(r.on_death(t0 + 10s) == after(200ms));
  // The death at 0 s is a full window old at 60 s: one restart remains.
  CHECK(r.on_death(t0 + 60s) == after(200ms));
  CHECK(r.recent() == 2);
  CHECK(r.on_death(t0 + 69s) == std::nullopt);
}

TEST_CASE("after a quiet window the backoff starts over",
          "[restart_intensity]") {
  restart_intensity r{policy(5, 60s)};
  r.on_death(t0);
  r.on_death(t0 + 1s);
  r.on_death(t0 + 2s);
  CHECK(r.on_death(t0 + 10min) == after(100ms));
  CHECK(r.recent() == 1);
}

TEST_CASE("max_restarts of zero quarantines on the first death",
          "[restart_intensity]") {
  restart_intensity r{policy(0)};
  CHECK(r.on_death(t0) == std::nullopt);
  CHECK(r.recent() == 0);
}

TEST_CASE("a zero backoff restarts at once every time", "[restart_intensity]") {
  auto p = policy(5);
  p.backoff = 0s;
  restart_intensity r{p};
  for (int i = 0; i < 5; ++i)
    CHECK(r.on_death(t0 + i * 1s) == after(0s));
}
