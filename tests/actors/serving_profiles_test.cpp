#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/serving_profiles.hpp"
#include "vidnode/runtime/model_pattern.hpp"

#include "support/random_devices.hpp"

using namespace vidnode;
using actors::serving_profiles;
using strings = std::vector<std::string>;

TEST_CASE("nodes that serve the same models share a profile whatever the "
          "order and repeats of their lists",
          "[serving_profiles]") {
  serving_profiles profiles;
  auto a = profiles.acquire({"sim", "sim-*", "toy"});
  auto b = profiles.acquire({"toy", "sim-*", "sim", "toy"});
  auto c = profiles.acquire({"sim", "sim-*"});
  CHECK(a == b);
  CHECK(a != c);
  CHECK(profiles.size() == 2);
  CHECK(profiles.patterns(a) == strings{"sim", "sim-*", "toy"});
  CHECK(profiles.serves(a, "toy"));
  CHECK(profiles.serves(a, "sim-large"));
  CHECK_FALSE(profiles.serves(c, "toy"));
  CHECK_FALSE(profiles.serves(c, "sim-"));
  CHECK(profiles.serving("toy") == std::vector<int32_t>{a});
  CHECK(profiles.serving("sim")
        == std::vector<int32_t>{std::min(a, c), std::max(a, c)});
  CHECK(profiles.serving("other").empty());
}

TEST_CASE("a profile no device holds any more is forgotten and its number "
          "reused",
          "[serving_profiles]") {
  serving_profiles profiles;
  auto a = profiles.acquire({"a"});
  auto b = profiles.acquire({"b"});
  profiles.acquire({"a"});
  profiles.release(a);
  CHECK(profiles.serves(a, "a"));
  CHECK(profiles.serving("a") == std::vector<int32_t>{a});
  profiles.release(a);
  CHECK(profiles.size() == 1);
  CHECK(profiles.patterns(a).empty());
  CHECK_FALSE(profiles.serves(a, "a"));
  CHECK(profiles.serving("a").empty());
  // Releasing what is not held changes nothing.
  profiles.release(a);
  profiles.release(-1);
  profiles.release(7);
  CHECK(profiles.size() == 1);
  auto c = profiles.acquire({"c"});
  CHECK(c == a);
  CHECK(profiles.serving("c") == std::vector<int32_t>{c});
  CHECK(profiles.serving("b") == std::vector<int32_t>{b});
}

TEST_CASE("the profiles serving a model are those with a pattern that "
          "matches it, through thousands of random acquires and releases",
          "[serving_profiles]") {
  const std::vector<strings> lists{{"*"},       {"a"}, {"a", "b"}, {"a*"},
                                   {"b", "c*"}, {},    {"c"}};
  const strings models{"a", "ab", "b", "c", "cd", "z"};
  std::mt19937 rng{42};
  serving_profiles profiles;
  // What each held reference refers to, as (number, list).
  std::vector<std::pair<int32_t, strings>> held;
  for (int step = 0; step < 3000; ++step) {
    if (held.empty() || test::chance(rng, 0.55)) {
      const auto& list = test::pick(rng, lists);
      held.emplace_back(profiles.acquire(list), list);
    } else {
      auto i = std::uniform_int_distribution<size_t>{0, held.size() - 1}(rng);
      profiles.release(held[i].first);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (const auto& model : models) {
      std::vector<int32_t> expected;
      for (const auto& [number, list] : held)
        if (std::any_of(list.begin(), list.end(), [&](const std::string& p) {
              return runtime::model_pattern_matches(p, model);
            }))
          expected.push_back(number);
      std::sort(expected.begin(), expected.end());
      expected.erase(std::unique(expected.begin(), expected.end()),
                     expected.end());
      INFO("step " << step << ", model " << model);
      CHECK(profiles.serving(model) == expected);
    }
    for (const auto& [number, list] : held) {
      auto sorted = list;
      std::sort(sorted.begin(), sorted.end());
      CHECK(profiles.patterns(number) == sorted);
    }
  }
}
