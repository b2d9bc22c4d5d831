#pragma once

/// @file
/// A head and simulated worker nodes in one process: the head (admission,
/// no devices of its own) publishes its cluster registry on 127.0.0.1, and
/// every worker node is an actor system of its own (its own CAF node id,
/// one scheduler thread) that joins over loopback TCP exactly as
/// `vidnode --join` does (actors::worker_node). Jobs then go through the
/// head's placement and out to the nodes' device workers over BASP.

#include <unistd.h>

#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "vidnode/actors/cluster.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/settings.hpp"

#include "node_readiness.hpp"

namespace vidnode::bench {

/// The actor system of one simulated worker node: vidnode's types, the
/// middleman, and one scheduler thread that sleeps on a condition variable
/// when idle (CAF's "sharing" policy): a process holds hundreds of these,
/// and polling threads would spend the cores on each other.
class node_system_config : public caf::actor_system_config {
public:
  node_system_config() {
    load<caf::io::middleman>();
    actors::add_types(*this);
    set("scheduler.max-threads", size_t{1});
    set("scheduler.policy", caf::atom("sharing"));
  }
};

/// A head with `nodes` worker nodes of `devices_per_node` sim devices each,
/// every device attached and up once the constructor returns. `fail` is
/// called (and must not return) if anything does not start.
///
/// Destruction stops the worker nodes, then the head, then every system.
class registered_nodes {
public:
  using failure_handler = void (*)(const std::string& what,
                                   const std::string& why);

  registered_nodes(caf::actor_system& head_system,
                   const runtime::node_settings& head_settings, int32_t nodes,
                   int32_t devices_per_node, failure_handler fail)
    : head_system_(head_system) {
    auto settings = head_settings;
    settings.devices = "none";
    settings.accepts_worker_nodes = true;
    auto head = actors::local_node::start(head_system, settings);
    if (!head)
      fail("starting the head", head_system.render(head.error()));
    head_ = std::move(*head);
    auto port = net::publish(head_system, head_->registry(), "127.0.0.1", 0);
    if (!port)
      fail("publishing the cluster registry", head_system.render(port.error()));
    port_ = *port;
    output_root_ = std::filesystem::temp_directory_path()
                   / ("vidnode-bench-nodes-" + std::to_string(::getpid()));
    for (int32_t i = 0; i < nodes; ++i) {
      auto& sys = systems_.emplace_back(
        std::make_unique<caf::actor_system>(configs_.emplace_back()));
      runtime::node_settings node;
      node.node_name = "n" + std::to_string(i + 1);
      node.devices = "sim:" + std::to_string(devices_per_node);
      node.output_dir = (output_root_ / node.node_name).string();
      actors::join_options options;
      options.host = "127.0.0.1";
      options.port = port_;
      options.connector =
        caf::actor_cast<caf::actor>(net::transport_handle(*sys));
      auto started = actors::worker_node::start(*sys, node, options);
      if (!started)
        fail("starting worker node " + node.node_name,
             sys->render(started.error()));
      workers_.push_back(std::move(*started));
    }
    auto devices = static_cast<size_t>(nodes * devices_per_node);
    if (!await_devices(head_system, head_->admission(), devices,
                       std::chrono::seconds{120}))
      fail("registering " + std::to_string(nodes) + " worker nodes",
           "their devices did not attach within 120 s");
  }

  registered_nodes(const registered_nodes&) = delete;
  registered_nodes& operator=(const registered_nodes&) = delete;

  ~registered_nodes() {
    for (auto& worker : workers_)
      worker->stop();
    workers_.clear();
    caf::anon_send(net::transport_handle(head_system_),
                   caf::unpublish_atom::value, head_->registry().address(),
                   port_);
    head_->stop();
    head_.reset();
    systems_.clear();
    std::error_code ec;
    std::filesystem::remove_all(output_root_, ec);
  }

  /// The head's admission actor, which clients submit to.
  runtime::admission_actor admission() const {
    return head_->admission();
  }

private:
  caf::actor_system& head_system_;
  std::unique_ptr<actors::local_node> head_;
  uint16_t port_ = 0;
  std::filesystem::path output_root_;
  std::deque<node_system_config> configs_;
  std::vector<std::unique_ptr<caf::actor_system>> systems_;
  std::vector<std::unique_ptr<actors::worker_node>> workers_;
};

} // namespace vidnode::bench
