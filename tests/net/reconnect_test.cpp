/// net::wait_with_reconnect and net::watch_with_reconnect against fake heads
/// in this process on 127.0.0.1: a head whose published actor ends stands
/// in for one that was killed, and a new fake published on the same port
/// for the head restarted (with its journal, or without it).

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>

#include "vidnode/net/client.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::job_event;
using runtime::job_id;
using runtime::job_result;
using runtime::job_state;

namespace {

using steady_clock = std::chrono::steady_clock;

/// What the test saw, written from the client's threads and read by the
/// test's: events passed on, requests a fake head received, notices.
struct recorder {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<job_event> events;
  std::vector<std::string> requests;
  int lost = 0;
  int reconnected = 0;
  /// The causes on_lost was told.
  std::vector<caf::error> causes;

  template <class F>
  void update(F f) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      f();
    }
    changed.notify_all();
  }

  /// Waits until `done` holds (checked under the lock), at most 10 s.
  bool await(const std::function<bool()>& done) {
    std::unique_lock<std::mutex> guard{mutex};
    return changed.wait_for(guard, 10s, done);
  }

  size_t count_requests(const std::string& what) {
    return static_cast<size_t>(
      std::count(requests.begin(), requests.end(), what));
  }

  net::reconnect_policy policy(caf::timespan outage_limit) {
    net::reconnect_policy p;
    p.outage_limit = outage_limit;
    p.first_pause = 10ms;
    p.max_pause = 100ms;
    p.on_lost = [this](const caf::error& cause, steady_clock::time_point) {
      update([&] {
        ++lost;
        causes.push_back(cause);
      });
    };
    p.on_reconnected = [this] { update([&] { ++reconnected; }); };
    return p;
  }
};

using emit_atom = caf::atom_constant<caf::atom("emit")>;

/// A head that knows one job (or none) and changes it when told (emit).
using fake_head_actor =
  runtime::admission_actor::extend<caf::reacts_to<emit_atom, job_event>>;

struct fake_head_state {
  static inline const char* name = "test.fake_head";
  std::optional<job_result> job;
  std::vector<runtime::job_observer_actor> observers;
  std::vector<caf::typed_response_promise<job_result>> waiters;
};

fake_head_actor::behavior_type
fake_head(fake_head_actor::stateful_pointer<fake_head_state> self,
          std::optional<job_result> job, recorder* seen) {
  using namespace runtime;
  self->state.job = std::move(job);
  auto unknown = [](job_id id) {
    return make_error(errc::unknown_job, "job " + to_string(id));
  };
  auto unused = [] { return make_error(errc::internal, "not in this test"); };
  auto log = [seen](const char* what) {
    seen->update([&] { seen->requests.emplace_back(what); });
  };
  return {
    [=](submit_atom, job_spec&) -> caf::result<job_id> { return unused(); },
    [=](execute_atom, job_spec&) -> caf::result<job_result> {
      return unused();
    },
    [=](status_atom, job_id id) -> caf::result<job_result> {
      auto& job = self->state.job;
      if (!job || job->id != id)
        return unknown(id);
      return *job;
    },
    [=](wait_atom, job_id id, caf::timespan) -> caf::result<job_result> {
      log("wait");
      auto& job = self->state.job;
      if (!job || job->id != id)
        return unknown(id);
      if (is_terminal(job->state))
        return *job;
      auto promise = self->make_response_promise<job_result>();
      self->state.waiters.push_back(promise);
      return promise;
    },
    [=](cancel_atom, job_id) -> caf::result<job_result> { return unused(); },
    [=](retry_atom, job_id) -> caf::result<job_result> { return unused(); },
    [=](list_atom, list_query&) -> caf::result<std::vector<job_result>> {
      return unused();
    },
    [=](nodes_atom) -> caf::result<std::vector<device_status>> {
      return unused();
    },
    [=](subscribe_atom, job_id id,
        job_observer_actor& observer) -> caf::result<job_result> {
      log("subscribe");
      auto& job = self->state.job;
      if (!job || job->id != id)
        return unknown(id);
      if (!is_terminal(job->state))
        self->state.observers.push_back(observer);
      return *job;
    },
    [=](read_output_atom, job_id, uint64_t,
        uint32_t) -> caf::result<output_chunk> { return unused(); },
    [=](emit_atom, job_event& event) {
      auto& st = self->state;
      st.job->state = event.state;
      st.job->step = event.step;
      st.job->steps = event.steps;
      st.job->attempts = event.attempt;
      for (auto& observer : st.observers)
        self->send(observer, event);
      if (is_terminal(event.state)) {
        for (auto& waiter : st.waiters)
          waiter.deliver(*st.job);
        st.waiters.clear();
        st.observers.clear();
      }
    },
  };
}

/// Job 1 of `steps` steps in `state` at `step`, attempt `attempt`.
job_result job_at(job_state state, int32_t step, int32_t steps = 10,
                  int32_t attempt = 1) {
  job_result r;
  r.id = job_id{1};
  r.model = "sim";
  r.state = state;
  r.step = step;
  r.steps = steps;
  r.attempts = attempt;
  return r;
}

job_event event_at(job_state state, int32_t step, int32_t steps = 10,
                   int32_t attempt = 1) {
  job_event e;
  e.id = job_id{1};
  e.state = state;
  e.step = step;
  e.steps = steps;
  e.attempt = attempt;
  e.at = caf::make_timestamp();
  return e;
}

/// Fake heads published one after another on one port of 127.0.0.1, in an
/// actor system of their own.
class fake_heads {
public:
  explicit fake_heads(recorder& seen) : seen_(seen) {}

  ~fake_heads() {
    stop();
    sys_.middleman().stop();
  }

  /// Publishes a fake head knowing `job` (none: it knows no job) on the
  /// port of the ones before (any free port for the first).
  void start(std::optional<job_result> job) {
    REQUIRE_FALSE(head_);
    head_ = sys_.spawn(fake_head, std::move(job), &seen_);
    auto port =
      sys_.middleman().publish(caf::actor_cast<runtime::admission_actor>(head_),
                               port_, "127.0.0.1", true);
    REQUIRE(port);
    port_ = *port;
  }

  /// Ends the head now running, as a head that exits does for its clients.
  void stop() {
    if (!head_)
      return;
    static_cast<void>(sys_.middleman().unpublish(head_, port_));
    caf::anon_send_exit(head_, caf::exit_reason::kill);
    head_ = nullptr;
  }

  void emit(const job_event& event) {
    caf::anon_send(head_, emit_atom::value, event);
  }

  net::client::options client_options() const {
    net::client::options opts;
    opts.host = "127.0.0.1";
    opts.port = port_;
    opts.connect_timeout = 5s;
    opts.request_timeout = 5s;
    return opts;
  }

private:
  recorder& seen_;
  net::process_config cfg_;
  caf::actor_system sys_{cfg_};
  fake_head_actor head_;
  uint16_t port_ = 0;
};

/// The (state, step, attempt) of each event passed on, for comparisons.
std::vector<std::string> progress_of(recorder& seen) {
  std::lock_guard<std::mutex> guard{seen.mutex};
  std::vector<std::string> result;
  for (const auto& e : seen.events)
    result.push_back(std::string{runtime::to_string(e.state)} + " "
                     + std::to_string(e.step) + "/" + std::to_string(e.steps)
                     + " #" + std::to_string(e.attempt));
  return result;
}

} // namespace

TEST_CASE("wait_with_reconnect connects again after the head ended and "
          "returns the answer of the new head",
          "[net][reconnect]") {
  recorder seen;
  fake_heads heads{seen};
  heads.start(job_at(job_state::running, 3));
  auto opts = heads.client_options();
  auto waiting = std::async(std::launch::async, [&] {
    return net::wait_with_reconnect(opts, nullptr, job_id{1},
                                    steady_clock::time_point::max(),
                                    seen.policy(10s));
  });
  REQUIRE(seen.await([&] { return seen.count_requests("wait") == 1; }));
  heads.stop();
  REQUIRE(seen.await([&] { return seen.lost == 1; }));

  SECTION("a head that kept the job: its end") {
    heads.start(job_at(job_state::succeeded, 10));
    auto outcome = waiting.get();
    REQUIRE(outcome);
    CHECK(outcome->result.state == job_state::succeeded);
    CHECK(outcome->connection);
  }
  SECTION("a head that lost the job: unknown_job") {
    heads.start(std::nullopt);
    auto outcome = waiting.get();
    REQUIRE_FALSE(outcome);
    CHECK(runtime::is(outcome.error(), runtime::errc::unknown_job));
  }
  CHECK(seen.lost == 1);
  CHECK(seen.reconnected == 1);
  for (const auto& cause : seen.causes)
    CHECK(runtime::is(cause, runtime::errc::node_lost));
}

TEST_CASE("wait_with_reconnect gives up with node_lost once the outage "
          "limit or the deadline has passed without a head",
          "[net][reconnect]") {
  recorder seen;
  fake_heads heads{seen};
  heads.start(job_at(job_state::running, 3));
  auto opts = heads.client_options();
  auto limit_by_deadline = GENERATE(false, true);
  // One of the two ends the attempts after 300 ms; the other is far off.
  auto deadline = limit_by_deadline ? steady_clock::now() + 300ms
                                    : steady_clock::time_point::max();
  auto outage = limit_by_deadline ? caf::timespan{30s} : caf::timespan{300ms};
  auto waiting = std::async(std::launch::async, [&] {
    return net::wait_with_reconnect(opts, nullptr, job_id{1}, deadline,
                                    seen.policy(outage));
  });
  REQUIRE(seen.await([&] { return seen.count_requests("wait") == 1; }));
  auto stopped = steady_clock::now();
  heads.stop();
  auto outcome = waiting.get();
  auto took = steady_clock::now() - stopped;
  REQUIRE_FALSE(outcome);
  INFO(runtime::describe(outcome.error()));
  CHECK(runtime::is(outcome.error(), runtime::errc::node_lost));
  CHECK_THAT(runtime::detail_of(outcome.error()),
             Catch::Contains("could not connect again within"));
  CHECK(took < 5s);
  if (!limit_by_deadline)
    CHECK(took >= 300ms);
  CHECK(seen.lost == 1);
  CHECK(seen.reconnected == 0);
}

TEST_CASE("watch_with_reconnect subscribes again after the head ended and "
          "passes no event twice",
          "[net][reconnect]") {
  recorder seen;
  fake_heads heads{seen};
  heads.start(job_at(job_state::running, 3));
  auto opts = heads.client_options();
  auto watching = std::async(std::launch::async, [&] {
    return net::watch_with_reconnect(
      opts, nullptr, job_id{1},
      [&](const job_event& e) {
        seen.update([&] { seen.events.push_back(e); });
      },
      seen.policy(10s));
  });
  REQUIRE(seen.await([&] { return seen.events.size() == 1; }));
  heads.emit(event_at(job_state::running, 4));
  heads.emit(event_at(job_state::running, 5));
  REQUIRE(seen.await([&] { return seen.events.size() == 3; }));
  REQUIRE(seen.await([&] { return seen.count_requests("wait") == 1; }));
  heads.stop();
  REQUIRE(seen.await([&] { return seen.lost == 1; }));

  std::vector<std::string> expected = {"running 3/10 #1", "running 4/10 #1",
                                       "running 5/10 #1"};
  SECTION("a head whose job stands where the last event left it: its "
          "first event is not passed again") {
    heads.start(job_at(job_state::running, 5));
    REQUIRE(seen.await([&] { return seen.count_requests("subscribe") == 2; }));
    heads.emit(event_at(job_state::running, 6));
    heads.emit(event_at(job_state::succeeded, 10));
    expected.insert(expected.end(), {"running 6/10 #1", "succeeded 10/10 #1"});
    auto outcome = watching.get();
    REQUIRE(outcome);
    CHECK(outcome->result.state == job_state::succeeded);
  }
  SECTION("a head whose job has moved on (queued again for attempt 2): its "
          "first event is passed") {
    heads.start(job_at(job_state::queued, 0, 10, 2));
    REQUIRE(seen.await([&] { return seen.count_requests("subscribe") == 2; }));
    heads.emit(event_at(job_state::succeeded, 10, 10, 2));
    expected.insert(expected.end(), {"queued 0/10 #2", "succeeded 10/10 #2"});
    auto outcome = watching.get();
    REQUIRE(outcome);
    CHECK(outcome->result.state == job_state::succeeded);
  }
  SECTION("a head that ended the job meanwhile: its end, once") {
    heads.start(job_at(job_state::succeeded, 10));
    expected.push_back("succeeded 10/10 #1");
    auto outcome = watching.get();
    REQUIRE(outcome);
    CHECK(outcome->result.state == job_state::succeeded);
  }
  SECTION("a head that lost the job: unknown_job, and no further event") {
    heads.start(std::nullopt);
    auto outcome = watching.get();
    REQUIRE_FALSE(outcome);
    CHECK(runtime::is(outcome.error(), runtime::errc::unknown_job));
  }
  CHECK(progress_of(seen) == expected);
  CHECK(seen.lost == 1);
  CHECK(seen.reconnected == 1);
  for (const auto& cause : seen.causes)
    CHECK(runtime::is(cause, runtime::errc::node_lost));
}

TEST_CASE("wait_with_reconnect and watch_with_reconnect report a head that "
          "cannot be reached at the start at once",
          "[net][reconnect]") {
  recorder seen;
  net::client::options opts;
  opts.host = "127.0.0.1";
  // Nothing listens on port 1 of this machine.
  opts.port = 1;
  opts.connect_timeout = 5s;
  auto started = steady_clock::now();
  auto waited =
    net::wait_with_reconnect(opts, nullptr, job_id{1},
                             steady_clock::time_point::max(), seen.policy(10s));
  REQUIRE_FALSE(waited);
  CHECK(runtime::is(waited.error(), runtime::errc::node_lost));
  auto watched = net::watch_with_reconnect(
    opts, nullptr, job_id{1}, [](const job_event&) {}, seen.policy(10s));
  REQUIRE_FALSE(watched);
  CHECK(runtime::is(watched.error(), runtime::errc::node_lost));
  CHECK(steady_clock::now() - started < 5s);
  CHECK(seen.lost == 0);
}
