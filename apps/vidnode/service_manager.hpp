#pragma once

/// @file
/// Telling a service manager (systemd, with Type=notify) how the node is
/// doing, through the notification socket named by $NOTIFY_SOCKET
/// (sd_notify(3), libsystemd): READY=1 once the node accepts jobs (a head)
/// or has joined its head (a worker node), STOPPING=1 when it begins to
/// stop, STATUS= lines, and WATCHDOG=1 pings while the node answers, when
/// the unit sets WatchdogSec= ($WATCHDOG_USEC). Without $NOTIFY_SOCKET, or
/// in a build without libsystemd, every call does nothing.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace vidnode::apps {

/// Whether this build can notify a service manager (found libsystemd).
bool service_notifications_built() noexcept;

/// Sends READY=1 and `status` as STATUS=.
void notify_ready(const std::string& status);

/// Sends STOPPING=1 and `status` as STATUS=.
void notify_stopping(const std::string& status);

/// Sends `status` as STATUS=.
void notify_status(const std::string& status);

/// Pings the service manager's watchdog (WATCHDOG=1) every half of its
/// interval ($WATCHDOG_USEC, for this process) while `alive` returns true
/// within a quarter of it; a node that stops answering stops the pings, and
/// the manager restarts it. Does nothing when no watchdog is set. `alive`
/// is called from the watchdog's own thread.
class service_watchdog {
public:
  /// Starts pinging, if the service manager asks for it.
  explicit service_watchdog(
    std::function<bool(std::chrono::milliseconds)> alive);

  /// Stops pinging and joins the thread.
  ~service_watchdog();

  service_watchdog(const service_watchdog&) = delete;
  service_watchdog& operator=(const service_watchdog&) = delete;

private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace vidnode::apps
