#include <deque>
#include <memory>
#include <vector>

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
#include "vidnode/actors/webhook_sender.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;

namespace {

/// Webhooks that answer at once (so their tries run on the test
/// coordinator): each try takes the next scripted outcome, success when
/// the script has run out.
class scripted_webhooks : public actors::transfers {
public:
  std::deque<caf::error> outcomes;
  /// When each try happened, on the test clock.
  std::vector<caf::actor_clock::time_point> tries;
  caf::scheduler::test_coordinator* sched = nullptr;

  caf::expected<uint64_t> fetch(const std::string&, const std::string&,
                                actors::abort_signal&) override {
    return runtime::make_error(errc::internal, "not used");
  }

  caf::error upload(const std::string&, const std::string&,
                    actors::abort_signal&) override {
    return runtime::make_error(errc::internal, "not used");
  }

  caf::error notify(const std::string&, const runtime::job_result&,
                    actors::abort_signal&) override {
    tries.push_back(sched->clock().current_time);
    if (outcomes.empty())
      return caf::none;
    auto next = outcomes.front();
    outcomes.pop_front();
    return next;
  }

  void abort_all() override {}

  bool blocking() const noexcept override {
    return false;
  }
};

caf::error refused() {
  return runtime::make_error(errc::transfer_failed,
                             "notifying http://hooks/x: HTTP 503");
}

struct webhook_fixture : test::deterministic_fixture {
  std::shared_ptr<scripted_webhooks> hooks =
    std::make_shared<scripted_webhooks>();
  caf::actor owner;
  actors::webhook_sender_actor sender;

  webhook_fixture() {
    hooks->sched = &sched;
    owner = sys.spawn(
      [](caf::event_based_actor*) -> caf::behavior { return {[](int) {}}; });
    sender = actors::spawn_webhook_sender(sys, owner.address(), hooks,
                                          actors::webhook_schedule{5, 10s});
    run();
  }

  ~webhook_fixture() {
    caf::anon_send_exit(owner, caf::exit_reason::user_shutdown);
    run();
  }

  void notify(int64_t job) {
    runtime::job_result result;
    result.id = runtime::job_id{static_cast<uint64_t>(job)};
    caf::anon_send(sender, actors::notify_atom::value,
                   std::string{"http://hooks/x"}, result);
    run();
  }

  /// Asks the sender to drain; the flag turns true when it answers.
  std::shared_ptr<bool> drain(caf::timespan grace) {
    auto answered = std::make_shared<bool>(false);
    auto to = sender;
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(to, caf::infinite, actors::drain_atom::value, grace)
        .then([=](caf::ok_atom) { *answered = true; });
    });
    run();
    return answered;
  }

  /// Seconds from `start` of every try so far.
  std::vector<int64_t> try_times(caf::actor_clock::time_point start) const {
    std::vector<int64_t> out;
    for (auto t : hooks->tries)
      out.push_back(
        std::chrono::duration_cast<std::chrono::seconds>(t - start).count());
    return out;
  }
};

} // namespace

TEST_CASE_METHOD(webhook_fixture,
                 "a webhook whose receiver is down is tried again 10 s apart "
                 "until it answers",
                 "[webhooks]") {
  hooks->outcomes = {refused(), refused(), refused()};
  auto start = now();
  notify(1);
  advance(9s);
  CHECK(hooks->tries.size() == 1);
  advance(1min);
  CHECK(try_times(start) == std::vector<int64_t>{0, 10, 20, 30});
  CHECK(*drain(0s));
}

TEST_CASE_METHOD(webhook_fixture,
                 "a webhook is given up after its attempts, and nothing is "
                 "left pending",
                 "[webhooks]") {
  hooks->outcomes = std::deque<caf::error>(10, refused());
  auto start = now();
  notify(2);
  advance(1h);
  CHECK(try_times(start) == std::vector<int64_t>{0, 10, 20, 30, 40});
  CHECK(*drain(0s));
}

TEST_CASE_METHOD(webhook_fixture,
                 "draining waits for a retry due within the grace period",
                 "[webhooks]") {
  hooks->outcomes = {refused()};
  notify(3);
  auto drained = drain(30s);
  advance(9s);
  CHECK_FALSE(*drained);
  advance(1s);
  CHECK(*drained);
  CHECK(hooks->tries.size() == 2);
}

TEST_CASE_METHOD(webhook_fixture,
                 "when the grace period ends, draining answers and a retry "
                 "still waiting is given up",
                 "[webhooks]") {
  hooks->outcomes = std::deque<caf::error>(10, refused());
  notify(4);
  auto drained = drain(3s);
  advance(2s);
  CHECK_FALSE(*drained);
  advance(1s);
  CHECK(*drained);
  advance(1h);
  CHECK(hooks->tries.size() == 1);
}

TEST_CASE_METHOD(webhook_fixture, "the webhook sender ends with its owner",
                 "[webhooks]") {
  auto down = std::make_shared<bool>(false);
  auto watched = sender;
  // Kept: an actor nothing refers to is gone.
  auto watcher = sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
    self->monitor(watched);
    self->set_down_handler([=](caf::down_msg&) { *down = true; });
    return {[](int) {}};
  });
  run();
  CHECK_FALSE(*down);
  caf::anon_send_exit(owner, caf::exit_reason::user_shutdown);
  run();
  CHECK(*down);
}

TEST_CASE_METHOD(webhook_fixture,
                 "a webhook the URL policy refuses is not tried again",
                 "[webhooks]") {
  hooks->outcomes = {runtime::make_error(
    errc::invalid_request, "notifying http://10.0.0.1/: refused: 10.0.0.1 is "
                           "a private address")};
  notify(5);
  advance(1h);
  CHECK(hooks->tries.size() == 1);
}
