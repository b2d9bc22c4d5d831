#include "vidctl/top.hpp"

#include <time.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "vidctl/output.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::vidctl {

namespace {

using std::chrono::milliseconds;
using wall_clock = std::chrono::system_clock;

/// How many finished jobs beyond the active ones each refresh asks for.
constexpr uint32_t finished_window = 100;

/// The longest a key or a resize waits for the screen to be drawn again.
constexpr milliseconds input_slice{250};

/// What the node said at the last refresh that worked, and how the latest
/// one went.
struct node_view {
  bool answered = false;
  std::vector<runtime::device_status> devices;
  /// Queued and running jobs, oldest first.
  std::vector<runtime::job_result> active;
  /// Failed and timed out jobs, newest first.
  std::vector<runtime::job_result> failures;
  wall_clock::time_point answered_at;
  /// Why the latest refresh failed; empty if it worked.
  std::string problem;
  wall_clock::time_point failing_since;
};

/// "23:08:24", in UTC (as every time vidctl prints).
std::string time_of_day(wall_clock::time_point t) {
  auto seconds = wall_clock::to_time_t(t);
  tm parts{};
  gmtime_r(&seconds, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &parts);
  return text;
}

/// Asks the node every interval and keeps what it said; on a thread of its
/// own.
class refresher {
public:
  refresher(net::client::options options, caf::timespan interval)
    : options_(std::move(options)), interval_(interval) {
    thread_ = std::thread{[this] {
      run();
      stopped_.set_value();
    }};
  }

  ~refresher() {
    if (thread_.joinable())
      stop(milliseconds{1000});
  }

  refresher(const refresher&) = delete;
  refresher& operator=(const refresher&) = delete;

  /// Stops the thread; false if it is still in a call after `grace` (it
  /// is then left running, detached, and the process must end at once).
  bool stop(milliseconds grace) {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      stopping_ = true;
    }
    wake_.notify_all();
    if (stopped_.get_future().wait_for(grace) != std::future_status::ready) {
      thread_.detach();
      return false;
    }
    thread_.join();
    return true;
  }

  node_view view() {
    std::lock_guard<std::mutex> guard{mutex_};
    return view_;
  }

private:
  void run() {
    std::unique_ptr<net::client> node;
    std::unique_lock<std::mutex> guard{mutex_};
    while (!stopping_) {
      guard.unlock();
      auto started = std::chrono::steady_clock::now();
      node_view fresh;
      auto problem = refresh(node, fresh);
      guard.lock();
      if (problem) {
        if (view_.problem.empty())
          view_.failing_since = wall_clock::now();
        view_.problem = runtime::describe(problem);
      } else {
        view_ = std::move(fresh);
      }
      wake_.wait_until(guard, started + interval_,
                       [this] { return stopping_; });
    }
  }

  /// Fills `fresh` from the node, connecting first if need be; the error
  /// that stopped it (the connection is then dropped).
  caf::error refresh(std::unique_ptr<net::client>& node, node_view& fresh) {
    if (!node) {
      auto connected = net::client::connect(options_);
      if (!connected)
        return std::move(connected.error());
      node = std::move(*connected);
    }
    auto fail = [&](caf::error err) {
      node.reset();
      return err;
    };
    auto devices = node->nodes();
    if (!devices)
      return fail(std::move(devices.error()));
    auto active = node->list(runtime::list_query{false, 0, {}});
    if (!active)
      return fail(std::move(active.error()));
    auto latest = node->list(runtime::list_query{
      true, static_cast<uint32_t>(active->size()) + finished_window, {}});
    if (!latest)
      return fail(std::move(latest.error()));
    for (auto& job : *latest)
      if (job.state == runtime::job_state::failed
          || job.state == runtime::job_state::timed_out)
        fresh.failures.push_back(std::move(job));
    fresh.devices = std::move(*devices);
    fresh.active = std::move(*active);
    fresh.answered = true;
    fresh.answered_at = wall_clock::now();
    return caf::none;
  }

  net::client::options options_;
  caf::timespan interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  node_view view_;
  std::promise<void> stopped_;
  std::thread thread_;
};

/// Rows as columns two spaces apart, padded by the cells each takes.
std::vector<std::string>
columns_of(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      width.resize(std::max(width.size(), i + 1));
      width[i] = std::max(width[i], cells_of(row[i]));
    }
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] - cells_of(row[i]) + 2, ' ');
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

text_style style_of_device(const std::string& state) {
  if (state == "idle" || state == "busy")
    return state == "busy" ? text_style::green : text_style::dim;
  return state == "restarting" ? text_style::yellow : text_style::red;
}

/// A running job as a device's row shows it: "12 |███   | 10/20 try 1".
std::string job_cell(const runtime::job_result& job,
                     const terminal_traits& traits) {
  auto fraction = job.steps > 0 ? double(job.step) / job.steps : 0.0;
  return std::to_string(job.id.value) + " " + render_bar(fraction, 22, traits)
         + " " + std::to_string(job.step) + "/" + std::to_string(job.steps)
         + "  "
         + clock_text(std::chrono::duration_cast<milliseconds>(job.run_time))
         + "  attempt " + std::to_string(job.attempts);
}

/// The screen's lines for `view`.
std::vector<std::string> render(const node_view& view,
                                const std::string& address,
                                caf::timespan interval,
                                const terminal_traits& traits) {
  std::vector<std::string> lines;
  auto bold = [&](const std::string& text) {
    return styled(text, text_style::bold, traits);
  };
  lines.push_back(styled("vidctl top  " + address + "  every "
                           + runtime::format_duration(interval) + "  "
                           + time_of_day(wall_clock::now()) + " UTC  (q quits)",
                         text_style::inverse, traits));
  if (!view.problem.empty()) {
    auto said = view.answered
                  ? "; below: what it said at " + time_of_day(view.answered_at)
                  : std::string{};
    lines.push_back(styled(
      "UNREACHABLE since " + time_of_day(view.failing_since)
        + ", asking again every " + runtime::format_duration(interval) + said,
      text_style::red, traits));
    lines.push_back(styled("  " + view.problem, text_style::red, traits));
  }
  if (!view.answered) {
    if (view.problem.empty())
      lines.push_back("asking " + address + "...");
    return lines;
  }
  std::map<std::string, int> devices_of_node;
  for (const auto& d : view.devices)
    devices_of_node[d.node] += 1;
  std::unordered_map<uint64_t, const runtime::job_result*> active_by_id;
  std::map<int32_t, std::pair<size_t, caf::timespan>, std::greater<>> queue;
  size_t running = 0;
  for (const auto& job : view.active) {
    active_by_id[job.id.value] = &job;
    if (job.state == runtime::job_state::running) {
      ++running;
    } else {
      auto& [count, oldest] = queue[job.priority];
      ++count;
      oldest = std::max(oldest, job.queue_time);
    }
  }
  std::string nodes;
  for (const auto& [name, count] : devices_of_node)
    nodes += (nodes.empty() ? "" : ", ") + name + " (" + std::to_string(count)
             + (count == 1 ? " device)" : " devices)");
  lines.push_back(bold("NODES ") + std::to_string(devices_of_node.size())
                  + (nodes.empty() ? "" : ": " + nodes));
  lines.push_back(bold("JOBS  ") + std::to_string(running) + " running, "
                  + std::to_string(view.active.size() - running) + " queued");
  lines.emplace_back();

  std::vector<std::vector<std::string>> rows = {
    {bold("NODE"), bold("DEVICE"), bold("STATE"), bold("SLOTS"),
     bold("MEMORY RESERVED"), bold("RUNNING")}};
  for (const auto& d : view.devices) {
    auto memory = render_bar(d.memory_bytes > 0 ? double(d.memory_reserved)
                                                    / double(d.memory_bytes)
                                                : 0.0,
                             14, traits)
                  + " " + runtime::format_bytes(d.memory_reserved) + "/"
                  + runtime::format_bytes(d.memory_bytes);
    std::vector<std::string> jobs;
    for (auto id : d.running) {
      auto found = active_by_id.find(id.value);
      jobs.push_back(found != active_by_id.end()
                       ? job_cell(*found->second, traits)
                       : std::to_string(id.value));
    }
    rows.push_back(
      {d.node, d.device, styled(d.state, style_of_device(d.state), traits),
       std::to_string(d.slots_in_use) + "/" + std::to_string(d.slots), memory,
       jobs.empty() ? "-" : jobs.front()});
    for (size_t i = 1; i < jobs.size(); ++i)
      rows.push_back({"", "", "", "", "", jobs[i]});
  }
  for (auto& line : columns_of(rows))
    lines.push_back(std::move(line));
  lines.emplace_back();

  lines.push_back(bold("QUEUE") + " by priority, highest first: "
                  + std::to_string(view.active.size() - running) + " queued");
  if (!queue.empty()) {
    rows = {{bold("PRIORITY"), bold("QUEUED"), bold("LONGEST WAIT")}};
    for (const auto& [priority, entry] : queue)
      rows.push_back(
        {std::to_string(priority), std::to_string(entry.first),
         clock_text(std::chrono::duration_cast<milliseconds>(entry.second))});
    for (auto& line : columns_of(rows))
      lines.push_back(std::move(line));
  }
  lines.emplace_back();

  lines.push_back(bold("RECENT FAILURES") + " failed or timed out, newest "
                  + "first");
  if (view.failures.empty()) {
    lines.push_back("none");
    return lines;
  }
  rows = {{bold("ID"), bold("STATE"), bold("MODEL"), bold("DEVICE"),
           bold("ENDED (UTC)"), bold("ERROR")}};
  for (const auto& job : view.failures)
    rows.push_back(
      {std::to_string(job.id.value),
       styled(runtime::to_string(job.state), text_style::red, traits),
       job.model, job.device.empty() ? "-" : job.device,
       time_of_day(wall_clock::time_point{
         std::chrono::duration_cast<wall_clock::duration>(
           job.finished_at.time_since_epoch())}),
       job.error ? runtime::describe(job.error) : "-"});
  for (auto& line : columns_of(rows))
    lines.push_back(std::move(line));
  return lines;
}

} // namespace

int run_top(const net::client::options& options, caf::timespan interval,
            const terminal_traits& traits) {
  auto address = options.host + ":" + std::to_string(options.port);
  refresher node{options, interval};
  {
    full_screen screen;
    for (;;) {
      screen.draw(render(node.view(), address, interval, traits));
      auto input = screen.wait_for_input(input_slice);
      if (input.keys.find_first_of("qQ") != std::string::npos)
        break;
    }
  }
  if (!node.stop(milliseconds{1000})) {
    // A call to a node that does not answer is still in flight; the screen
    // is given back, and the connection goes with the process.
    std::fflush(nullptr);
    std::_Exit(exit_success);
  }
  return exit_success;
}

} // namespace vidnode::vidctl
