#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>

#include <caf/actor_clock.hpp>

#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/validation.hpp"

namespace vidnode::actors {

/// The admission queue: one FIFO per priority level, and aging. Not an
/// actor; owned by the admission actor and used only from it.
///
/// The next job is the one with the highest effective priority, which is its
/// priority plus one level per `aging_interval` it has waited since it was
/// accepted; ties go to the job accepted first. So a low priority waits, but
/// not forever. Removal of a job from the middle (cancel, queue timeout) is
/// lazy: the caller calls `forget` and the stale entry is dropped when it
/// reaches the front (the caller's `is_live` tells which entries are stale).
class job_queue {
public:
  using time_point = caf::actor_clock::time_point;

  /// One queued job.
  struct entry {
    runtime::job_id id;
    /// Acceptance order (unique, increasing): the tie breaker.
    uint64_t seq = 0;
    /// When the job was accepted: aging counts from here.
    time_point accepted;
    int32_t priority = 0;
    /// Distinguishes this entry from earlier ones of the same job.
    uint64_t ticket = 0;
  };

  /// Tells whether an entry still stands for a queued job (peek takes any
  /// callable of this signature).
  using liveness = std::function<bool(const entry&)>;

  static constexpr int32_t levels = runtime::job_limits::max_priority + 1;

  /// `aging_interval` must be positive.
  explicit job_queue(caf::timespan aging_interval);

  /// Number of queued jobs (live entries).
  size_t size() const noexcept {
    return size_;
  }

  bool empty() const noexcept {
    return size_ == 0;
  }

  /// Appends a newly accepted job to its level.
  void push_back(const entry& x);

  /// Puts a job back at the front of its level (a retry keeps its place
  /// ahead of jobs accepted after it).
  void push_front(const entry& x);

  /// The next job at `now`, without removing it; drops stale entries from
  /// the fronts on the way.
  template <class IsLive>
  std::optional<entry> peek(time_point now, IsLive&& is_live) {
    const entry* best = nullptr;
    int64_t best_priority = 0;
    for (auto level = levels - 1; level >= 0; --level) {
      auto& fifo = fifo_[static_cast<size_t>(level)];
      while (!fifo.empty() && !is_live(fifo.front()))
        fifo.pop_front();
      if (fifo.empty())
        continue;
      const auto& head = fifo.front();
      auto priority = effective_priority(head, now);
      if (best == nullptr || priority > best_priority
          || (priority == best_priority && head.seq < best->seq)) {
        best = &head;
        best_priority = priority;
      }
    }
    if (best == nullptr)
      return std::nullopt;
    return *best;
  }

  /// Calls `visit` with the live entries in the order `peek` would return
  /// them, at most `limit`, until it returns false. Changes nothing.
  template <class IsLive, class Visit>
  void visit_in_order(time_point now, IsLive&& is_live, size_t limit,
                      Visit&& visit) const {
    // Within a level, entries are in acceptance order, so their effective
    // priorities never rise along it: merging the levels' fronts is enough.
    std::array<size_t, levels> next{};
    for (size_t visited = 0; visited < limit; ++visited) {
      const entry* best = nullptr;
      size_t best_level = 0;
      int64_t best_priority = 0;
      for (size_t level = 0; level < fifo_.size(); ++level) {
        const auto& fifo = fifo_[level];
        auto& i = next[level];
        while (i < fifo.size() && !is_live(fifo[i]))
          ++i;
        if (i == fifo.size())
          continue;
        const auto& x = fifo[i];
        auto priority = effective_priority(x, now);
        if (best == nullptr || priority > best_priority
            || (priority == best_priority && x.seq < best->seq)) {
          best = &x;
          best_level = level;
          best_priority = priority;
        }
      }
      if (best == nullptr || !visit(*best))
        return;
      ++next[best_level];
    }
  }

  /// Removes the entry `peek` returned last.
  void pop(const entry& x);

  /// Accounts for a job that left the queue by other means (its entry turns
  /// stale and is dropped later).
  void forget() noexcept {
    --size_;
  }

  /// The effective priority of `x` at `now` (priority plus aging levels).
  int64_t effective_priority(const entry& x, time_point now) const noexcept;

private:
  caf::timespan aging_interval_;
  std::array<std::deque<entry>, levels> fifo_;
  size_t size_ = 0;
};

} // namespace vidnode::actors
