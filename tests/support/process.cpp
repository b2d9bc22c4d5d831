#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

extern char** environ;

namespace vidnode::test {

namespace {

using clock_type = std::chrono::steady_clock;

int remaining_ms(clock_type::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    deadline - clock_type::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

/// Reads what is available on `fd` into `buf`; false at end of file.
bool read_some(int& fd, std::string& buf) {
  char chunk[4096];
  auto n = ::read(fd, chunk, sizeof(chunk));
  if (n > 0) {
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return true;
  ::close(fd);
  fd = -1;
  return false;
}

} // namespace

child_process::child_process(const std::vector<std::string>& argv) {
  int out[2];
  int err[2];
  // Close-on-exec: a child started meanwhile by another thread must not
  // inherit this child's pipes, or their readers never see the end.
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  posix_spawn_file_actions_addclose(&actions, err[0]);
  std::vector<char*> args;
  for (const auto& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  auto rc =
    posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0)
    throw std::runtime_error("cannot start " + argv[0]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

child_process::~child_process() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (out_fd_ >= 0)
    ::close(out_fd_);
  if (err_fd_ >= 0)
    ::close(err_fd_);
}

void child_process::drain(std::chrono::milliseconds timeout) {
  pollfd fds[2];
  nfds_t n = 0;
  if (out_fd_ >= 0)
    fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0)
    fds[n++] = {err_fd_, POLLIN, 0};
  if (n == 0 || poll(fds, n, static_cast<int>(timeout.count())) <= 0)
    return;
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].revents == 0)
      continue;
    if (fds[i].fd == out_fd_)
      read_some(out_fd_, out_);
    else
      read_some(err_fd_, err_);
  }
}

std::optional<std::string>
child_process::read_line(std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    auto nl = out_.find('\n');
    if (nl != std::string::npos) {
      auto line = out_.substr(0, nl);
      out_.erase(0, nl + 1);
      return line;
    }
    if (out_fd_ < 0 || remaining_ms(deadline) == 0)
      return std::nullopt;
    drain(std::chrono::milliseconds{remaining_ms(deadline)});
  }
}

void child_process::poll_output(std::chrono::milliseconds timeout) {
  drain(timeout);
}

void child_process::signal(int sig) {
  if (!status_)
    ::kill(pid_, sig);
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
  if (status_)
    return status_;
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    int status = 0;
    auto rc = waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
      status_ =
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Collect what the process wrote before it exited.
      while (out_fd_ >= 0 || err_fd_ >= 0)
        drain(std::chrono::milliseconds{1000});
      return status_;
    }
    if (remaining_ms(deadline) == 0)
      return std::nullopt;
    // Reading keeps the pipes from filling up while the child runs; it
    // returns after at most 20 ms, then the exit is checked again.
    drain(std::chrono::milliseconds{std::min(20, remaining_ms(deadline))});
  }
}

std::string child_process::rest_of_stdout() {
  auto result = std::move(out_);
  out_.clear();
  return result;
}

std::string child_process::stderr_text() {
  return err_;
}

command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout) {
  child_process child{argv};
  command_result result;
  auto status = child.wait(timeout);
  result.status = status ? *status : -1;
  result.out = child.rest_of_stdout();
  result.err = child.stderr_text();
  return result;
}

} // namespace vidnode::test
