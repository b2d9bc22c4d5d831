#include "http_stream_hub.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include "http_runpod.hpp"
#include "vidnode/net/http_gateway.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::net::detail {

namespace {

using follow_atom = caf::atom_constant<caf::atom("follow")>;

/// How long the observer waits for admission's answers.
constexpr auto answer_timeout = std::chrono::seconds{30};

/// Feeds a hub with the events of the jobs it follows. Admission sends a
/// job's events to it once it subscribed; it asks for a job's result when
/// the job ended.
caf::behavior stream_observer(caf::event_based_actor* self, stream_hub* hub,
                              runtime::admission_actor admission) {
  return {
    [=](const runtime::job_event& event) {
      hub->on_event(event);
      if (event.state != runtime::job_state::succeeded)
        return;
      self
        ->request(admission, answer_timeout, runtime::status_atom::value,
                  event.id)
        .then(
          [=](const runtime::job_result& result) { hub->on_result(result); },
          [=](const caf::error& err) { hub->on_unknown(event.id, err); });
    },
    [=](follow_atom, runtime::job_id id) {
      self
        ->request(admission, answer_timeout, runtime::subscribe_atom::value, id,
                  caf::actor_cast<runtime::job_observer_actor>(self))
        .then(
          [=](const runtime::job_result& snapshot) {
            hub->on_subscribed(snapshot);
          },
          [=](const caf::error& err) { hub->on_unknown(id, err); });
    },
  };
}

} // namespace

stream_hub::stream_hub(
  caf::actor_system& sys, runtime::admission_actor admission,
  std::function<nlohmann::json(const runtime::job_result&)> output_of)
  : admission_(std::move(admission)), output_of_(std::move(output_of)) {
  observer_ = sys.spawn(stream_observer, this, admission_);
}

stream_hub::~stream_hub() {
  stop();
  caf::scoped_actor self{observer_.home_system()};
  self->send_exit(observer_, caf::exit_reason::user_shutdown);
  self->wait_for(observer_);
}

void stream_hub::stop() {
  std::lock_guard<std::mutex> guard{mutex_};
  stopped_ = true;
  changed_.notify_all();
}

size_t stream_hub::size() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return jobs_.size();
}

stream_hub::followed_job& stream_hub::entry(runtime::job_id id) {
  auto [i, added] = jobs_.try_emplace(id);
  if (added) {
    forget_old(std::chrono::steady_clock::now());
    caf::anon_send(observer_, follow_atom::value, id);
  }
  return i->second;
}

void stream_hub::forget_old(std::chrono::steady_clock::time_point now) {
  auto ended_long_ago = [&](const followed_job& job) {
    return runtime::is_terminal(job.state) && !job.awaiting_result
           && job.ended_at + kept_after_end < now;
  };
  if (jobs_.size() < max_followed / 2)
    return;
  for (auto i = jobs_.begin(); i != jobs_.end();)
    i = ended_long_ago(i->second) ? jobs_.erase(i) : std::next(i);
  while (jobs_.size() >= max_followed) {
    auto oldest = jobs_.end();
    for (auto i = jobs_.begin(); i != jobs_.end(); ++i)
      if (runtime::is_terminal(i->second.state) && !i->second.awaiting_result
          && (oldest == jobs_.end()
              || i->second.ended_at < oldest->second.ended_at))
        oldest = i;
    if (oldest == jobs_.end())
      break;
    jobs_.erase(oldest);
  }
}

void stream_hub::follow(runtime::job_id id) {
  std::lock_guard<std::mutex> guard{mutex_};
  entry(id);
}

void stream_hub::refollow(runtime::job_id id) {
  std::lock_guard<std::mutex> guard{mutex_};
  jobs_.erase(id);
  entry(id);
  changed_.notify_all();
}

caf::expected<stream_take> stream_hub::take(runtime::job_id id,
                                            std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_lock<std::mutex> guard{mutex_};
  entry(id);
  auto ready = [&] {
    auto i = jobs_.find(id);
    if (stopped_ || i == jobs_.end())
      return true;
    const auto& job = i->second;
    return job.failure || !job.pending.empty()
           || (job.subscribed && runtime::is_terminal(job.state)
               && !job.awaiting_result);
  };
  changed_.wait_until(guard, deadline, ready);
  auto i = jobs_.find(id);
  if (i == jobs_.end())
    return runtime::make_error(runtime::errc::unknown_job,
                               "job " + runtime::to_string(id));
  auto& job = i->second;
  if (job.failure && !job.subscribed) {
    auto err = job.failure;
    jobs_.erase(i);
    return err;
  }
  stream_take result;
  result.status = job.awaiting_result
                    ? runpod_status_name(runtime::job_state::running)
                    : runpod_status_name(job.state);
  result.chunks.assign(std::make_move_iterator(job.pending.begin()),
                       std::make_move_iterator(job.pending.end()));
  job.pending.clear();
  return result;
}

void stream_hub::on_event(const runtime::job_event& event) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = jobs_.find(event.id);
  if (i == jobs_.end())
    return;
  auto& job = i->second;
  job.state = event.state;
  if (event.step > 0
      && (event.attempt != job.attempt || event.step != job.step))
    job.pending.push_back(
      {{"output", {{"step", event.step}, {"steps", event.steps}}}});
  job.attempt = event.attempt;
  job.step = event.step;
  if (runtime::is_terminal(event.state)) {
    job.ended_at = std::chrono::steady_clock::now();
    job.awaiting_result = event.state == runtime::job_state::succeeded;
  }
  changed_.notify_all();
}

void stream_hub::on_subscribed(const runtime::job_result& snapshot) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = jobs_.find(snapshot.id);
  if (i == jobs_.end())
    return;
  auto& job = i->second;
  job.subscribed = true;
  // Events sent before the subscription are not known; one that came in
  // already is newer than the snapshot.
  if (job.attempt == 0) {
    job.state = snapshot.state;
    job.attempt = snapshot.attempts;
    job.step = snapshot.step;
  }
  if (runtime::is_terminal(snapshot.state) && !job.awaiting_result
      && job.ended_at == std::chrono::steady_clock::time_point{}) {
    // The job had ended before the subscription: no event will come.
    job.state = snapshot.state;
    job.ended_at = std::chrono::steady_clock::now();
    if (snapshot.state == runtime::job_state::succeeded)
      job.pending.push_back({{"output", output_of_(snapshot)}});
  }
  changed_.notify_all();
}

void stream_hub::on_result(const runtime::job_result& result) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = jobs_.find(result.id);
  if (i == jobs_.end() || !i->second.awaiting_result)
    return;
  i->second.awaiting_result = false;
  i->second.pending.push_back({{"output", output_of_(result)}});
  changed_.notify_all();
}

void stream_hub::on_unknown(runtime::job_id id, const caf::error& err) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = jobs_.find(id);
  if (i == jobs_.end())
    return;
  if (i->second.subscribed) {
    // The result of an ended job could not be read (it expired): the
    // stream ends without its output.
    i->second.awaiting_result = false;
  } else {
    i->second.failure = err;
  }
  changed_.notify_all();
}

} // namespace vidnode::net::detail
