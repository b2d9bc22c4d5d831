#include "vidctl/job_progress.hpp"

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "vidctl/output.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::vidctl {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds redraw_interval{100};
constexpr milliseconds lookup_retry{1000};
constexpr caf::timespan lookup_timeout = std::chrono::seconds{5};

milliseconds since(clock::time_point t, clock::time_point now) {
  return std::chrono::duration_cast<milliseconds>(now - t);
}

milliseconds to_ms(caf::timespan span) {
  return std::chrono::duration_cast<milliseconds>(span);
}

} // namespace

bool live_progress_wanted(const terminal_traits& traits) {
  return traits.interactive && !json_output;
}

struct job_progress::state {
  runtime::job_id id;
  net::client::options options;
  terminal_traits traits;
  bool log_events = false;
  live_line line;

  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;

  // What the events said last.
  bool seen = false;
  runtime::job_event last;
  /// When this attempt (or this stay in the queue) was first seen.
  clock::time_point phase_seen_at;
  /// The step rate of this attempt: its first step seen, its latest.
  int32_t base_step = -1;
  clock::time_point base_at;
  clock::time_point step_at;
  /// Frozen at the end.
  std::optional<milliseconds> final_elapsed;

  // What the latest status call said, for the attempt and state it was
  // made for.
  bool lookup_wanted = false;
  int32_t looked_up_attempt = -1;
  runtime::job_state looked_up_state = runtime::job_state::queued;
  std::string node;
  milliseconds phase_time{0};
  clock::time_point looked_up_at;

  std::thread drawer;
  std::thread looker;

  bool lookup_current() const {
    return looked_up_attempt == last.attempt && looked_up_state == last.state;
  }

  /// How long the job has run in this attempt, or queued.
  milliseconds elapsed(clock::time_point now) const {
    if (final_elapsed)
      return *final_elapsed;
    if (lookup_current())
      return phase_time + since(looked_up_at, now);
    return since(phase_seen_at, now);
  }

  std::string where() const {
    if (last.device.empty())
      return {};
    auto text = last.device;
    if (!node.empty() && looked_up_attempt == last.attempt)
      text += " on " + node;
    return text;
  }

  std::string eta(clock::time_point now) const {
    if (base_step < 0 || last.step <= base_step || step_at <= base_at)
      return "ETA --";
    auto per_step = std::chrono::duration<double>(step_at - base_at).count()
                    / (last.step - base_step);
    auto left = per_step * (last.steps - last.step)
                - std::chrono::duration<double>(now - step_at).count();
    return "ETA "
           + clock_text(
             milliseconds{static_cast<long long>(std::max(left, 0.0) * 1000)});
  }

  /// The line as it stands at `now`, for a window `columns` wide.
  std::string render(clock::time_point now, int columns) const {
    auto head =
      styled("job " + std::to_string(id.value), text_style::bold, traits);
    if (!seen)
      return head + "  waiting for the node";
    std::string tail =
      std::to_string(last.step) + "/" + std::to_string(last.steps);
    auto time = clock_text(elapsed(now));
    switch (last.state) {
      case runtime::job_state::queued:
        tail += "  queued " + time;
        if (last.attempt > 0)
          tail += "  (attempt " + std::to_string(last.attempt + 1) + " next)";
        break;
      case runtime::job_state::running:
        tail += "  elapsed " + time + "  " + eta(now);
        break;
      default:
        tail += "  "
                + styled(runtime::to_string(last.state),
                         last.state == runtime::job_state::succeeded
                           ? text_style::green
                           : text_style::red,
                         traits);
        if (final_elapsed)
          tail += " after " + time;
    }
    if (!last.device.empty())
      tail += "  " + where();
    if (last.attempt > 0)
      tail += "  attempt " + std::to_string(last.attempt);
    auto room = columns - 1 - static_cast<int>(cells_of(head))
                - static_cast<int>(cells_of(tail)) - 4;
    auto fraction = last.steps > 0 ? double(last.step) / last.steps
                                   : (runtime::is_terminal(last.state) ? 1 : 0);
    return head + "  " + render_bar(fraction, std::clamp(room, 12, 42), traits)
           + "  " + tail;
  }

  void draw() {
    std::lock_guard<std::mutex> guard{mutex};
    line.show(render(clock::now(), terminal_size().columns));
  }

  void draw_loop() {
    std::unique_lock<std::mutex> guard{mutex};
    while (!done) {
      guard.unlock();
      draw();
      guard.lock();
      changed.wait_for(guard, redraw_interval, [this] { return done; });
    }
  }

  void lookup_loop() {
    std::unique_ptr<net::client> connection;
    std::unique_lock<std::mutex> guard{mutex};
    for (;;) {
      changed.wait(guard, [this] { return done || lookup_wanted; });
      if (done)
        return;
      lookup_wanted = false;
      guard.unlock();
      if (!connection) {
        auto connected = net::client::connect(options);
        if (connected)
          connection = std::move(*connected);
      }
      std::optional<runtime::job_result> result;
      if (connection) {
        if (auto answer = connection->status(id))
          result = std::move(*answer);
        else
          connection.reset();
      }
      guard.lock();
      if (!result) {
        lookup_wanted = true;
        changed.wait_for(guard, lookup_retry, [this] { return done; });
        continue;
      }
      // Kept only if the job is still where the events say: the events
      // name the attempt and state, the call the node and times.
      if (result->attempts != last.attempt || result->state != last.state)
        continue;
      looked_up_attempt = result->attempts;
      looked_up_state = result->state;
      node = result->node;
      phase_time =
        to_ms(result->state == runtime::job_state::queued ? result->queue_time
                                                          : result->run_time);
      looked_up_at = clock::now();
    }
  }

  void print_above(const std::string& text) {
    line.print_above([&] { std::cout << text << std::endl; });
  }

  /// Takes `event`; `mutex` is held.
  void take(const runtime::job_event& event) {
    auto now = clock::now();
    auto retried = seen && last.state == runtime::job_state::running
                   && event.state == runtime::job_state::queued;
    if (retried) {
      auto text = "job " + std::to_string(id.value) + ": attempt "
                  + std::to_string(event.attempt);
      if (!event.device.empty())
        text += " (" + where() + ")";
      text += " failed after " + std::to_string(event.step) + "/"
              + std::to_string(event.steps) + " steps";
      if (event.error)
        text += ": " + runtime::describe(event.error);
      text += "; queued again for attempt " + std::to_string(event.attempt + 1);
      print_above(styled(text, text_style::yellow, traits));
    }
    if (log_events
        && (!seen || event.state != last.state || event.attempt != last.attempt
            || event.error))
      print_above(event_line(event));
    if (!seen || event.state != last.state || event.attempt != last.attempt) {
      phase_seen_at = now;
      if (runtime::is_terminal(event.state) && seen)
        final_elapsed = elapsed(now);
      base_step = -1;
      lookup_wanted = !runtime::is_terminal(event.state);
    }
    if (event.state == runtime::job_state::running && event.step > 0) {
      if (base_step < 0) {
        base_step = event.step;
        base_at = now;
      }
      step_at = now;
    }
    last = event;
    seen = true;
    changed.notify_all();
  }
};

job_progress::job_progress(runtime::job_id id,
                           const net::client::options& options,
                           const terminal_traits& traits, bool log_events)
  : state_(std::make_unique<state>()) {
  auto& st = *state_;
  st.id = id;
  st.options = options;
  st.options.connect_timeout =
    std::min(options.connect_timeout, lookup_timeout);
  st.options.request_timeout =
    std::min(options.request_timeout, lookup_timeout);
  st.traits = traits;
  st.log_events = log_events;
  st.drawer = std::thread{[&st] { st.draw_loop(); }};
  st.looker = std::thread{[&st] { st.lookup_loop(); }};
}

job_progress::~job_progress() {
  finish();
}

void job_progress::on_event(const runtime::job_event& event) {
  std::lock_guard<std::mutex> guard{state_->mutex};
  state_->take(event);
}

std::function<void(const runtime::job_event&)> job_progress::observer() {
  return [this](const runtime::job_event& event) { on_event(event); };
}

net::reconnect_policy job_progress::around(net::reconnect_policy policy) {
  auto& st = *state_;
  auto on_lost = std::move(policy.on_lost);
  auto on_reconnected = std::move(policy.on_reconnected);
  policy.on_lost = [&st, on_lost](const caf::error& cause,
                                  clock::time_point until) {
    if (on_lost)
      st.line.print_above([&] { on_lost(cause, until); });
  };
  policy.on_reconnected = [&st, on_reconnected] {
    if (on_reconnected)
      st.line.print_above(on_reconnected);
  };
  return policy;
}

void job_progress::finish() {
  auto& st = *state_;
  {
    std::lock_guard<std::mutex> guard{st.mutex};
    if (st.done)
      return;
    st.done = true;
    st.changed.notify_all();
  }
  st.drawer.join();
  st.looker.join();
  st.draw();
  st.line.close();
}

} // namespace vidnode::vidctl
