#include "vidnode/process_lifecycle.hpp"

#include <sys/resource.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include <caf/all.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "vidnode/service_manager.hpp"

namespace vidnode::apps {

void start_exit_watchdog(sigset_t signals, caf::timespan limit) {
  std::thread([signals, limit] {
    std::thread([limit] {
      std::this_thread::sleep_for(limit);
      std::fprintf(stderr, "vidnode: did not stop within %s; exiting\n",
                   runtime::format_duration(limit).c_str());
      std::_Exit(1);
    }).detach();
    int sig = 0;
    // SIGHUP only reloads the HTTP gateway's keys; it never ends vidnode.
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    }
    std::fprintf(stderr, "vidnode: second signal; exiting now\n");
    std::_Exit(128 + sig);
  }).detach();
}

void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0
      && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::optional<std::string> unusable_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    return "'" + dir + "' is not a directory"
           + (ec ? " (" + ec.message() + ")" : std::string{});
  auto probe =
    fs::path{dir} / (".vidnode-write-check-" + std::to_string(getpid()));
  if (auto file = std::fopen(probe.c_str(), "wb")) {
    std::fclose(file);
    fs::remove(probe, ec);
    return std::nullopt;
  }
  return "cannot write in '" + dir + "': " + std::strerror(errno);
}

std::string default_state_dir() {
  if (auto dir = std::getenv("VIDNODE_STATE_DIR"); dir != nullptr && *dir)
    return dir;
  if (geteuid() == 0)
    return "/var/lib/vidnode";
  if (auto dir = std::getenv("XDG_STATE_HOME"); dir != nullptr && *dir)
    return std::string{dir} + "/vidnode";
  if (auto home = std::getenv("HOME"); home != nullptr && *home)
    return std::string{home} + "/.local/state/vidnode";
  return "/var/lib/vidnode";
}

namespace {

/// Whether `echo` (an actor that answers ok_atom) answers within `wait`:
/// the watchdog's check that the node's actor system still runs.
bool answers(caf::actor_system& sys, const caf::actor& echo,
             std::chrono::milliseconds wait) {
  caf::scoped_actor self{sys};
  auto answered = false;
  self->request(echo, wait, caf::ok_atom::value)
    .receive([&] { answered = true; }, [](const caf::error&) {});
  return answered;
}

/// Set by a refusal from the head: the exit status of a worker node.
std::atomic<int> worker_exit_status{0};

/// Whether a worker node has joined and has loaded its preloads: it
/// reports having joined once both are true (the first from the member's
/// actor, the second from the main thread).
struct join_readiness {
  std::mutex mutex;
  bool joined = false;
  bool preloaded = false;
};

} // namespace

std::function<bool()> stop_signal_taken(const sigset_t& signals, int& sig) {
  return [signals, &sig] {
    timespec now{};
    auto taken = sigtimedwait(&signals, nullptr, &now);
    if (taken == SIGINT || taken == SIGTERM) {
      sig = taken;
      return true;
    }
    return false;
  };
}

int run_worker_node(caf::actor_system& sys,
                    const runtime::node_settings& settings,
                    const std::string& host, uint16_t port,
                    caf::timespan node_timeout, const sigset_t& signals,
                    net::metrics_endpoint* metrics) {
  actors::join_options options;
  options.node_timeout = node_timeout;
  options.host = host;
  options.port = port;
  options.connector = caf::actor_cast<caf::actor>(net::transport_handle(sys));
  options.tls = net::tls_enabled(sys);
  auto head = host + ":" + std::to_string(port);
  auto name = std::make_shared<std::string>();
  auto readiness = std::make_shared<join_readiness>();
  readiness->preloaded = settings.preload.empty();
  auto report_joined = [head, name] {
    std::printf("vidnode joined %s as %s\n", head.c_str(), name->c_str());
    std::fflush(stdout);
    apps::notify_ready("joined " + head + " as " + *name);
  };
  options.on_joined = [readiness, report_joined](const std::string&) {
    std::unique_lock<std::mutex> guard{readiness->mutex};
    readiness->joined = true;
    if (readiness->preloaded)
      report_joined();
  };
  options.on_refused = [](const caf::error& why) {
    std::fprintf(stderr, "vidnode: --join: %s\n",
                 runtime::describe(why).c_str());
    worker_exit_status = 2;
    kill(getpid(), SIGTERM);
  };
  auto node = actors::worker_node::start(sys, settings, std::move(options));
  if (!node) {
    auto detail = runtime::detail_of(node.error());
    auto names_preload = detail.rfind("preload", 0) == 0;
    std::fprintf(stderr, "vidnode: %s%s\n", names_preload ? "--" : "",
                 names_preload ? detail.c_str()
                               : runtime::describe(node.error()).c_str());
    return 2;
  }
  *name = (*node)->name();
  if (metrics != nullptr)
    metrics->watch(sys, (*node)->supervisor());
  std::string served;
  for (const auto& device : (*node)->devices())
    served += (served.empty() ? "" : ", ") + device.name() + " ("
              + runtime::format_bytes(device.memory_bytes) + ")";
  spdlog::info("worker node {} serving {} device(s): {}; joining {}",
               (*node)->name(), (*node)->devices().size(), served, head);
  if (!settings.preload.empty()) {
    auto status =
      await_preloads(**node, signals, [&] { return worker_exit_status != 0; });
    std::unique_lock<std::mutex> guard{readiness->mutex};
    if (status || worker_exit_status != 0) {
      guard.unlock();
      start_exit_watchdog(signals, 2 * stop_margin);
      if (auto err = (*node)->stop(stop_margin))
        spdlog::error("stopping: {}", runtime::describe(err));
      return worker_exit_status != 0 ? worker_exit_status.load() : *status;
    }
    readiness->preloaded = true;
    if (readiness->joined)
      report_joined();
  }
  auto ping = caf::actor_cast<caf::actor>(
    sys.spawn([]() -> caf::behavior { return {[](caf::ok_atom) {}}; }));
  apps::service_watchdog watchdog{[&sys, ping](std::chrono::milliseconds wait) {
    return answers(sys, ping, wait);
  }};
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
  }
  start_exit_watchdog(signals, 2 * stop_margin);
  apps::notify_stopping(sig == SIGINT ? "SIGINT: stopping"
                                      : "SIGTERM: stopping");
  if (worker_exit_status == 0)
    spdlog::info("{}: stopping; running jobs end and the head queues them "
                 "again",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
  if (auto err = (*node)->stop(stop_margin))
    spdlog::error("stopping: {}", runtime::describe(err));
  node->reset();
  caf::anon_send_exit(ping, caf::exit_reason::user_shutdown);
  return worker_exit_status;
}

} // namespace vidnode::apps
