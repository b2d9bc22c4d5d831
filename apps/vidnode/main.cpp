/// vidnode: runs a node that serves generation jobs on this machine's
/// devices and publishes its admission actor for vidctl and CAF clients.

#include <sys/resource.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/cli_options.hpp"
#include "common/setting_sources.hpp"
#include "vidnode/actors/cluster.hpp"
#include "common/http_options.hpp"
#include "common/metrics_options.hpp"
#include "common/transport_options.hpp"
#include "vidnode/process_lifecycle.hpp"
#include "vidnode/service_manager.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/curl_transfers.hpp"
#include "vidnode/net/hardened_multiplexer.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/net/server.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/logging.hpp"
#include "vidnode/runtime/settings.hpp"
#include "vidnode/runtime/units.hpp"

namespace {

using namespace vidnode;
using apps::stop_margin;

/// Most scheduler threads --threads may ask for.
constexpr size_t max_threads = 1024;

/// Most polls --poll-attempts may ask for (the benchmarks measured 100000).
constexpr size_t max_poll_attempts = 1000000;

} // namespace

int main(int argc, char** argv) {
  using lim = runtime::settings_limits;
  runtime::node_settings settings;
  std::string listen =
    settings.listen_host + ":" + std::to_string(settings.listen_port);
  std::string log_level = "info";
  std::string scheduler = net::process_config::default_scheduler_policy;
  size_t threads = 0;
  size_t poll_attempts = 100;

  CLI::App app{"vidnode: serves video-generation jobs on this machine's "
               "devices.\nClients submit with vidctl or over CAF remote "
               "actors.",
               "vidnode"};
  app.set_version_flag("--version", "vidnode 0.1.0 (protocol "
                                      + std::string{runtime::protocol_version}
                                      + ")");
  apps::add_config_option(app, "VIDNODE_CONFIG");
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "Print the settings in effect (from the command line, "
               "--config, VIDNODE_* environment variables and defaults) as "
               "a config file, and exit");
  auto listen_option =
    app
      .add_option("--listen", listen,
                  "Where clients connect: HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  std::string cluster_listen;
  auto cluster_listen_option = app.add_option(
    "--cluster-listen", cluster_listen,
    "Let worker nodes join this head at HOST:PORT (e.g. 10.0.0.1:7448; port 0 "
    "picks a free one). Only nodes may reach it: clients use --listen. "
    "Without it no node can join");
  std::string join;
  app
    .add_option("--join", join,
                "Run as a worker node of the head whose --cluster-listen is "
                "HOST:PORT: serve this machine's devices, take jobs from the "
                "head, and join it again whenever it is lost")
    ->excludes(listen_option)
    ->excludes(cluster_listen_option);
  apps::metrics_flags metrics_options;
  apps::add_metrics_options(app, metrics_options);
  apps::http_flags http_options;
  apps::add_http_options(app, http_options);
  app
    .add_option("--devices", settings.devices,
                "Devices to serve: auto (every CUDA device, else one cpu "
                "device), cuda[:0,1][:MEMORY], cpu:N[:MEMORY] or "
                "sim:N[:MEMORY] (e.g. sim:4:16GiB)")
    ->capture_default_str();
  apps::add_size(app, "--cuda-reserve", settings.cuda_reserve_bytes,
                 "Memory kept out of each CUDA device's budget (its free "
                 "memory at start, less this, less its loaded models)");
  app
    .add_option("--output-dir", settings.output_dir,
                "Where finished videos are written (job-ID.mp4; job-ID.y4m "
                "from a build without FFmpeg)")
    ->capture_default_str();
  std::string state_dir = apps::default_state_dir();
  app
    .add_option("--state-dir", state_dir,
                "Where a head journals every job it accepts, so that after a "
                "crash or restart it takes them up again: DIR/journal.db, "
                "one head per directory (default: $VIDNODE_STATE_DIR, else "
                "/var/lib/vidnode as root, else ~/.local/state/vidnode; "
                "'none': no journal, jobs live in memory only)")
    ->capture_default_str();
  app
    .add_option("--journal-sync", settings.journal_sync,
                "full: each journal commit is fsynced before its jobs are "
                "acknowledged; normal: fsynced at checkpoints, so a power "
                "failure (not a crash) may lose the latest jobs")
    ->check(CLI::IsMember({"full", "normal"}))
    ->capture_default_str();
  app.add_option("--tiny-t2v-weights", settings.tiny_t2v_weights,
                 "Weights file of the built-in tiny-t2v model (default: its "
                 "fixed-seed weights)");
  std::vector<std::string> torchscript;
  app.add_option("--torchscript", torchscript,
                 "Serve a TorchScript model: NAME=PATH (repeatable; the file "
                 "must follow the contract in the README)");
  app
    .add_option("--preload", settings.preload,
                "Load MODEL on start and report ready only once it is "
                "loaded; a failure ends vidnode (exit 1). DEVICES: KIND or "
                "KIND:ORDINALS as in --devices (tiny-t2v@cuda:0,1); without "
                "it, every device that can run MODEL. Repeatable (several, "
                "space-separated, in VIDNODE_PRELOAD). A worker restarted "
                "after a crash loads them again in the background")
    ->type_name("MODEL[@DEVICES]")
    ->delimiter(' ');
  apps::add_duration(app, "--preload-timeout", settings.preload_timeout,
                     "Longest time one preload may take (1s to 24h)");
  app.add_option("--node-name", settings.node_name,
                 "Name shown in results and `vidctl nodes` (default: the "
                 "host name)");
  apps::add_number(app, "--max-concurrency", settings.max_concurrency, 1,
                   lim::max_concurrency,
                   "Jobs running at once per device (1 to "
                     + std::to_string(lim::max_concurrency)
                     + "); on cpu and cuda devices each runs in a lane, a "
                       "thread of its own (README, \"Lanes\")");
  apps::add_number(app, "--queue-size", settings.queue_size, 1,
                   lim::max_queue_size,
                   "Jobs that may wait in the queue; more are refused with "
                   "queue_full (1 to "
                     + std::to_string(lim::max_queue_size) + ")");
  apps::add_duration(app, "--queue-timeout", settings.queue_timeout,
                     "Longest (and default) time a job waits in the queue");
  apps::add_duration(app, "--run-timeout", settings.run_timeout,
                     "Longest (and default) time one attempt of a job runs");
  apps::add_number(app, "--max-attempts", settings.max_attempts, 1,
                   lim::max_attempts,
                   "Attempts a job gets when its device fails under it (OOM, "
                   "crash; 1 to "
                     + std::to_string(lim::max_attempts) + ")");
  apps::add_number(app, "--max-restarts", settings.restarts.max_restarts, 0,
                   std::numeric_limits<int32_t>::max(),
                   "Failures of a device (worker deaths that no job's own "
                   "failure explains) allowed within --restart-window before "
                   "it is quarantined");
  apps::add_duration(app, "--restart-window", settings.restarts.window,
                     "Window in which restarts are counted");
  apps::add_duration(app, "--restart-backoff", settings.restarts.backoff,
                     "Delay before the first restart in a window; doubles "
                     "with each further one");
  apps::add_duration(app, "--restart-backoff-max",
                     settings.restarts.backoff_max,
                     "Longest delay before a restart");
  apps::add_duration(app, "--quarantine-cooldown",
                     settings.restarts.quarantine_cooldown,
                     "How long a quarantined device stays out before it is "
                     "probed again (on probation: one more failure within "
                     "--restart-window quarantines it again)");
  apps::add_duration(app, "--shutdown-grace", settings.shutdown_grace,
                     "On SIGTERM or SIGINT: how long videos being written or "
                     "uploaded and webhooks being delivered may still take "
                     "(without a journal queued and running jobs are "
                     "cancelled at once; with one they are kept for the next "
                     "start; 0s to 1h)");
  apps::add_number(app, "--webhook-attempts", settings.webhook_attempts, 1,
                   lim::max_webhook_attempts,
                   "Tries a webhook gets in all; a try fails on a connection "
                   "error or any answer but 2xx (1 to "
                     + std::to_string(lim::max_webhook_attempts) + ")");
  apps::add_duration(app, "--webhook-retry-delay", settings.webhook_retry_delay,
                     "Time between two tries of a webhook");
  apps::add_number(app, "--max-bypass", settings.max_bypass, 0, lim::max_bypass,
                   "While the next job waits for memory, at most this many "
                   "jobs behind it that fit may start first (0: strictly in "
                   "order; at most "
                     + std::to_string(lim::max_bypass) + ")");
  app.add_flag("--gang-across-nodes", settings.gang_across_nodes,
               "Let a job of several ranks (a gang) spread over several "
               "worker nodes when no one node has enough free devices (off: "
               "every gang runs on one node; one larger than every node is "
               "refused with too_large). A head's setting");
  app
    .add_option("--collective-host", settings.collective_host,
                "The address other nodes reach this node at for the "
                "collectives of a gang whose rank 0 runs here (127.0.0.1 "
                "serves gangs within one machine)")
    ->capture_default_str();
  apps::add_duration(app, "--gang-timeout", settings.gang_timeout,
                     "Longest wait for every rank of a gang to join its "
                     "collectives, for one collective to progress, and for "
                     "a rank the others wait for to finish its step; a "
                     "rank that never comes, or hangs, fails the attempt "
                     "(1s to 1h)");
  apps::add_real(app, "--memory-headroom", settings.memory_headroom,
                 "Added to a job shape's measured peak memory for its next "
                 "estimate (0.1 = 10%; 0 to 10)");
  apps::add_real(app, "--oom-estimate-growth", settings.oom_estimate_growth,
                 "After an out-of-memory failure the job's reservation is "
                 "multiplied by this for the retry (above 1, at most 100)");
  apps::add_duration(app, "--aging-interval", settings.aging_interval,
                     "A queued job gains one priority level per interval "
                     "waited");
  apps::add_duration(app, "--result-ttl", settings.result_ttl,
                     "How long finished results are kept");
  apps::add_duration(app, "--lost-node-ttl", settings.lost_node_ttl,
                     "How long a lost worker node is shown by `vidctl nodes` "
                     "(as lost, with when and why) before it is forgotten");
  apps::add_duration(
    app, "--lease-grace", settings.lease_grace,
    "How long the head keeps a worker node's running jobs for it when it "
    "cannot reach the node, or restarted while they ran: a node back within "
    "it carries on with them; past it they are queued again, and the node, "
    "if alive, has stopped them. 0 re-queues at once (a cut-off node's job "
    "may then run twice at once; one result counts); 0s to 1h. A head's "
    "setting: worker nodes use the grace of the head they joined");
  apps::add_number(app, "--max-results", settings.max_results, 1,
                   std::numeric_limits<uint32_t>::max(),
                   "Most finished results kept");
  apps::add_size(app, "--max-message-size", settings.max_message_size,
                 "Longest message a client or node may send; a connection "
                 "that announces a longer one is closed before anything is "
                 "read, and chunks of files are asked for within it (512KiB "
                 "to 4095MiB)");
  apps::transport_flags transport;
  apps::add_transport_options(app, transport);
  net::curl_transfers::options transfer_options;
  bool allow_private_urls = false;
  app.add_flag("--allow-private-urls", allow_private_urls,
               "Let audio, output and webhook URLs reach loopback, private, "
               "link-local and other non-global addresses (refused by "
               "default, also after redirects and name resolution)");
  std::string file_url_dir;
  app.add_option("--allow-file-urls", file_url_dir,
                 "Let audio URLs be file:// URLs of files inside this "
                 "directory (after resolving symbolic links and ..; refused "
                 "by default; never for uploads and webhooks)");
  app
    .add_option("--log-level", log_level,
                "trace, debug, info, warn, error or off (logs go to stderr)")
    ->capture_default_str()
    ->check(CLI::IsMember(
      {"trace", "debug", "info", "warn", "error", "critical", "off"}));
  std::string log_format = "text";
  app
    .add_option("--log-format", log_format,
                "text: one line per event, key=value fields at the end; "
                "json: one JSON object per line (time, level, logger, msg, "
                "then the fields: job, state, model, node, device, "
                "attempt, ...)")
    ->capture_default_str()
    ->check(CLI::IsMember({"text", "json"}));
  app
    .add_option("--scheduler", scheduler,
                "CAF scheduler policy: sharing (no CPU spent polling) or "
                "stealing (CAF's default: can cut in-process latency, but "
                "idle threads poll)")
    ->capture_default_str()
    ->check(CLI::IsMember({"sharing", "stealing"}));
  apps::add_number(app, "--poll-attempts", poll_attempts, 0, max_poll_attempts,
                   "Polls of an idle stealing thread before it sleeps (more: "
                   "lower latency, more CPU while idle; 0 to "
                     + std::to_string(max_poll_attempts) + ")");
  apps::add_number(app, "--threads", threads, 0, max_threads,
                   "Scheduler threads (0: one per hardware thread; at most "
                     + std::to_string(max_threads) + ")");
  apps::refuse_empty_values(app, {});
  apps::add_environment_variables(
    app, "VIDNODE_", {"--help", "--version", "--config", "--print-config"});
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return apps::usage_exit(app, e, argc, argv);
  }
  // Where a value that is refused below came from, when not the command
  // line: " (from VIDNODE_X)" or " (from --config FILE)".
  auto from = [&](const char* flag) {
    return apps::source_of(app, flag, argc, argv);
  };
  if (auto code = apps::refuse_cut_values(app, argc, argv))
    return code;

  auto logger = spdlog::stderr_color_mt("vidnode");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));
  runtime::use_log_format(*runtime::parse_log_format(log_format));

  if (!net::parse_endpoint(listen, settings.listen_host,
                           settings.listen_port)) {
    std::fprintf(stderr,
                 "vidnode: --listen%s: '%s' is not HOST:PORT (e.g. "
                 "127.0.0.1:7447)\n",
                 from("--listen").c_str(), listen.c_str());
    return 2;
  }
  std::string cluster_host;
  uint16_t cluster_port = 0;
  auto opens_cluster_port = app.count("--cluster-listen") > 0;
  settings.accepts_worker_nodes = opens_cluster_port;
  if (opens_cluster_port
      && !net::parse_endpoint(cluster_listen, cluster_host, cluster_port)) {
    std::fprintf(stderr,
                 "vidnode: --cluster-listen%s: '%s' is not HOST:PORT (e.g. "
                 "127.0.0.1:7448)\n",
                 from("--cluster-listen").c_str(), cluster_listen.c_str());
    return 2;
  }
  std::string head_host;
  uint16_t head_port = 0;
  if (!join.empty()
      && (!net::parse_endpoint(join, head_host, head_port) || head_port == 0)) {
    std::fprintf(stderr,
                 "vidnode: --join: '%s' is not HOST:PORT of a head's cluster "
                 "port (e.g. 10.0.0.1:7448)\n",
                 join.c_str());
    return 2;
  }
  for (const auto& entry : torchscript) {
    auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size()) {
      std::fprintf(stderr, "vidnode: --torchscript: '%s' is not NAME=PATH\n",
                   entry.c_str());
      return 2;
    }
    auto name = entry.substr(0, eq);
    for (const auto& model : settings.torchscript_models)
      if (model.first == name) {
        std::fprintf(stderr, "vidnode: --torchscript: %s is given twice\n",
                     name.c_str());
        return 2;
      }
    settings.torchscript_models.emplace_back(name, entry.substr(eq + 1));
  }
  settings.state_dir = state_dir == "none" ? std::string{} : state_dir;
  if (auto err = runtime::validate(settings)) {
    auto detail = runtime::detail_of(err);
    auto flag = "--" + detail.substr(0, detail.find(':'));
    std::fprintf(
      stderr, "vidnode: %s%s%s\n", flag.c_str(), from(flag.c_str()).c_str(),
      detail.substr(std::min(detail.size(), flag.size() - 2)).c_str());
    return 2;
  }
  if (print_config) {
    std::fputs(
      apps::effective_config(
        app, {"--help", "--version", "--config", "--print-config"}, argc, argv)
        .c_str(),
      stdout);
    return 0;
  }

  if (auto problem = apps::unusable_directory(settings.output_dir)) {
    std::fprintf(stderr, "vidnode: --output-dir%s: %s\n",
                 from("--output-dir").c_str(), problem->c_str());
    return 2;
  }
  if (app.count("--allow-file-urls") > 0) {
    std::error_code ec;
    auto canonical = std::filesystem::canonical(file_url_dir, ec);
    if (ec || !std::filesystem::is_directory(canonical)) {
      auto cause = ec ? " (" + ec.message() + ")" : std::string{};
      std::fprintf(
        stderr, "vidnode: --allow-file-urls%s: '%s' is not a directory%s\n",
        from("--allow-file-urls").c_str(), file_url_dir.c_str(), cause.c_str());
      return 2;
    }
    transfer_options.file_url_dir = canonical.string();
  }
  if (allow_private_urls)
    transfer_options.allowed_addresses = net::all_special_address_classes();

  // Signals are taken by sigwait in this thread; every thread CAF starts
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<net::metrics_endpoint> metrics;
  if (auto code = apps::start_metrics(app, metrics_options, metrics))
    return code;

  apps::raise_descriptor_limit();
  net::process_config cfg;
  if (auto code = apps::use_transport_flags(transport, cfg, "vidnode"))
    return code;
  net::http_gateway_options gateway_options;
  if (auto code =
        apps::check_http_flags(app, http_options, !join.empty(), transport.tls,
                               settings.state_dir, gateway_options))
    return code;
  cfg.max_message_size(settings.max_message_size);
  cfg.scheduler_policy(scheduler);
  cfg.scheduler_threads(threads);
  cfg.poll_attempts(poll_attempts);
  caf::actor_system sys{cfg};
  apps::unwatch_on_exit metrics_guard{metrics.get()};
  if (!join.empty()) {
    if (metrics)
      apps::print_metrics_address(metrics_options, *metrics);
    return apps::run_worker_node(sys, settings, head_host, head_port,
                                 transport.node_timeout, signals,
                                 metrics.get());
  }
  if (auto links = gateway_options.links)
    transfer_options.webhook_body = [links](const runtime::job_result& r) {
      return r.endpoint.empty() ? nlohmann::json{}
                                : net::runpod_status_body(r, *links);
    };
  std::shared_ptr<actors::transfers> mover =
    std::make_shared<net::curl_transfers>(transfer_options);
  std::shared_ptr<actors::node_observer> events;
  if (metrics) {
    mover = metrics->counted(std::move(mover));
    events = metrics->observer();
  }
  auto node = actors::local_node::start(sys, settings, nullptr, mover, events);
  if (!node) {
    auto detail = runtime::detail_of(node.error());
    for (std::string flag : {"preload", "preload-timeout"})
      if (detail.rfind(flag + ": ", 0) == 0) {
        std::fprintf(stderr, "vidnode: --%s%s%s\n", flag.c_str(),
                     from(("--" + flag).c_str()).c_str(),
                     detail.substr(flag.size()).c_str());
        return 2;
      }
    std::fprintf(stderr, "vidnode: %s\n",
                 runtime::describe(node.error()).c_str());
    return 2;
  }
  if (!settings.preload.empty()) {
    auto started = std::chrono::steady_clock::now();
    if (auto status = apps::await_preloads(**node, signals)) {
      // A load that hangs in its device's thread would hold up the stop.
      apps::start_exit_watchdog(signals,
                                settings.shutdown_grace + 2 * stop_margin);
      (*node)->stop();
      return *status;
    }
    std::string models;
    for (const auto& value : settings.preload)
      models += (models.empty() ? "" : ", ") + value;
    spdlog::info(
      "preloaded {} in {:.3f} s", models,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
        .count());
  }
  auto server = net::server::start(sys, (*node)->admission(),
                                   settings.listen_host, settings.listen_port);
  if (!server) {
    std::fprintf(stderr, "vidnode: %s\n",
                 runtime::describe(server.error()).c_str());
    (*node)->stop();
    return 1;
  }
  auto registry = (*node)->registry();
  caf::expected<uint16_t> published_cluster_port{uint16_t{0}};
  if (opens_cluster_port)
    published_cluster_port = net::publish(
      sys, registry, cluster_host, cluster_port, true, net::port_peers::nodes);
  if (!published_cluster_port) {
    std::fprintf(stderr, "vidnode: --cluster-listen: cannot listen on %s: %s\n",
                 cluster_listen.c_str(),
                 runtime::describe(published_cluster_port.error()).c_str());
    (*server)->stop();
    (*node)->stop();
    return 1;
  }
  std::unique_ptr<net::http_gateway> gateway;
  if (auto code = apps::start_http_gateway(
        sys, (*node)->admission(), app, std::move(gateway_options), gateway)) {
    (*server)->stop();
    (*node)->stop();
    return code;
  }
  if (metrics)
    metrics->watch(sys, (*node)->admission_control());
  std::string served;
  for (const auto& device : (*node)->devices())
    served += (served.empty() ? "" : ", ") + device.name() + " ("
              + runtime::format_bytes(device.memory_bytes) + ")";
  spdlog::info("serving {} device(s) for --devices {}: {}; max-concurrency "
               "{}, queue-size {}",
               (*node)->devices().size(), settings.devices, served,
               settings.max_concurrency, settings.queue_size);
  std::printf("vidnode listening on %s:%u\n", settings.listen_host.c_str(),
              static_cast<unsigned>((*server)->port()));
  if (opens_cluster_port)
    std::printf("vidnode accepting worker nodes on %s:%u\n",
                cluster_host.c_str(),
                static_cast<unsigned>(*published_cluster_port));
  std::fflush(stdout);
  if (metrics)
    apps::print_metrics_address(metrics_options, *metrics);
  if (gateway)
    apps::print_http_address(*gateway);
  apps::notify_ready("serving " + std::to_string((*node)->devices().size())
                     + " device(s); clients on " + settings.listen_host + ":"
                     + std::to_string((*server)->port()));
  // The watchdog is pinged while admission answers: a status request for
  // job 0, which never exists, is answered with unknown_job.
  apps::service_watchdog watchdog{
    [&sys, admission = (*node)->admission()](std::chrono::milliseconds wait) {
      caf::scoped_actor self{sys};
      auto answered = false;
      self
        ->request(admission, wait, runtime::status_atom::value,
                  runtime::job_id{0})
        .receive([&](const runtime::job_result&) { answered = true; },
                 [&](const caf::error& err) {
                   answered = err != caf::sec::request_timeout;
                 });
      return answered;
    }};

  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    if (gateway)
      gateway->reload_keys();
  }
  apps::start_exit_watchdog(signals, settings.shutdown_grace + 2 * stop_margin);
  apps::notify_stopping(sig == SIGINT ? "SIGINT: stopping"
                                      : "SIGTERM: stopping");
  spdlog::info("{}: stopping; queued and running jobs are {}, videos "
               "being written or uploaded and webhooks get up to {}",
               sig == SIGINT ? "SIGINT" : "SIGTERM",
               settings.state_dir.empty()
                 ? "cancelled"
                 : "kept for the next start (those on worker nodes run on)",
               runtime::format_duration(settings.shutdown_grace));
  // The node answers every waiting client (through the gateway) and ends
  // its transfers within the grace period; whatever is left is aborted;
  // then the port closes.
  if (opens_cluster_port)
    caf::anon_send(net::transport_handle(sys), caf::unpublish_atom::value,
                   registry.address(), *published_cluster_port);
  if (auto err = (*node)->stop(settings.shutdown_grace + stop_margin))
    spdlog::error("stopping: {}", runtime::describe(err));
  mover->abort_all();
  if (gateway)
    gateway->stop();
  (*server)->stop();
  server->reset();
  node->reset();
  spdlog::info("stopped");
  return 0;
}
