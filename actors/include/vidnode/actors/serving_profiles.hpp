#pragma once

/// @file
/// Serving profiles: the distinct lists of models the nodes of a cluster
/// serve, numbered, so that the devices of every node that serves the same
/// models share one number (the device ledger keeps one per device, and the
/// placement index groups devices by kind and profile).

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace vidnode::actors {

/// The serving profiles in use, each a sorted list of model patterns
/// (runtime/model_pattern.hpp) with a number and a count of references
/// (devices). A profile no device refers to any more is forgotten and its
/// number reused.
///
/// Not thread-safe, not even its const queries (they memoize): the device
/// ledger's owner (admission) is its only user.
class serving_profiles {
public:
  /// Most models whose serving profiles are memoized; past it the memo
  /// starts afresh (sim-* makes the names of models unbounded).
  static constexpr size_t memo_limit = 4096;

  /// The number of the profile of `patterns` (sorted, each once), taking a
  /// reference on it: a list no profile has yet gets a number (the lowest
  /// free one). O(log profiles) list comparisons for a known list, O(profiles)
  /// for a new one.
  int32_t acquire(std::vector<std::string> patterns);

  /// Drops a reference taken by acquire; the last one forgets the profile.
  /// Nothing if `profile` is not in use.
  void release(int32_t profile);

  /// The patterns of `profile`, sorted; empty if it is not in use.
  const std::vector<std::string>& patterns(int32_t profile) const;

  /// Whether `profile` is in use and one of its patterns matches `model`.
  bool serves(int32_t profile, const std::string& model) const;

  /// The numbers of the profiles in use that serve `model`, ascending.
  /// Memoized per model until a profile is added or forgotten: O(1) then,
  /// else every pattern of every profile is matched. The reference is
  /// valid until the next call of a member.
  const std::vector<int32_t>& serving(const std::string& model) const;

  /// Profiles in use.
  size_t size() const noexcept {
    return numbers_.size();
  }

private:
  struct profile {
    std::vector<std::string> patterns;
    /// Devices that refer to it; 0: the number is free.
    int32_t references = 0;
  };

  /// Indexed by number.
  std::vector<profile> profiles_;
  /// Patterns -> number, for the profiles in use.
  std::map<std::vector<std::string>, int32_t> numbers_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> memo_;
};

} // namespace vidnode::actors
