/// @file
/// Placement at scale (issue 8): dispatch throughput of one admission actor
/// with 1,000 sim devices, against the same with 4 devices, in one process
/// and one run.
///
/// Each workload sends zero-work sim jobs (no step, no load: the job takes
/// no device time, so admission's own work, placement included, is what
/// limits the rate) through `execute` from pipelining client actors and
/// counts jobs dispatched and finished per second, from the first send to
/// the last result. Workloads:
/// - 1 or 8 slots per device, 256 jobs in flight: with 4 devices most of
///   them wait in the queue, with 1,000 devices none do, and every job is
///   placed among hundreds of free devices;
/// - 1 or 8 slots per device, more jobs in flight than the 1,000 devices
///   have slots: both queues have a backlog, so every finished job makes
///   admission place the next one from the queue.
/// The ratio judged is 1,000-device jobs/s over 4-device jobs/s of the same
/// workload (target: at least 0.5: placement must not scan every device per
/// job at full cost). The process's CPU time per job is shown beside it.
///
/// Devices, each setup measured both ways:
/// - registered by worker nodes, as the issue asks: 4 devices of one worker
///   node, against 1,000 devices of 125 worker nodes of 8, each node an
///   actor system of its own joined to the head over loopback TCP
///   (registered_nodes.hpp); jobs cross BASP both ways. This ratio is the
///   one judged. The process CPU time then includes the nodes' own work.
/// - local: the same device counts as one node's local devices, no network:
///   admission's own cost with nothing else around it (also shown with the
///   target).
///
/// Then placement alone, without actors: ns per job of choosing a device
/// in a device ledger and recording the job's start and end, with the
/// ledger's placement index against a scan of every device as admission
/// made it before the index, for 4, 1,000 and 10,000 devices on nodes of 8
/// that serve one of two model lists (two serving profiles, both of which
/// serve the jobs' model) (not judged: it shows where the time goes).
///
/// Then gang placement, without actors (issue: a gang of 8 across 1,000
/// devices placed in under 1 ms): 1,000 sim devices on 125 nodes of 8 in the
/// same two serving profiles, 4 slots each, each running 0 to 4 jobs of
/// 16 GiB (at random, for the whole run), half of them with the model
/// loaded. The device ledger's choose_gang places gangs of 8 ranks of 16
/// GiB: on one node; across nodes when one device of every node is full (so
/// no node has 8 free); and across nodes when all but 2 devices of every
/// node are full (a busy cluster, where the index visits only the few free
/// devices). Each gang's ranks are started and, 8 gangs later, ended.
/// Shown: the time of choose_gang per gang (p50, p99, max of the wall
/// clock, and p99 of the thread's CPU time, which leaves out the time the
/// thread was preempted on a shared machine; judged: that p99 under 1 ms),
/// the time per gang with its ranks' starts and ends, and
/// choose_gang_devices over a scan of every device beside it
/// (gang_placement.hpp).
///
/// As in bench_dispatch, the two device counts are measured in interleaved
/// rounds, each in a fresh actor_system (vidnode's default scheduler), and
/// the rounds pooled; each round first runs unmeasured jobs so that every
/// device that will take jobs has loaded the model.
///
/// Usage: bench_placement [SCALE [alone]] (or VIDNODE_BENCH_SCALE):
/// SCALE multiplies the number of jobs per round and of placements;
/// `alone` runs only the sections without actors (placement alone, gang
/// placement).

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/device_ledger.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/actors/placement.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"

#include "gang_placement.hpp"
#include "measurement.hpp"
#include "node_readiness.hpp"
#include "registered_nodes.hpp"
#include "round_trips.hpp"
#include "workloads.hpp"

namespace vidnode::bench {
namespace {

constexpr double target_ratio = 0.5;
constexpr size_t rounds = 3;

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_placement: " << what << " failed: " << why << '\n';
  std::exit(1);
}

/// User plus system CPU time of the whole process so far, in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// The devices admission places jobs on: `nodes` nodes of
/// `devices_per_node` sim devices each (80 GiB, the sim default), either
/// registered by that many worker nodes over loopback (`registered`) or
/// all local devices of the head.
struct device_setup {
  int32_t nodes = 1;
  int32_t devices_per_node = 4;
  bool registered = false;

  /// Devices in all.
  int32_t devices() const {
    return nodes * devices_per_node;
  }

  /// Shown in tables.
  std::string describe() const {
    if (nodes == 1)
      return grouped(devices()) + " devices";
    return grouped(devices()) + " devices (" + std::to_string(nodes) + " x "
           + std::to_string(devices_per_node) + ")";
  }

  /// How the devices are registered, for the output.
  std::string registration() const {
    if (!registered)
      return grouped(devices()) + " sim devices of the head itself (no "
             + "network)";
    return grouped(devices()) + " sim devices registered by "
           + std::to_string(nodes) + " worker node" + (nodes == 1 ? "" : "s")
           + " of " + std::to_string(devices_per_node)
           + " over loopback TCP, each an actor system of its own";
  }

  /// Every device, numbered as one node's.
  std::vector<runtime::device_info> infos() const {
    std::vector<runtime::device_info> result;
    for (int32_t i = 0; i < devices(); ++i) {
      runtime::device_info info;
      info.index = i;
      info.kind = runtime::device_kind::sim;
      info.ordinal = i;
      info.memory_bytes = gpu::default_sim_memory_bytes;
      result.push_back(info);
    }
    return result;
  }

  /// Spawns admission and the supervisor of the local node with every
  /// device and waits until all of them are up.
  actors::node_actors start(caf::actor_system& sys,
                            const runtime::node_settings& settings) const {
    std::string reason;
    auto catalog = gpu::model_catalog::make({}, reason);
    if (!catalog)
      fail("making the model catalog", reason);
    auto node = actors::spawn_node(sys, settings, infos(), std::move(catalog));
    auto admission = caf::actor_cast<runtime::admission_actor>(node.admission);
    if (!await_devices(sys, admission, static_cast<size_t>(devices()),
                       std::chrono::seconds{60}))
      fail("starting " + describe(), "devices did not attach");
    return node;
  }
};

/// Stops a node spawned by device_setup::start, in local_node::stop's
/// order: admission answers every job, the workers stop, then both actors.
void stop(caf::actor_system& sys, actors::node_actors& node) {
  caf::scoped_actor self{sys};
  auto limit = std::chrono::seconds{30};
  auto on_error = [&](caf::error& err) { fail("stopping", sys.render(err)); };
  self->request(node.admission, limit, actors::shutdown_atom::value)
    .receive([](caf::ok_atom) {}, on_error);
  self->request(node.supervisor, limit, actors::shutdown_atom::value)
    .receive([](caf::ok_atom) {}, on_error);
  self->monitor(node.admission);
  self->monitor(node.supervisor);
  self->send_exit(node.admission, caf::exit_reason::user_shutdown);
  self->send_exit(node.supervisor, caf::exit_reason::user_shutdown);
  for (int down = 0; down < 2;)
    self->receive([&](caf::down_msg&) { ++down; },
                  caf::after(limit) >> [&] { fail("stopping", "timeout"); });
  node = actors::node_actors{};
}

/// One way of loading admission.
struct workload {
  std::string name;
  /// Slots per device (max_concurrency).
  int32_t slots = 1;
  /// Clients and jobs in flight; `requests` is set per run.
  pipeline_shape shape;

  size_t in_flight() const {
    return shape.clients * shape.window;
  }
};

/// What one workload measured on one device setup, pooled over rounds.
struct run_figures {
  pipeline_outcome outcome;
  double cpu_seconds = 0;

  double cpu_us_per_job() const {
    return outcome.replies > 0
             ? cpu_seconds * 1e6 / static_cast<double>(outcome.replies)
             : 0;
  }
};

runtime::node_settings node_config(int32_t slots) {
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.max_concurrency = slots;
  settings.queue_size = 1u << 20;
  return settings;
}

/// Runs the warm-up and then `jobs` measured jobs of `load` through
/// `admission`, adding them to `into`.
void run_jobs(caf::actor_system& sys, const runtime::admission_actor& admission,
              const device_setup& setup, const workload& load, size_t jobs,
              run_figures& into) {
  auto job = zero_work_job();
  auto execute = runtime::execute_atom::value;
  auto warmup = load.shape;
  warmup.requests = std::max(load.in_flight(),
                             static_cast<size_t>(setup.devices() * load.slots))
                    + 1000;
  auto warm = pipelined_requests<runtime::job_result>(
    sys, admission, warmup, accept_succeeded, execute, job);
  if (!warm.failure.empty())
    fail("warm-up on " + setup.describe(), warm.failure);
  auto shape = load.shape;
  shape.requests = jobs;
  auto cpu_before = process_cpu_seconds();
  auto outcome = pipelined_requests<runtime::job_result>(
    sys, admission, shape, accept_succeeded, execute, job);
  into.cpu_seconds += process_cpu_seconds() - cpu_before;
  if (!outcome.failure.empty())
    fail(load.name + " on " + setup.describe(), outcome.failure);
  into.outcome.merge(outcome);
}

/// One round of `load` on `setup` in a fresh actor_system (and, for
/// registered devices, fresh worker node systems).
void measure(const device_setup& setup, const workload& load, size_t jobs,
             run_figures& into) {
  caf::actor_system_config cfg;
  actors::add_types(cfg);
  net::process_config::apply_default_scheduler(cfg);
  if (setup.registered)
    cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  if (setup.registered) {
    registered_nodes cluster{sys, node_config(load.slots), setup.nodes,
                             setup.devices_per_node, fail};
    run_jobs(sys, cluster.admission(), setup, load, jobs, into);
    return;
  }
  auto node = setup.start(sys, node_config(load.slots));
  auto admission = caf::actor_cast<runtime::admission_actor>(node.admission);
  run_jobs(sys, admission, setup, load, jobs, into);
  stop(sys, node);
}

// -- placement alone ---------------------------------------------------------

/// Placement without actors: ns per job of choosing a device in a ledger
/// of `devices` sim devices (each up, one slot, the model loaded, half of
/// them busy; on nodes of 8 that serve the sim models, every other one a
/// model more) and recording the job's start and, later, its end, with
/// `choose` picking the slot.
template <class Choose>
double ns_per_job(int32_t devices, size_t jobs, Choose choose) {
  constexpr uint64_t bytes = 1ull << 30;
  const std::vector<std::vector<std::string>> model_lists{
    {"sim", "sim-*"}, {"sim", "sim-*", "toy"}};
  actors::device_ledger ledger;
  for (const auto& info : device_setup{1, devices}.infos()) {
    auto node = info.index / 8;
    const auto& models = model_lists[static_cast<size_t>(node % 2)];
    auto& device =
      ledger.at(ledger.add("bench-" + std::to_string(node), info, models));
    device.state = actors::device_slot::health::up;
    device.models.push_back({"sim", 1, true});
  }
  // The first query indexes every device: not per job.
  if (choose(ledger, bytes) < 0)
    fail("placement alone", "no device chosen");
  std::deque<int32_t> running;
  auto busy = static_cast<size_t>(std::max(1, devices / 2));
  auto start = clock_type::now();
  for (size_t job = 0; job < jobs; ++job) {
    if (running.size() == busy) {
      auto& done = ledger.at(running.front());
      running.pop_front();
      done.running.pop_back();
      done.reserved -= bytes;
    }
    auto slot = choose(ledger, bytes);
    if (slot < 0)
      fail("placement alone", "no device chosen");
    auto& device = ledger.at(slot);
    device.running.push_back(runtime::job_id{job + 1});
    device.reserved += bytes;
    running.push_back(slot);
  }
  return static_cast<double>(nanos_between(start, clock_type::now()))
         / static_cast<double>(jobs);
}

/// Prints placement alone with the ledger's index against a scan of every
/// device as admission made it before the index (a candidate per device,
/// then choose_device), for 4, 1,000 and 10,000 devices.
void print_placement_alone(double factor) {
  std::string reason;
  auto catalog = gpu::model_catalog::make({}, reason);
  if (!catalog)
    fail("making the model catalog", reason);
  const auto& sim = *catalog->find("sim");
  auto indexed = [&](const actors::device_ledger& ledger, uint64_t bytes) {
    return ledger.choose(sim, "sim", bytes, 1);
  };
  std::vector<actors::placement_candidate> candidates;
  auto scanned = [&](const actors::device_ledger& ledger, uint64_t bytes) {
    candidates.clear();
    for (int32_t slot = 0; slot < ledger.size(); ++slot) {
      actors::placement_candidate c;
      if (auto device = ledger.find(slot)) {
        c.available = device->state == actors::device_slot::health::up
                      && sim.runs_on(device->info.kind)
                      && ledger.serves(*device, "sim");
        c.running = static_cast<int32_t>(device->running.size());
        c.slots = 1;
        c.memory_bytes = device->budget();
        c.memory_reserved = device->reserved;
        auto model = device->find_model("sim");
        c.has_model = model != nullptr && model->loaded;
      }
      candidates.push_back(c);
    }
    return actors::choose_device(candidates, bytes);
  };
  markdown_table table{{"devices", "jobs", "placement index ns per job",
                        "scan of every device ns per job", "scan / index"}};
  std::vector<double> index_ns;
  for (int32_t devices : {4, 1000, 10000}) {
    auto jobs =
      scaled(std::min<size_t>(200000, 20000000 / devices), factor, 1000);
    auto with_index = ns_per_job(devices, jobs, indexed);
    auto with_scan = ns_per_job(devices, jobs, scanned);
    index_ns.push_back(with_index);
    table.add({grouped(devices), grouped(static_cast<double>(jobs)),
               fixed(with_index), fixed(with_scan),
               fixed(with_scan / with_index, 1) + "x"});
  }
  table.print("Placement alone: choosing the device and recording the job's "
              "start and end in the device ledger, no actors (one slot per "
              "device, half of them busy, every one with the model, nodes of "
              "8 devices in two serving profiles)");
  std::cout << "Index cost per job, 1,000 devices over 4: "
            << fixed(index_ns[1] / index_ns[0], 2)
            << "x; 10,000 over 4: " << fixed(index_ns[2] / index_ns[0], 2)
            << "x.\n\n";
}

/// Measures `small` against `large` for every load in interleaved rounds,
/// prints their table and records each row.
void compare(const device_setup& small, const device_setup& large,
             const std::vector<workload>& loads, size_t jobs,
             const std::string& how) {
  std::vector<run_figures> small_runs(loads.size());
  std::vector<run_figures> large_runs(loads.size());
  for (size_t round = 0; round < rounds; ++round)
    for (size_t i = 0; i < loads.size(); ++i) {
      measure(small, loads[i], jobs, small_runs[i]);
      measure(large, loads[i], jobs, large_runs[i]);
    }
  std::cout << "Small: " << small.registration()
            << ". Large: " << large.registration() << ".\n\n";
  markdown_table table{
    {"workload", "jobs in flight", small.describe() + " jobs/s",
     large.describe() + " jobs/s",
     grouped(large.devices()) + " / " + grouped(small.devices()),
     "met? (>= " + fixed(target_ratio, 1) + ")",
     "CPU us per job, " + grouped(small.devices()),
     "CPU us per job, " + grouped(large.devices())}};
  for (size_t i = 0; i < loads.size(); ++i) {
    auto small_rate = small_runs[i].outcome.rate();
    auto large_rate = large_runs[i].outcome.rate();
    auto ratio = large_rate / small_rate;
    table.add(
      {loads[i].name, grouped(static_cast<double>(loads[i].in_flight())),
       grouped(small_rate), grouped(large_rate), fixed(ratio, 2),
       verdict(ratio >= target_ratio), fixed(small_runs[i].cpu_us_per_job()),
       fixed(large_runs[i].cpu_us_per_job())});
    record_summary({"placement at scale, " + how + ", " + loads[i].name + ", "
                      + grouped(static_cast<double>(loads[i].in_flight()))
                      + " in flight",
                    grouped(large_rate) + " jobs/s (" + large.describe() + ")",
                    grouped(small_rate) + " jobs/s (" + small.describe() + ")",
                    fixed(ratio, 2) + "x", ">= 0.5x", ratio >= target_ratio});
  }
  table.print("Placement at scale, " + how
              + ": zero-work sim jobs via execute, "
              + grouped(static_cast<double>(jobs * rounds)) + " per cell in "
              + std::to_string(rounds)
              + " interleaved rounds (vidnode default scheduler)");
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  auto jobs = scaled(20000, scale(argc, argv), 1000);
  // Joins and losses of the simulated nodes are not what is measured.
  spdlog::set_level(spdlog::level::err);
  const std::vector<workload> loads{
    {"1 slot per device", 1, {4, 64, 0}},
    {"8 slots per device", 8, {4, 64, 0}},
    {"1 slot per device, backlog", 1, {16, 256, 0}},
    {"8 slots per device, backlog", 8, {16, 1024, 0}},
  };
  auto alone = argc > 2 && std::string{argv[2]} == "alone";
  std::cout << "## bench_placement (" << hardware_threads()
            << " hardware threads)\n\n";
  if (!alone) {
    compare({1, 4, true}, {125, 8, true}, loads, jobs,
            "devices registered by worker nodes");
    compare({1, 4, false}, {125, 8, false}, loads, jobs,
            "the head's own devices");
  }
  print_placement_alone(scale(argc, argv));
  print_gang_placement(scale(argc, argv), fail);
  return 0;
}
