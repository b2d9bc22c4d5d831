#pragma once

/// @file
/// Child processes for integration tests: started with pipes, read with
/// deadlines, killed and reaped when the test is done with them.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace vidnode::test {

/// A running child process whose stdout is a pipe and whose stderr is an
/// unnamed temporary file (read whole by stderr_text).
class child_process {
public:
  /// Starts `argv[0]` (a path) with `argv`, in this process's environment
  /// changed by `environment` ("NAME=value" sets NAME, "NAME" removes it).
  explicit child_process(const std::vector<std::string>& argv,
                         const std::vector<std::string>& environment = {});

  /// Kills the process (SIGKILL) if it still runs, and reaps it.
  ~child_process();

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The next line of stdout, or nothing if none came within `timeout`
  /// (or stdout closed).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  /// Reads what the process has written to stdout so far, waiting at most
  /// `timeout` for something to come, without consuming any line
  /// (read_line returns them later). Keeps a process that prints a lot
  /// from blocking on a full pipe while the test waits for something
  /// else.
  void poll_output(std::chrono::milliseconds timeout);

  /// Sends `sig` to the process.
  void signal(int sig);

  /// Waits up to `timeout` for the process to exit; its exit status, 128 +
  /// the signal if a signal ended it, or nothing on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);

  /// Everything read from stdout so far that read_line did not return, plus
  /// the rest once the process has exited.
  std::string rest_of_stdout();

  /// Everything written to stderr so far.
  std::string stderr_text();

  pid_t pid() const noexcept {
    return pid_;
  }

private:
  void drain(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::optional<int> status_;
};

/// What a finished command printed and returned.
struct command_result {
  int status = -1;
  std::string out;
  std::string err;
};

/// Runs `argv` to completion (killing it after `timeout`, status -1).
command_result
run_command(const std::vector<std::string>& argv,
            std::chrono::milliseconds timeout = std::chrono::seconds{30},
            const std::vector<std::string>& environment = {});

} // namespace vidnode::test
