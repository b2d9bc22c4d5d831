#pragma once

/// @file
/// Request/response loops the latency and throughput benchmarks share:
/// sequential round trips from a scoped_actor or from an event-based client
/// actor, and windowed (pipelined) requests from several client actors.
/// Every loop waits for each reply without a timeout (caf::infinite): a
/// lost reply hangs the benchmark rather than skewing it.

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "measurement.hpp"

namespace vidnode::bench {

/// How many requests a latency loop sends: `warmup` unmeasured, then
/// `measured` whose round trips are recorded.
struct round_trip_counts {
  size_t warmup = 0;
  size_t measured = 0;
};

/// The outcome of a latency loop: one sample (nanoseconds) per measured
/// round trip, and the first error or rejected reply, if any.
struct round_trip_samples {
  std::vector<int64_t> nanos;
  std::string failure;
};

/// Sends `xs...` to `dest` from a scoped_actor, one request at a time, and
/// times each round trip on the calling thread. `check` inspects every
/// reply (of type `Reply`) and returns an empty string to accept it, else
/// why it is wrong; the loop stops at the first failure.
template <class Reply, class Dest, class Check, class... Ts>
round_trip_samples scoped_round_trips(caf::actor_system& sys, const Dest& dest,
                                      round_trip_counts counts, Check check,
                                      const Ts&... xs) {
  round_trip_samples result;
  result.nanos.reserve(counts.measured);
  caf::scoped_actor self{sys};
  auto total = counts.warmup + counts.measured;
  for (size_t i = 0; i < total && result.failure.empty(); ++i) {
    auto sent = clock_type::now();
    self->request(dest, caf::infinite, xs...)
      .receive(
        [&](const Reply& reply) {
          auto elapsed = nanos_between(sent, clock_type::now());
          result.failure = check(reply);
          if (i >= counts.warmup)
            result.nanos.push_back(elapsed);
        },
        [&](caf::error& err) { result.failure = sys.render(err); });
  }
  return result;
}

namespace detail {

/// State of an event-based latency client.
struct round_trip_loop_state {
  static inline const char* name = "vidnode.bench.round_trip_loop";
  round_trip_counts counts;
  size_t sent = 0;
  round_trip_samples result;
  std::shared_ptr<std::promise<round_trip_samples>> done;
};

using round_trip_loop_pointer = caf::stateful_actor<round_trip_loop_state>*;

template <class Reply, class Dest, class Check, class... Ts>
void next_round_trip(round_trip_loop_pointer self, Dest dest, Check check,
                     Ts... xs) {
  auto& st = self->state;
  if (st.sent == st.counts.warmup + st.counts.measured
      || !st.result.failure.empty()) {
    st.done->set_value(std::move(st.result));
    self->quit();
    return;
  }
  auto index = st.sent++;
  auto sent = clock_type::now();
  self->request(dest, caf::infinite, xs...)
    .then(
      [=](const Reply& reply) {
        auto elapsed = nanos_between(sent, clock_type::now());
        auto& st = self->state;
        st.result.failure = check(reply);
        if (index >= st.counts.warmup)
          st.result.nanos.push_back(elapsed);
        next_round_trip<Reply>(self, dest, check, xs...);
      },
      [=](caf::error& err) {
        self->state.result.failure = self->system().render(err);
        next_round_trip<Reply>(self, dest, check, xs...);
      });
}

} // namespace detail

/// Like scoped_round_trips, but from a pooled event-based client actor that
/// sends the next request from the previous reply's handler; the calling
/// thread only waits for the outcome.
template <class Reply, class Dest, class Check, class... Ts>
round_trip_samples actor_round_trips(caf::actor_system& sys, const Dest& dest,
                                     round_trip_counts counts, Check check,
                                     const Ts&... xs) {
  auto done = std::make_shared<std::promise<round_trip_samples>>();
  auto outcome = done->get_future();
  sys.spawn([=](detail::round_trip_loop_pointer self) {
    self->state.counts = counts;
    self->state.done = done;
    self->state.result.nanos.reserve(counts.measured);
    detail::next_round_trip<Reply>(self, dest, check, xs...);
  });
  return outcome.get();
}

/// How a throughput run spreads its requests: `clients` client actors, each
/// with at most `window` requests outstanding, `requests` in all.
struct pipeline_shape {
  size_t clients = 4;
  size_t window = 64;
  size_t requests = 100000;
};

/// The outcome of a throughput run.
struct pipeline_outcome {
  size_t replies = 0;
  double seconds = 0;
  std::string failure;

  /// Replies per second.
  double rate() const {
    return seconds > 0 ? static_cast<double>(replies) / seconds : 0;
  }

  /// Adds another run's replies and time (rounds of the same workload).
  void merge(const pipeline_outcome& other) {
    replies += other.replies;
    seconds += other.seconds;
    if (failure.empty())
      failure = other.failure;
  }
};

namespace detail {

/// What the clients of one throughput run share.
struct pipeline_run {
  std::atomic<size_t> clients_left{0};
  std::atomic<size_t> replies{0};
  std::promise<std::string> done;
  std::atomic<bool> failed{false};
  std::string failure;
};

/// State of one pipelining client.
struct pipeline_client_state {
  static inline const char* name = "vidnode.bench.pipeline_client";
  std::shared_ptr<pipeline_run> run;
  size_t to_send = 0;
  size_t outstanding = 0;
};

using pipeline_client_pointer = caf::stateful_actor<pipeline_client_state>*;

inline void finish_client(pipeline_client_pointer self) {
  auto run = self->state.run;
  self->quit();
  if (run->clients_left.fetch_sub(1) == 1)
    run->done.set_value(run->failure);
}

template <class Reply, class Dest, class Check, class... Ts>
void send_one(pipeline_client_pointer self, Dest dest, Check check, Ts... xs) {
  auto& st = self->state;
  st.to_send -= 1;
  st.outstanding += 1;
  auto on_reply = [=](bool ok) {
    auto& st = self->state;
    st.outstanding -= 1;
    st.run->replies.fetch_add(1, std::memory_order_relaxed);
    if (ok && st.to_send > 0)
      send_one<Reply>(self, dest, check, xs...);
    else if (!ok)
      st.to_send = 0;
    if (st.outstanding == 0 && st.to_send == 0)
      finish_client(self);
  };
  self->request(dest, caf::infinite, xs...)
    .then(
      [=](const Reply& reply) {
        auto why = check(reply);
        auto& run = *self->state.run;
        if (!why.empty() && !run.failed.exchange(true))
          run.failure = why;
        on_reply(why.empty());
      },
      [=](caf::error& err) {
        auto& run = *self->state.run;
        if (!run.failed.exchange(true))
          run.failure = self->system().render(err);
        on_reply(false);
      });
}

} // namespace detail

/// Sends `shape.requests` requests `xs...` to `dest` from `shape.clients`
/// pooled client actors, each keeping up to `shape.window` outstanding, and
/// times the run from the first send to the last reply. `check` as in
/// scoped_round_trips; a failure stops further sends.
template <class Reply, class Dest, class Check, class... Ts>
pipeline_outcome pipelined_requests(caf::actor_system& sys, const Dest& dest,
                                    pipeline_shape shape, Check check,
                                    const Ts&... xs) {
  auto run = std::make_shared<detail::pipeline_run>();
  run->clients_left = shape.clients;
  auto outcome = run->done.get_future();
  auto start = clock_type::now();
  for (size_t i = 0; i < shape.clients; ++i) {
    auto quota = shape.requests / shape.clients
                 + (i < shape.requests % shape.clients ? 1 : 0);
    sys.spawn([=](detail::pipeline_client_pointer self) {
      self->state.run = run;
      self->state.to_send = quota;
      if (quota == 0) {
        detail::finish_client(self);
        return;
      }
      for (size_t k = 0; k < shape.window && self->state.to_send > 0; ++k)
        detail::send_one<Reply>(self, dest, check, xs...);
    });
  }
  pipeline_outcome result;
  result.failure = outcome.get();
  result.seconds =
    static_cast<double>(nanos_between(start, clock_type::now())) / 1e9;
  result.replies = run->replies.load();
  return result;
}

} // namespace vidnode::bench
