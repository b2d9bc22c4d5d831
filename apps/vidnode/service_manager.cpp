#include "vidnode/service_manager.hpp"

#include <cstdint>

#ifdef VIDNODE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace vidnode::apps {

namespace {

void send(const std::string& state) {
#ifdef VIDNODE_HAVE_SYSTEMD
  sd_notify(0, state.c_str());
#else
  (void)state;
#endif
}

/// The watchdog interval the service manager asks for, or zero.
std::chrono::microseconds watchdog_interval() {
#ifdef VIDNODE_HAVE_SYSTEMD
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0)
    return std::chrono::microseconds{usec};
#endif
  return std::chrono::microseconds{0};
}

} // namespace

bool service_notifications_built() noexcept {
#ifdef VIDNODE_HAVE_SYSTEMD
  return true;
#else
  return false;
#endif
}

void notify_ready(const std::string& status) {
  send("READY=1\nSTATUS=" + status);
}

void notify_stopping(const std::string& status) {
  send("STOPPING=1\nSTATUS=" + status);
}

void notify_status(const std::string& status) {
  send("STATUS=" + status);
}

service_watchdog::service_watchdog(
  std::function<bool(std::chrono::milliseconds)> alive) {
  auto interval = watchdog_interval();
  if (interval.count() == 0)
    return;
  thread_ = std::thread([this, interval, alive = std::move(alive)] {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    auto period = duration_cast<milliseconds>(interval / 2);
    auto patience = duration_cast<milliseconds>(interval / 4);
    if (patience.count() == 0)
      patience = milliseconds{1};
    std::unique_lock<std::mutex> lock{mutex_};
    while (!stop_) {
      auto next = std::chrono::steady_clock::now() + period;
      lock.unlock();
      if (alive(patience))
        send("WATCHDOG=1");
      lock.lock();
      wake_.wait_until(lock, next, [this] { return stop_; });
    }
  });
}

service_watchdog::~service_watchdog() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

} // namespace vidnode::apps
