#pragma once

/// @file
/// The live view of one job that `submit --wait`, `wait` and `watch` show
/// when stdout is a terminal (and not --json): a line redrawn in place with
/// the job's step of steps as a bar, the time the attempt has run (or the
/// job has queued), an estimate of the time left from the step rate of the
/// current attempt, the device and node, and the attempt; above it a line
/// for every retry ("attempt 1 on sim:0 failed at step 3/20: out_of_memory
/// ...; queued again for attempt 2") and, for `watch`, a line for every
/// change of state. What is printed after it (the result) is unchanged.

#include <memory>

#include "vidctl/terminal.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/runtime/job.hpp"

namespace vidnode::vidctl {

/// Whether submit --wait, wait and watch show a job_progress: stdout is an
/// interactive terminal (terminal_traits) and --json was not given.
bool live_progress_wanted(const terminal_traits& traits);

/// The live view of job `id`. It draws at most 10 times a second from a
/// thread of its own, whatever the rate of events. The node and the times
/// of each attempt come from `status` calls on a connection of its own to
/// the node (`options`, each call and connect cut to 5 s), made once per
/// attempt and state; when they fail the view shows what the events say
/// (no node, times counted from when vidctl saw the attempt begin) and
/// tries again a second later. Nothing it does changes what the wait
/// returns or how vidctl exits.
///
/// Thread-safety: on_event, the observer and the reconnect notices may be
/// called from any thread; finish and the destructor from the thread that
/// made it.
class job_progress {
public:
  job_progress(runtime::job_id id, const net::client::options& options,
               const terminal_traits& traits, bool log_events);

  /// finish().
  ~job_progress();

  job_progress(const job_progress&) = delete;
  job_progress& operator=(const job_progress&) = delete;

  /// Takes one event of the job.
  void on_event(const runtime::job_event& event);

  /// A function that passes events to on_event (for client::watch); valid
  /// while this object lives.
  std::function<void(const runtime::job_event&)> observer();

  /// `policy` with its notices (reconnect_notices) printed above the line.
  net::reconnect_policy around(net::reconnect_policy policy);

  /// Stops the threads, draws the line a last time and leaves it on the
  /// screen, with the cursor on the next line. Idempotent.
  void finish();

private:
  struct state;
  std::unique_ptr<state> state_;
};

} // namespace vidnode::vidctl
