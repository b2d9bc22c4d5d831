#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
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

/// An unnamed file in $TMPDIR (or /tmp), open for reading and writing and
/// gone once closed; -1 if none can be made.
int unnamed_temporary_file() {
  const char* dir = std::getenv("TMPDIR");
  std::string base = dir != nullptr && *dir ? dir : "/tmp";
  auto fd = ::open(base.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  // Filesystems without O_TMPFILE: a named file, unlinked at once.
  auto pattern = base + "/vidnode-test-stderr-XXXXXX";
  fd = mkostemp(pattern.data(), O_CLOEXEC);
  if (fd >= 0)
    ::unlink(pattern.c_str());
  return fd;
}

/// This process's environment changed by `changes` (see child_process).
std::vector<std::string>
changed_environment(const std::vector<std::string>& changes) {
  std::vector<std::string> result;
  auto name_of = [](const std::string& entry) {
    return entry.substr(0, entry.find('='));
  };
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string text = *entry;
    auto replaced = false;
    for (const auto& change : changes)
      replaced = replaced || name_of(change) == name_of(text);
    if (!replaced)
      result.push_back(std::move(text));
  }
  for (const auto& change : changes)
    if (change.find('=') != std::string::npos)
      result.push_back(change);
  return result;
}

} // namespace

child_process::child_process(const std::vector<std::string>& argv,
                             const std::vector<std::string>& environment) {
  int out[2];
  // Close-on-exec: a child started meanwhile by another thread must not
  // inherit this child's pipe, or its reader never sees the end.
  if (pipe2(out, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  // stderr goes to an unnamed file, not a pipe: a node logs a line per job
  // event, and a pipe that the test does not read while it waits on
  // something else would fill up and stop the node.
  auto err = unnamed_temporary_file();
  if (err < 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::runtime_error("cannot create a file for a child's stderr");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err, 2);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> args;
  for (const auto& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  auto variables = changed_environment(environment);
  std::vector<char*> envp;
  for (auto& variable : variables)
    envp.push_back(variable.data());
  envp.push_back(nullptr);
  auto rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(),
                        environment.empty() ? environ : envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err);
    throw std::runtime_error("cannot start " + argv[0]);
  }
  out_fd_ = out[0];
  err_fd_ = err;
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
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
  if (out_fd_ < 0)
    return;
  pollfd fds[1] = {{out_fd_, POLLIN, 0}};
  if (poll(fds, 1, static_cast<int>(timeout.count())) > 0)
    read_some(out_fd_, out_);
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
      while (out_fd_ >= 0)
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
  std::string text;
  char chunk[65536];
  off_t offset = 0;
  for (;;) {
    auto n = ::pread(err_fd_, chunk, sizeof(chunk), offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return text;
    text.append(chunk, static_cast<size_t>(n));
    offset += n;
  }
}

command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout,
                           const std::vector<std::string>& environment) {
  child_process child{argv, environment};
  command_result result;
  auto status = child.wait(timeout);
  result.status = status ? *status : -1;
  result.out = child.rest_of_stdout();
  result.err = child.stderr_text();
  return result;
}

} // namespace vidnode::test
