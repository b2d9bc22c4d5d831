#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

/// What admission has learned about jobs' peak memory, per model and shape
/// (model, width, height, frames and options; steps do not change a peak).
/// Not an actor; owned by the admission actor.
///
/// A job reserves its shape's learned figure if there is one, else what its
/// model declares. A measured peak replaces the figure with the peak plus
/// `headroom`; an out-of-memory failure multiplies what the job had
/// reserved by `oom_growth`, or takes what the failure showed the job needs
/// plus `headroom` if that is more (so the retry reserves more). At most
/// `capacity` shapes are remembered (the oldest learned is forgotten).
class memory_estimates {
public:
  /// How figures are learned.
  struct policy {
    /// Added to a measured peak (0.1 = 10%).
    double headroom = 0.10;
    /// What an out-of-memory failure multiplies the reservation by.
    double oom_growth = 1.5;
    /// Shapes remembered.
    size_t capacity = 4096;
  };

  explicit memory_estimates(policy p);

  /// The key of `spec`'s model and shape.
  static std::string key_of(const runtime::job_spec& spec);

  /// The bytes to reserve for a job of `key` whose model declares
  /// `declared`.
  uint64_t estimate(const std::string& key, uint64_t declared) const;

  /// A job of `key` finished with a measured peak of `bytes` (0: unknown,
  /// nothing is learned).
  void observed_peak(const std::string& key, uint64_t bytes);

  /// A job of `key` ran out of memory with `reserved` bytes reserved,
  /// needing at least `needed` (what it held plus the allocation that
  /// failed; 0 if unknown). The figure becomes the larger of `reserved`
  /// times `oom_growth` and `needed` plus `headroom`. Returns it.
  uint64_t out_of_memory(const std::string& key, uint64_t reserved,
                         uint64_t needed = 0);

  /// The figure learned for `key`, or 0 if none.
  uint64_t learned(const std::string& key) const;

  /// Sets the figure of `key` as learned by an earlier run (restore them
  /// oldest first).
  void restore(const std::string& key, uint64_t bytes) {
    learn(key, bytes);
  }

  /// Shapes remembered now.
  size_t size() const noexcept {
    return learned_.size();
  }

private:
  void learn(const std::string& key, uint64_t bytes);

  policy policy_;
  std::unordered_map<std::string, uint64_t> learned_;
  std::deque<std::string> order_;
};

} // namespace vidnode::actors
