#include "vidctl/interrupts.hpp"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <thread>

namespace vidnode::vidctl {

namespace {

std::mutex mutex;
std::string file_to_remove;
std::string line_to_say;
std::function<void()> terminal_restore;

sigset_t handled_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  return signals;
}

[[noreturn]] void take_signals(sigset_t signals) {
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  // Locked for good: nothing registers a file from now on.
  mutex.lock();
  if (terminal_restore)
    terminal_restore();
  if (!file_to_remove.empty())
    ::unlink(file_to_remove.c_str());
  if (!line_to_say.empty())
    std::fprintf(stderr, "%s\n", line_to_say.c_str());
  std::fflush(stderr);
  std::signal(sig, SIG_DFL);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  std::raise(sig);
  std::_Exit(128 + sig);
}

} // namespace

void handle_interrupts() {
  auto signals = handled_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread{take_signals, signals}.detach();
}

std::unique_lock<std::mutex> hold_interrupts() {
  return std::unique_lock<std::mutex>{mutex};
}

void remove_if_interrupted(const std::unique_lock<std::mutex>&,
                           std::string path) {
  file_to_remove = std::move(path);
}

void say_if_interrupted(std::string line) {
  std::lock_guard<std::mutex> guard{mutex};
  line_to_say = std::move(line);
}

void restore_terminal_if_interrupted(std::function<void()> restore) {
  std::lock_guard<std::mutex> guard{mutex};
  terminal_restore = std::move(restore);
}

} // namespace vidnode::vidctl
