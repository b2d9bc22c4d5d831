#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/actors/job_queue.hpp"

using namespace std::chrono_literals;
using vidnode::actors::job_queue;

namespace {

using entry = job_queue::entry;

const job_queue::time_point t0{};

/// A job accepted `at` after t0, with id, seq and ticket all `n`.
entry job(uint64_t n, int32_t priority, caf::timespan at = caf::timespan{0}) {
  entry x;
  x.id.value = n;
  x.seq = n;
  x.ticket = n;
  x.priority = priority;
  x.accepted = t0 + at;
  return x;
}

const job_queue::liveness all_live = [](const entry&) { return true; };

/// Peeks and pops until the queue is empty; returns the ids in order.
std::vector<uint64_t> drain(job_queue& q, job_queue::time_point now,
                            const job_queue::liveness& is_live = all_live) {
  std::vector<uint64_t> ids;
  while (auto next = q.peek(now, is_live)) {
    ids.push_back(next->id.value);
    q.pop(*next);
  }
  return ids;
}

} // namespace

TEST_CASE("jobs of one level leave in the order they were accepted",
          "[job_queue]") {
  job_queue q{30s};
  for (uint64_t n = 1; n <= 4; ++n)
    q.push_back(job(n, 5));
  CHECK(q.size() == 4);
  CHECK(drain(q, t0) == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(q.empty());
}

TEST_CASE("higher priority levels leave first", "[job_queue]") {
  job_queue q{30s};
  q.push_back(job(1, 0));
  q.push_back(job(2, 5));
  q.push_back(job(3, 9));
  q.push_back(job(4, 5));
  CHECK(drain(q, t0) == std::vector<uint64_t>{3, 2, 4, 1});
}

TEST_CASE("an empty queue has nothing to peek", "[job_queue]") {
  job_queue q{30s};
  CHECK_FALSE(q.peek(t0, all_live));
  CHECK(q.empty());
}

TEST_CASE("a job gains one level per aging interval waited", "[job_queue]") {
  job_queue q{10s};
  auto low = job(1, 2);
  CHECK(q.effective_priority(low, t0) == 2);
  CHECK(q.effective_priority(low, t0 + 9s) == 2);
  CHECK(q.effective_priority(low, t0 + 10s) == 3);
  CHECK(q.effective_priority(low, t0 + 75s) == 9);
}

TEST_CASE("an old low-priority job overtakes a newer high-priority one",
          "[job_queue]") {
  job_queue q{10s};
  q.push_back(job(1, 2));
  q.push_back(job(2, 5, 30s));
  // At 29 s the old job has gained two levels (4 < 5); at 30 s three, and a
  // tie goes to the job accepted first.
  CHECK(q.peek(t0 + 29s, all_live)->id.value == 2);
  CHECK(q.peek(t0 + 30s, all_live)->id.value == 1);
}

TEST_CASE("a retried job goes back ahead of jobs accepted after it",
          "[job_queue]") {
  job_queue q{30s};
  q.push_back(job(1, 5));
  q.push_back(job(2, 5));
  q.push_back(job(3, 5));
  auto first = q.peek(t0, all_live);
  q.pop(*first);
  CHECK(q.size() == 2);
  auto retry = *first;
  retry.ticket = 100;
  q.push_front(retry);
  CHECK(q.size() == 3);
  CHECK(drain(q, t0) == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("a forgotten job is skipped and counted once", "[job_queue]") {
  job_queue q{30s};
  for (uint64_t n = 1; n <= 4; ++n)
    q.push_back(job(n, 5));
  std::set<uint64_t> gone{1, 3};
  job_queue::liveness is_live = [&](const entry& x) {
    return gone.count(x.id.value) == 0;
  };
  q.forget();
  q.forget();
  CHECK(q.size() == 2);
  auto next = q.peek(t0, is_live);
  REQUIRE(next);
  CHECK(next->id.value == 2);
  CHECK(q.size() == 2);
  CHECK(drain(q, t0, is_live) == std::vector<uint64_t>{2, 4});
  CHECK(q.size() == 0);
  CHECK(q.empty());
}

TEST_CASE("pop removes nothing for an entry that is no longer at the front",
          "[job_queue]") {
  job_queue q{30s};
  q.push_back(job(1, 5));
  auto stale = job(1, 5);
  stale.ticket = 99;
  q.pop(stale);
  CHECK(q.size() == 1);
  CHECK(q.peek(t0, all_live)->id.value == 1);
}

TEST_CASE("visit_in_order walks the queue in the order peek and pop would, "
          "skipping stale entries and changing nothing",
          "[job_queue]") {
  job_queue q{10s};
  q.push_back(job(1, 2));
  q.push_back(job(2, 5, 1s));
  q.push_back(job(3, 2, 2s));
  q.push_back(job(4, 9, 3s));
  q.push_back(job(5, 5, 4s));
  q.push_front(job(6, 2)); // a retry, back at the front of level 2
  auto now = t0 + 30s;     // jobs 1 and 6 have aged three levels
  auto stale = [](const entry& x) { return x.id.value != 3; };
  std::vector<uint64_t> visited;
  q.visit_in_order(now, stale, 100, [&](const entry& x) {
    visited.push_back(x.id.value);
    return true;
  });
  CHECK(q.size() == 6);
  CHECK(visited == drain(q, now, stale));
  CHECK(visited.size() == 5);

  job_queue again{10s};
  for (uint64_t i = 1; i <= 5; ++i)
    again.push_back(job(i, 4));
  visited.clear();
  again.visit_in_order(now, all_live, 3, [&](const entry& x) {
    visited.push_back(x.id.value);
    return true;
  });
  CHECK(visited == std::vector<uint64_t>{1, 2, 3});
  visited.clear();
  again.visit_in_order(now, all_live, 10, [&](const entry& x) {
    visited.push_back(x.id.value);
    return x.id.value < 2;
  });
  CHECK(visited == std::vector<uint64_t>{1, 2});
}
