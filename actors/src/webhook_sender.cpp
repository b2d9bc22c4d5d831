#include "vidnode/actors/webhook_sender.hpp"

#include "spawn_transfer.hpp"

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "stray_errors.hpp"

namespace vidnode::actors {

namespace {

/// One try: runs on an actor of its own and reports how it ended.
void notify_task(caf::event_based_actor* self, std::shared_ptr<transfers> mover,
                 webhook_sender_actor sender, uint64_t delivery,
                 std::string url, runtime::job_result result,
                 std::shared_ptr<abort_signal> cancel) {
  self->send(sender, notified_atom::value, delivery,
             mover->notify(url, result, *cancel));
  self->quit();
}

struct webhook_sender_state {
  static inline const char* name = "vidnode.webhooks";

  /// One job's result on its way to its webhook.
  struct delivery {
    std::string url;
    runtime::job_result result;
    int32_t tries = 0;
    /// Why the last try failed.
    std::string last_error;
    /// Set while a try runs.
    std::shared_ptr<abort_signal> cancel;
  };

  std::shared_ptr<transfers> mover;
  webhook_schedule schedule;
  std::unordered_map<uint64_t, delivery> pending;
  uint64_t next_delivery = 0;
  /// A drain's grace period ended: new deliveries get one try, no retry.
  bool stopping = false;
  std::vector<caf::typed_response_promise<caf::ok_atom>> drains;
};

using sender_pointer =
  webhook_sender_actor::stateful_pointer<webhook_sender_state>;

void start_try(sender_pointer self, uint64_t id) {
  auto& d = self->state.pending.at(id);
  ++d.tries;
  d.cancel = std::make_shared<abort_signal>();
  if (self->state.stopping)
    d.cancel->abort(abort_signal::reason::node_stopping);
  spawn_transfer(self, *self->state.mover, notify_task, self->state.mover,
                 webhook_sender_actor{self}, id, d.url, d.result, d.cancel);
}

void give_up(sender_pointer self, uint64_t id, const std::string& cause) {
  auto i = self->state.pending.find(id);
  spdlog::warn("job {}: webhook not delivered to {}: {}",
               i->second.result.id.value, i->second.url, cause);
  self->state.pending.erase(i);
}

void answer_drains_if_done(sender_pointer self) {
  auto& st = self->state;
  if (!st.pending.empty())
    return;
  for (auto& promise : st.drains)
    promise.deliver(caf::ok_atom::value);
  st.drains.clear();
}

webhook_sender_actor::behavior_type
webhook_sender(sender_pointer self, caf::actor_addr owner,
               std::shared_ptr<transfers> mover, webhook_schedule schedule) {
  self->monitor(owner);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  survive_stray_errors(self, "the webhook sender");
  self->state.mover = std::move(mover);
  self->state.schedule = schedule;
  return {
    [=](notify_atom, std::string& url, runtime::job_result& result) {
      auto& st = self->state;
      auto id = ++st.next_delivery;
      st.pending.emplace(id,
                         webhook_sender_state::delivery{
                           std::move(url), std::move(result), 0, {}, nullptr});
      start_try(self, id);
    },
    [=](notified_atom, uint64_t id, caf::error& err) {
      auto& st = self->state;
      auto i = st.pending.find(id);
      if (i == st.pending.end())
        return;
      auto& d = i->second;
      auto aborted = d.cancel && d.cancel->aborted();
      d.cancel = nullptr;
      if (err)
        d.last_error = runtime::detail_of(err);
      if (!err) {
        st.pending.erase(i);
      } else if (aborted || st.stopping
                 || !runtime::is(err, runtime::errc::transfer_failed)) {
        give_up(self, id, runtime::detail_of(err));
      } else if (d.tries >= st.schedule.attempts) {
        give_up(self, id,
                runtime::detail_of(err) + " (tried " + std::to_string(d.tries)
                  + " times, "
                  + runtime::format_duration(st.schedule.retry_delay)
                  + " apart)");
      } else {
        spdlog::info("job {}: webhook try {} of {} failed: {}; trying again "
                     "in {}",
                     d.result.id.value, d.tries, st.schedule.attempts,
                     runtime::detail_of(err),
                     runtime::format_duration(st.schedule.retry_delay));
        self->delayed_send(self, st.schedule.retry_delay, retry_atom::value,
                           id);
      }
      answer_drains_if_done(self);
    },
    [=](retry_atom, uint64_t id) {
      auto i = self->state.pending.find(id);
      if (i != self->state.pending.end() && !i->second.cancel)
        start_try(self, id);
    },
    [=](drain_atom, caf::timespan grace) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      if (st.pending.empty())
        return caf::ok_atom::value;
      auto promise = self->make_response_promise<caf::ok_atom>();
      st.drains.push_back(promise);
      self->delayed_send(self, std::max(grace, caf::timespan{0}),
                         drained_atom::value);
      return promise;
    },
    [=](drained_atom) {
      auto& st = self->state;
      if (st.drains.empty())
        return;
      st.stopping = true;
      std::vector<uint64_t> waiting;
      for (auto& [id, d] : st.pending) {
        if (d.cancel)
          d.cancel->abort(abort_signal::reason::node_stopping);
        else
          waiting.push_back(id);
      }
      for (auto id : waiting) {
        const auto& d = st.pending.at(id);
        give_up(self, id,
                d.last_error + "; the node stopped before try "
                  + std::to_string(d.tries + 1) + " of "
                  + std::to_string(st.schedule.attempts));
      }
      answer_drains_if_done(self);
    },
  };
}

} // namespace

webhook_sender_actor spawn_webhook_sender(caf::actor_system& sys,
                                          caf::actor_addr owner,
                                          std::shared_ptr<transfers> transfers,
                                          webhook_schedule schedule) {
  return sys.spawn(webhook_sender, std::move(owner), std::move(transfers),
                   schedule);
}

} // namespace vidnode::actors
