#include "vidnode/actors/job_queue.hpp"

namespace vidnode::actors {

job_queue::job_queue(caf::timespan aging_interval)
  : aging_interval_(aging_interval) {
}

void job_queue::push_back(const entry& x) {
  fifo_[static_cast<size_t>(x.priority)].push_back(x);
  ++size_;
}

void job_queue::push_front(const entry& x) {
  fifo_[static_cast<size_t>(x.priority)].push_front(x);
  ++size_;
}

int64_t job_queue::effective_priority(const entry& x,
                                      time_point now) const noexcept {
  auto waited = now - x.accepted;
  auto levels_gained = waited.count() > 0 ? waited / aging_interval_ : 0;
  return x.priority + static_cast<int64_t>(levels_gained);
}

std::optional<job_queue::entry> job_queue::peek(time_point now,
                                                const liveness& is_live) {
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

void job_queue::pop(const entry& x) {
  auto& fifo = fifo_[static_cast<size_t>(x.priority)];
  if (!fifo.empty() && fifo.front().ticket == x.ticket) {
    fifo.pop_front();
    --size_;
  }
}

} // namespace vidnode::actors
