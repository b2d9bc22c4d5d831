/// A CAF application that lends its machine's devices to a vidnode cluster:
/// inside its own actor system it runs a worker node that joins a head
/// running elsewhere (`vidnode --cluster-listen HOST:PORT`), so jobs
/// submitted to the head run on this process's devices. Stops on SIGINT or
/// SIGTERM (the head queues the jobs it was running again).
/// Exit status: 0 after a clean stop, 1 if the node did not stop in time,
/// 2 on bad options or when the head refused the node.
///
/// Build it against an installed vidnode: see README.md beside this file.
/// Run: `embed_worker --worker.head=HOST:PORT [--worker.name=embed-worker]
///       [--worker.devices=sim:1] [--worker.output-dir=DIR]`.

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <string>

#include <caf/all.hpp>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/embedding.hpp"
#include "vidnode/runtime/errc.hpp"

namespace {

using namespace vidnode;

/// The application's configuration: its own options and identifier, then
/// everything vidnode needs on the network (types, middleman, protocol
/// version, heartbeats).
struct host_config : caf::actor_system_config {
  std::string head;
  std::string name = "embed-worker";
  std::string devices = "sim:1";
  std::string output_dir = "/tmp/embed-worker-output";

  host_config() {
    opt_group{custom_options_, "worker"}
      .add(head, "head", "the head's cluster port, HOST:PORT")
      .add(name, "name", "the name this node registers under")
      .add(devices, "devices", "the devices this node serves")
      .add(output_dir, "output-dir", "where this node writes its videos");
    // The application's own peers are told apart by their own name;
    // configure_host adds vidnode's protocol version beside it.
    set("middleman.app-identifiers",
        std::vector<std::string>{"embed-worker-example"});
    net::configure_host(*this);
  }
};

/// Set (from an actor thread) when the head refuses the node.
std::atomic<bool> refused{false};

} // namespace

int main(int argc, char** argv) {
  // Signals are taken by sigwait in this thread; every thread CAF starts
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  host_config cfg;
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << "embed_worker: " << caf::actor_system_config::render(err)
              << std::endl;
    return 2;
  }
  if (cfg.cli_helptext_printed)
    return 0;
  std::string host;
  uint16_t port = 0;
  if (!net::parse_endpoint(cfg.head, host, port) || port == 0) {
    std::cerr << "embed_worker: --worker.head: '" << cfg.head
              << "' is not HOST:PORT of a head's cluster port" << std::endl;
    return 2;
  }
  caf::actor_system sys{cfg};

  runtime::node_settings settings;
  settings.node_name = cfg.name;
  settings.devices = cfg.devices;
  settings.output_dir = cfg.output_dir;
  auto options = net::join_options_for(sys, host, port);
  options.on_joined = [name = cfg.name](const std::string& head) {
    std::cout << "embed_worker joined the head named " << head << " as " << name
              << std::endl;
  };
  options.on_refused = [](const caf::error& why) {
    std::cerr << "embed_worker: the head refused this node: "
              << runtime::describe(why) << std::endl;
    refused = true;
    kill(getpid(), SIGTERM);
  };
  auto node = actors::worker_node::start(sys, settings, std::move(options));
  if (!node) {
    std::cerr << "embed_worker: cannot start the worker node: "
              << runtime::describe(node.error()) << std::endl;
    return 2;
  }
  std::cout << "embed_worker serving " << (*node)->devices().size()
            << " device(s) as " << (*node)->name() << ", joining " << cfg.head
            << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  // The node's actors must end before the actor system is destroyed.
  auto stopped = (*node)->stop(std::chrono::seconds{10});
  if (stopped)
    std::cerr << "embed_worker: stopping the node: "
              << runtime::describe(stopped) << std::endl;
  else
    std::cout << "embed_worker stopped" << std::endl;
  if (refused)
    return 2;
  return stopped ? 1 : 0;
}
