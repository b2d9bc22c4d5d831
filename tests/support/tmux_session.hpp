#pragma once

/// @file
/// A command run on a terminal for integration tests: a detached tmux
/// session on a tmux server of the test's own (its socket in a fresh
/// directory, its own configuration, so that no user's tmux server or
/// settings are touched), whose screen the test reads with capture-pane and
/// types into with send-keys. The pane stays after its command exits
/// (remain-on-exit), so that what it showed last can be read.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"
#include "support/temp_directory.hpp"

namespace vidnode::test {

/// The path of the tmux program on PATH; empty if there is none.
inline std::string find_tmux() {
  auto path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos)
      end = dirs.size();
    auto candidate = dirs.substr(start, end - start) + "/tmux";
    if (end > start && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return {};
}

/// `text` quoted for sh.
inline std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text)
    quoted += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
  return quoted + "'";
}

/// `argv` as one sh command line.
inline std::string shell_command(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv)
    line += (line.empty() ? "" : " ") + shell_quote(arg);
  return line;
}

/// A shell command line running in a window `columns` x `rows` of a tmux
/// server of its own. The destructor kills the pane's processes (SIGKILL to
/// its process group) and the server, whatever happened.
class tmux_session {
public:
  tmux_session(std::string tmux, const std::string& command, int columns,
               int rows)
    : tmux_(std::move(tmux)) {
    config_ = dir_.path() + "/tmux.conf";
    write_file(config_, "set -g remain-on-exit on\n"
                        "set -g status off\n"
                        "set -g history-limit 2000\n");
    socket_ = dir_.path() + "/socket";
    auto started =
      run({"new-session", "-d", "-s", "test", "-x", std::to_string(columns),
           "-y", std::to_string(rows), command});
    if (started.status != 0)
      throw std::runtime_error("tmux new-session failed: " + started.err);
    server_pid_ = std::atoi(format("#{pid}").c_str());
    pane_pid_ = std::atoi(format("#{pane_pid}").c_str());
  }

  ~tmux_session() {
    if (pane_pid_ > 0)
      ::kill(-pane_pid_, SIGKILL);
    run({"kill-server"});
    if (server_pid_ > 0)
      ::kill(server_pid_, SIGKILL);
  }

  tmux_session(const tmux_session&) = delete;
  tmux_session& operator=(const tmux_session&) = delete;

  /// What the window shows now, one line per row; with `escapes`, with the
  /// escape sequences of its colors and attributes.
  /// Lines the window wrapped are joined, and the lines scrolled off the
  /// top come first (tmux scrolls the window when it writes "Pane is
  /// dead" on the last row).
  std::string screen(bool escapes = false) const {
    std::vector<std::string> args = {"capture-pane", "-p",  "-J", "-S", "-",
                                     "-t",           "test"};
    if (escapes)
      args.push_back("-e");
    return run(args).out;
  }

  /// A tmux format expanded for the pane ("#{pane_dead}").
  std::string format(const std::string& text) const {
    auto out = run({"display-message", "-p", "-t", "test", text}).out;
    while (!out.empty() && out.back() == '\n')
      out.pop_back();
    return out;
  }

  /// Makes the window `columns` x `rows` (the pane gets SIGWINCH).
  void resize(int columns, int rows) const {
    run({"resize-window", "-t", "test", "-x", std::to_string(columns), "-y",
         std::to_string(rows)});
  }

  /// Types `keys` (tmux key names: "q", "C-c").
  void send_keys(const std::string& keys) const {
    run({"send-keys", "-t", "test", keys});
  }

  /// Reads the screen until `probe` holds for it or `timeout` has passed;
  /// whether it held. It reads every 20 ms: the screen belongs to real
  /// processes (vidctl on a tmux server), whose time CAF's test coordinator
  /// cannot step, and tmux gives no sign of a change of what a pane shows
  /// (its own messages, "Pane is dead", are no output of the pane's).
  bool await_screen(const std::function<bool(const std::string&)>& probe,
                    std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (probe(screen()))
        return true;
      if (std::chrono::steady_clock::now() >= deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  }

private:
  command_result run(std::vector<std::string> args) const {
    std::vector<std::string> argv = {tmux_, "-S", socket_, "-f", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, std::chrono::seconds{10});
  }

  std::string tmux_;
  temp_directory dir_{"vidctl-tmux"};
  std::string config_;
  std::string socket_;
  pid_t server_pid_ = -1;
  pid_t pane_pid_ = -1;
};

} // namespace vidnode::test
