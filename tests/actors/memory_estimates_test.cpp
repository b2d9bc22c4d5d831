#include <catch2/catch.hpp>

#include "vidnode/actors/memory_estimates.hpp"

using vidnode::actors::memory_estimates;
using vidnode::runtime::job_spec;

namespace {

memory_estimates::policy policy(size_t capacity = 16) {
  memory_estimates::policy p;
  p.headroom = 0.25;
  p.oom_growth = 2.0;
  p.capacity = capacity;
  return p;
}

} // namespace

TEST_CASE("a shape nothing was learned about reserves what its model "
          "declares",
          "[memory_estimates]") {
  memory_estimates estimates{policy()};
  CHECK(estimates.estimate("sim|64x64x1", 1000) == 1000);
}

TEST_CASE("a measured peak plus headroom becomes the shape's estimate, up or "
          "down",
          "[memory_estimates]") {
  memory_estimates estimates{policy()};
  estimates.observed_peak("k", 4000);
  CHECK(estimates.estimate("k", 1000) == 5000);
  estimates.observed_peak("k", 400);
  CHECK(estimates.estimate("k", 1000) == 500);
  estimates.observed_peak("k", 0); // unknown: nothing learned
  CHECK(estimates.estimate("k", 1000) == 500);
}

TEST_CASE("an out-of-memory failure multiplies what the job had reserved",
          "[memory_estimates]") {
  memory_estimates estimates{policy()};
  CHECK(estimates.out_of_memory("k", 3000) == 6000);
  CHECK(estimates.estimate("k", 1000) == 6000);
  CHECK(estimates.out_of_memory("k", 6000) == 12000);
}

TEST_CASE("an out-of-memory failure that shows what the job needs raises "
          "the figure to that plus headroom",
          "[memory_estimates]") {
  memory_estimates estimates{policy()};
  // Reserved 1000, needed 20000: growth alone (2000) would fail again.
  CHECK(estimates.out_of_memory("k", 1000, 20000) == 25000);
  CHECK(estimates.estimate("k", 1000) == 25000);
  // Needed less than growth gives: growth wins.
  CHECK(estimates.out_of_memory("k", 25000, 100) == 50000);
}

TEST_CASE("the oldest learned shape is forgotten beyond the capacity",
          "[memory_estimates]") {
  memory_estimates estimates{policy(2)};
  estimates.observed_peak("a", 100);
  estimates.observed_peak("b", 100);
  estimates.observed_peak("a", 200); // an update does not make it newer
  estimates.observed_peak("c", 100);
  CHECK(estimates.size() == 2);
  CHECK(estimates.estimate("a", 7) == 7);
  CHECK(estimates.estimate("c", 7) == 125);
}

TEST_CASE("a job's shape is its model, size, frames and options, not its "
          "steps, prompt or seed",
          "[memory_estimates]") {
  job_spec a;
  auto b = a;
  b.steps = 99;
  b.prompt = "something else";
  b.seed = 5;
  CHECK(memory_estimates::key_of(a) == memory_estimates::key_of(b));
  auto c = a;
  c.frames = 32;
  CHECK(memory_estimates::key_of(a) != memory_estimates::key_of(c));
  auto d = a;
  d.options["mem_mb"] = "10";
  CHECK(memory_estimates::key_of(a) != memory_estimates::key_of(d));
}
