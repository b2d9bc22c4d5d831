#include "vidnode/actors/lease_book.hpp"

#include <algorithm>

namespace vidnode::actors {

void lease_book::started(runtime::job_id id, uint64_t lease) {
  std::lock_guard<std::mutex> guard{mutex_};
  running_.push_back({id, lease, -1});
}

void lease_book::ended(outcome how) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto lease = how.lease;
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [&](auto& x) { return x.lease == lease; }),
                 running_.end());
  ended_.push_back(std::move(how));
  if (ended_.size() > max_outcomes)
    ended_.pop_front();
}

void lease_book::forget(uint64_t lease) {
  std::lock_guard<std::mutex> guard{mutex_};
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [&](auto& x) { return x.lease == lease; }),
                 running_.end());
  ended_.erase(std::remove_if(ended_.begin(), ended_.end(),
                              [&](auto& x) { return x.lease == lease; }),
               ended_.end());
}

void lease_book::forget_running() {
  std::lock_guard<std::mutex> guard{mutex_};
  running_.clear();
}

std::vector<held_lease> lease_book::held(int32_t device) const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<held_lease> result;
  result.reserve(running_.size() + ended_.size());
  for (const auto& x : running_)
    result.push_back({x.id, x.lease, device});
  for (const auto& x : ended_)
    result.push_back({x.id, x.lease, device});
  return result;
}

std::vector<uint64_t> lease_book::running() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<uint64_t> result;
  for (const auto& x : running_)
    result.push_back(x.lease);
  return result;
}

void lease_book::renew(int64_t until) noexcept {
  renewed_until_.store(until, std::memory_order_relaxed);
}

bool lease_book::expired(int64_t now) const noexcept {
  return now > renewed_until_.load(std::memory_order_relaxed);
}

std::vector<lease_book::outcome> lease_book::outcomes() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return {ended_.begin(), ended_.end()};
}

} // namespace vidnode::actors
