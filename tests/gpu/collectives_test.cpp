// Gangs' collectives on cpu devices (Gloo): ranks are threads of this
// process, joined through a real rendezvous on 127.0.0.1.

#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#ifdef VIDNODE_HAVE_TORCH
#include <ATen/ATen.h>
#endif

#include "vidnode/gpu/collectives.hpp"
#include "vidnode/runtime/device.hpp"

using namespace std::chrono_literals;
using vidnode::gpu::collective_backend_for;
using vidnode::gpu::collective_error;
using vidnode::gpu::communicator;
using vidnode::gpu::host_rendezvous;
using vidnode::gpu::join_gang;
using vidnode::runtime::device_info;
using vidnode::runtime::device_kind;

namespace {

device_info device(device_kind kind, int32_t ordinal) {
  device_info d;
  d.index = ordinal;
  d.kind = kind;
  d.ordinal = ordinal;
  d.memory_bytes = 1ull << 30;
  return d;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
    .count();
}

bool have_gloo() {
  if (collective_backend_for(device_kind::cpu) == "gloo")
    return true;
  WARN("SKIPPED: this build has no Gloo backend (no libtorch or no "
       "libgloo-dev)");
  return false;
}

} // namespace

TEST_CASE("cpu devices use gloo, sim devices have no collective backend",
          "[collectives]") {
  CHECK(collective_backend_for(device_kind::sim).empty());
  if (!have_gloo())
    return;
  CHECK(collective_backend_for(device_kind::cpu) == "gloo");
  auto sim = device(device_kind::sim, 0);
  REQUIRE_THROWS_AS(host_rendezvous(sim, "127.0.0.1"), collective_error);
  REQUIRE_THROWS_WITH(
    join_gang(sim, "gloo:127.0.0.1:1/0123456789abcdef", 0, 1, 1s),
    Catch::Contains("sim devices have no collective "
                    "backend"));
}

#ifdef VIDNODE_HAVE_TORCH

namespace {

using gang = std::vector<std::unique_ptr<communicator>>;

/// Joins `world` cpu ranks at `address`, each on its own thread.
gang join_all(const std::string& address, int32_t world,
              std::chrono::milliseconds timeout) {
  std::vector<std::future<std::unique_ptr<communicator>>> joining;
  for (int32_t r = 0; r < world; ++r)
    joining.push_back(std::async(std::launch::async, [=] {
      return join_gang(device(device_kind::cpu, r), address, r, world, timeout);
    }));
  gang ranks;
  for (auto& j : joining)
    ranks.push_back(j.get());
  return ranks;
}

/// Calls `f` for every rank at once, each on its own thread; returns what
/// each returned, by rank (rethrows the first failure).
std::vector<at::Tensor>
on_every_rank(gang& ranks, const std::function<at::Tensor(communicator&)>& f) {
  std::vector<std::future<at::Tensor>> running;
  for (auto& c : ranks)
    running.push_back(
      std::async(std::launch::async, [&f, &c] { return f(*c); }));
  std::vector<at::Tensor> results;
  for (auto& r : running)
    results.push_back(r.get());
  return results;
}

/// One chunk of `rows` rows of 3 values, all `value`.
at::Tensor filled(int64_t rows, double value, at::ScalarType type) {
  return at::full({rows, 3}, value, at::TensorOptions().dtype(type));
}

void check_collectives(int32_t world) {
  auto host = host_rendezvous(device(device_kind::cpu, 0), "127.0.0.1");
  INFO("address " << host->address());
  CHECK(host->address().rfind("gloo:127.0.0.1:", 0) == 0);
  auto ranks = join_all(host->address(), world, 60s);
  for (int32_t r = 0; r < world; ++r) {
    CHECK(ranks[r]->rank() == r);
    CHECK(ranks[r]->world() == world);
    CHECK(std::string{ranks[r]->backend()} == "gloo");
  }

  for (auto type : {at::kFloat, at::kBFloat16, at::kLong}) {
    INFO("dtype " << c10::toString(type));
    auto gathered = on_every_rank(ranks, [&](communicator& c) {
      return c.all_gather(filled(2, c.rank() + 0.5, type));
    });
    for (int32_t r = 0; r < world; ++r) {
      REQUIRE(gathered[r].sizes() == at::IntArrayRef({2 * world, 3}));
      CHECK(gathered[r].scalar_type() == type);
      for (int32_t q = 0; q < world; ++q)
        CHECK(
          at::equal(gathered[r].narrow(0, 2 * q, 2), filled(2, q + 0.5, type)));
    }
  }

  // Rank r sends its chunk d (2 rows of 100 * r + d) to rank d.
  auto exchanged = on_every_rank(ranks, [&](communicator& c) {
    std::vector<at::Tensor> chunks;
    for (int32_t d = 0; d < world; ++d)
      chunks.push_back(filled(2, 100.0 * c.rank() + d, at::kFloat));
    return c.all_to_all(at::cat(chunks));
  });
  for (int32_t r = 0; r < world; ++r) {
    REQUIRE(exchanged[r].sizes() == at::IntArrayRef({2 * world, 3}));
    for (int32_t s = 0; s < world; ++s)
      CHECK(at::equal(exchanged[r].narrow(0, 2 * s, 2),
                      filled(2, 100.0 * s + r, at::kFloat)));
  }

  for (auto type : {at::kFloat, at::kBFloat16, at::kLong}) {
    INFO("dtype " << c10::toString(type));
    auto summed = on_every_rank(ranks, [&](communicator& c) {
      auto t = filled(1, c.rank() + 1, type);
      c.all_reduce_sum(t);
      return t;
    });
    for (int32_t r = 0; r < world; ++r)
      CHECK(at::equal(summed[r], filled(1, world * (world + 1) / 2, type)));
  }

  auto met = on_every_rank(ranks, [](communicator& c) {
    c.barrier();
    return at::ones({1});
  });
  CHECK(met.size() == static_cast<size_t>(world));

  // 1 MiB of float32 per rank, as Ulysses' all-to-all moves around
  // attention, and the gathers and sums around it.
  constexpr int repeats = 10;
  auto timed = [&](const char* op,
                   const std::function<void(communicator&, at::Tensor&)>& f) {
    auto start = std::chrono::steady_clock::now();
    on_every_rank(ranks, [&](communicator& c) {
      auto t = at::rand({world * 4, 65536 / world});
      for (int i = 0; i < repeats; ++i)
        f(c, t);
      return t;
    });
    std::printf("[collectives] gloo, %d cpu ranks, %s of 1 MiB: %.2f ms\n",
                world, op, 1000 * seconds_since(start) / repeats);
  };
  timed("all_to_all",
        [](communicator& c, at::Tensor& t) { t = c.all_to_all(t); });
  timed("all_gather", [](communicator& c, at::Tensor& t) { c.all_gather(t); });
  timed("all_reduce_sum",
        [](communicator& c, at::Tensor& t) { c.all_reduce_sum(t); });
}

} // namespace

TEST_CASE("a gang of 2 cpu ranks gathers, exchanges, sums and meets at a "
          "barrier",
          "[collectives]") {
  if (have_gloo())
    check_collectives(2);
}

TEST_CASE("a gang of 4 cpu ranks gathers, exchanges, sums and meets at a "
          "barrier",
          "[collectives]") {
  if (have_gloo())
    check_collectives(4);
}

TEST_CASE("a rank that never joins fails the others' joins within the "
          "timeout",
          "[collectives]") {
  if (!have_gloo())
    return;
  auto host = host_rendezvous(device(device_kind::cpu, 0), "127.0.0.1");
  auto start = std::chrono::steady_clock::now();
  std::vector<std::future<std::string>> joining;
  for (int32_t r = 0; r < 2; ++r)
    joining.push_back(std::async(std::launch::async, [&, r] {
      try {
        join_gang(device(device_kind::cpu, r), host->address(), r, 3, 1s);
      } catch (const collective_error& e) {
        return std::string{e.what()};
      }
      return std::string{"joined"};
    }));
  for (auto& j : joining) {
    auto what = j.get();
    CHECK_THAT(what, Catch::Contains("rank(s) 2 of")
                       && Catch::Contains("did not join within 1000 ms"));
  }
  auto took = seconds_since(start);
  std::printf("[collectives] world 3 with 2 ranks, timeout 1 s: both joins "
              "failed after %.2f s\n",
              took);
  CHECK(took < 10);
}

TEST_CASE("a rank that leaves fails the others' collectives promptly",
          "[collectives]") {
  if (!have_gloo())
    return;
  auto host = host_rendezvous(device(device_kind::cpu, 0), "127.0.0.1");
  auto ranks = join_all(host->address(), 2, 30s);
  auto start = std::chrono::steady_clock::now();
  auto summing = std::async(std::launch::async, [&] {
    auto t = at::ones({1024});
    try {
      ranks[0]->all_reduce_sum(t);
    } catch (const collective_error& e) {
      return std::string{e.what()};
    }
    return std::string{"summed"};
  });
  auto leaving = std::async(std::launch::async, [&] { ranks[1].reset(); });
  leaving.get();
  auto what = summing.get();
  auto took = seconds_since(start);
  std::printf("[collectives] a rank left during all_reduce_sum (timeout "
              "30 s): the other failed after %.3f s: %s\n",
              took, what.c_str());
  CHECK_THAT(what, Catch::StartsWith("gloo: all_reduce_sum"));
  CHECK(took < 15);
  // The gang is over: later calls fail at once with the first failure.
  REQUIRE_THROWS_WITH(ranks[0]->barrier(),
                      Catch::Contains("the gang failed earlier"));
}

TEST_CASE("a rank whose rendezvous host is gone fails to join within the "
          "timeout",
          "[collectives]") {
  if (!have_gloo())
    return;
  auto host = host_rendezvous(device(device_kind::cpu, 0), "127.0.0.1");
  auto address = host->address();
  host.reset();
  auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(join_gang(device(device_kind::cpu, 1), address, 1, 2, 1s),
                      Catch::Contains("reaching the gang's store at "
                                      "127.0.0.1:"));
  CHECK(seconds_since(start) < 10);
}

TEST_CASE("a rendezvous serves one join per rank", "[collectives]") {
  if (!have_gloo())
    return;
  auto host = host_rendezvous(device(device_kind::cpu, 0), "127.0.0.1");
  auto first =
    join_gang(device(device_kind::cpu, 0), host->address(), 0, 1, 10s);
  auto t = at::full({2}, 3.0);
  first->all_reduce_sum(t);
  CHECK(at::equal(t, at::full({2}, 3.0)));
  REQUIRE_THROWS_WITH(
    join_gang(device(device_kind::cpu, 0), host->address(), 0, 1, 10s),
    Catch::Contains("had joined already"));
}

TEST_CASE("malformed addresses, ranks outside the gang and wrong tensors "
          "are refused with a clear message",
          "[collectives]") {
  if (!have_gloo())
    return;
  auto cpu = device(device_kind::cpu, 0);
  auto refused = [&](const std::string& address) {
    INFO("address '" << address << "'");
    try {
      join_gang(cpu, address, 0, 2, 1s);
    } catch (const collective_error& e) {
      return std::string{e.what()};
    }
    FAIL("joined");
    return std::string{};
  };
  CHECK_THAT(refused(""), Catch::Contains("is not a gloo address"));
  CHECK_THAT(refused("nccl:00ff"),
             Catch::Contains("is not a gloo address (it names backend "
                             "'nccl')"));
  CHECK_THAT(refused("gloo:127.0.0.1:4000"), Catch::Contains("no /GANG"));
  CHECK_THAT(refused("gloo:127.0.0.1:4000/12"),
             Catch::Contains("GANG is not 16 hex digits"));
  CHECK_THAT(refused("gloo:127.0.0.1/0123456789abcdef"),
             Catch::Contains("no HOST:PORT"));
  CHECK_THAT(refused("gloo:127.0.0.1:http/0123456789abcdef"),
             Catch::Contains("PORT is not a number"));
  CHECK_THAT(refused("gloo:127.0.0.1:70000/0123456789abcdef"),
             Catch::Contains("PORT is out of range"));
  CHECK_THAT(refused("gloo:[::1:4000/0123456789abcdef"),
             Catch::Contains("unbalanced"));
  REQUIRE_THROWS_WITH(
    join_gang(cpu, "gloo:127.0.0.1:4000/0123456789abcdef", 2, 2, 1s),
    Catch::Contains("rank 2 of 2 is no rank of a gang"));
  REQUIRE_THROWS_WITH(host_rendezvous(cpu, ""),
                      Catch::Contains("needs the host"));

  // Refused before anything is sent: one rank's call alone is enough.
  auto host = host_rendezvous(cpu, "127.0.0.1");
  auto ranks = join_all(host->address(), 2, 30s);
  REQUIRE_THROWS_WITH(ranks[0]->all_to_all(at::ones({3, 2})),
                      Catch::Contains("dimension 0 of the input (3) is not a "
                                      "multiple of the gang's 2 ranks"));
  REQUIRE_THROWS_WITH(ranks[0]->all_gather(at::ones({})),
                      Catch::Contains("needs a dimension 0"));
  auto flags = at::ones({2}, at::kBool);
  REQUIRE_THROWS_WITH(ranks[0]->all_reduce_sum(flags),
                      Catch::Contains("gloo cannot sum Bool"));
  // A refused call leaves the gang usable.
  auto gathered = on_every_rank(
    ranks, [](communicator& c) { return c.all_gather(at::ones({2})); });
  CHECK(at::equal(gathered[0], at::ones({4})));
}

#else

TEST_CASE("gangs' collectives on cpu devices need libtorch", "[collectives]") {
  WARN("SKIPPED: this build has no libtorch: no Gloo gangs to test");
}

#endif
