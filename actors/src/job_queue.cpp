#include "vidnode/actors/job_queue.hpp"

namespace vidnode::actors {

job_queue::job_queue(caf::timespan aging_interval)
  : aging_interval_(aging_interval) {}

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

void job_queue::pop(const entry& x) {
  auto& fifo = fifo_[static_cast<size_t>(x.priority)];
  if (!fifo.empty() && fifo.front().ticket == x.ticket) {
    fifo.pop_front();
    --size_;
  }
}

} // namespace vidnode::actors
