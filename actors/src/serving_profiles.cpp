#include "vidnode/actors/serving_profiles.hpp"

#include <algorithm>

#include "vidnode/runtime/model_pattern.hpp"

namespace vidnode::actors {

int32_t serving_profiles::acquire(std::vector<std::string> patterns) {
  std::sort(patterns.begin(), patterns.end());
  patterns.erase(std::unique(patterns.begin(), patterns.end()), patterns.end());
  auto known = numbers_.find(patterns);
  if (known != numbers_.end()) {
    ++profiles_[static_cast<size_t>(known->second)].references;
    return known->second;
  }
  auto free = std::find_if(profiles_.begin(), profiles_.end(),
                           [](const profile& x) { return x.references == 0; });
  if (free == profiles_.end())
    free = profiles_.insert(profiles_.end(), profile{});
  auto number = static_cast<int32_t>(free - profiles_.begin());
  free->patterns = patterns;
  free->references = 1;
  numbers_.emplace(std::move(patterns), number);
  memo_.clear();
  return number;
}

void serving_profiles::release(int32_t number) {
  if (number < 0 || static_cast<size_t>(number) >= profiles_.size())
    return;
  auto& x = profiles_[static_cast<size_t>(number)];
  if (x.references == 0 || --x.references > 0)
    return;
  numbers_.erase(x.patterns);
  x.patterns.clear();
  memo_.clear();
}

const std::vector<std::string>&
serving_profiles::patterns(int32_t number) const {
  static const std::vector<std::string> none;
  if (number < 0 || static_cast<size_t>(number) >= profiles_.size())
    return none;
  return profiles_[static_cast<size_t>(number)].patterns;
}

bool serving_profiles::serves(int32_t number, const std::string& model) const {
  const auto& xs = patterns(number);
  return std::any_of(xs.begin(), xs.end(), [&](const std::string& pattern) {
    return runtime::model_pattern_matches(pattern, model);
  });
}

const std::vector<int32_t>&
serving_profiles::serving(const std::string& model) const {
  auto known = memo_.find(model);
  if (known != memo_.end())
    return known->second;
  if (memo_.size() >= memo_limit)
    memo_.clear();
  std::vector<int32_t> numbers;
  for (size_t i = 0; i < profiles_.size(); ++i)
    if (serves(static_cast<int32_t>(i), model))
      numbers.push_back(static_cast<int32_t>(i));
  return memo_.emplace(model, std::move(numbers)).first->second;
}

} // namespace vidnode::actors
