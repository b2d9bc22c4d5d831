#pragma once

/// @file
/// What vidctl leaves behind when SIGINT, SIGTERM or SIGHUP ends it: no
/// partial download, a word on the job it had submitted, and the terminal
/// as it was.

#include <functional>
#include <mutex>
#include <string>

namespace vidnode::vidctl {

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, and so in every
/// thread started after it, and starts the one thread that takes them: it
/// removes the file registered with remove_if_interrupted, prints the line
/// registered with say_if_interrupted on stderr (after the terminal was
/// given back by the function registered with
/// restore_terminal_if_interrupted), and ends vidctl by the
/// signal's default action (the exit status shows the signal, as before).
/// Call once, first in main, before any other thread starts.
void handle_interrupts();

/// Held, the signal thread does not act: code that creates a file and
/// registers it holds this across both, so that no signal falls in between.
std::unique_lock<std::mutex> hold_interrupts();

/// Registers the file a signal removes (empty: none), replacing the one
/// before. `held` proves that hold_interrupts is held.
void remove_if_interrupted(const std::unique_lock<std::mutex>& held,
                           std::string path);

/// Registers the line a signal prints on stderr (empty: none).
void say_if_interrupted(std::string line);

/// Registers what a signal runs first, to give the terminal back (leave a
/// full screen, end a line drawn in place); empty: nothing. It runs on the
/// signal thread with hold_interrupts held, so it must not call anything
/// declared here.
void restore_terminal_if_interrupted(std::function<void()> restore);

} // namespace vidnode::vidctl
