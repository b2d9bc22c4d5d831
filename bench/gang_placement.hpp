#pragma once

/// @file
/// Gang placement without actors, for bench_placement (see its file
/// comment): choose_gang in a device ledger of 1,000 sim devices on 125
/// nodes of 8 under three loads, against choose_gang_devices over a scan of
/// every device.

#include <time.h>

#include <cstdint>
#include <deque>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "vidnode/actors/device_ledger.hpp"
#include "vidnode/actors/placement_index.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/job.hpp"

#include "measurement.hpp"

namespace vidnode::bench {

/// Slots per device in gang placement.
inline constexpr int32_t gang_slots = 4;

/// Reports what failed and why, and ends the process.
using failure_handler = void (*)(const std::string& what,
                                 const std::string& why);

/// CPU time of the calling thread, in ns.
inline int64_t thread_cpu_nanos() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

/// What gang placement measured for one way of choosing.
struct gang_figures {
  /// The wall-clock time of each choice.
  latency_summary choose;
  /// The thread's CPU time of each choice.
  latency_summary choose_cpu;
  /// Per gang, with its ranks' starts and ends, in ns.
  double ns_per_gang = 0;
};

/// How loaded the devices of gang placement are.
enum class gang_load {
  /// Each device runs 0 to 4 jobs: some nodes have 8 devices free.
  random,
  /// As random, but one device of every node is full: gangs spread.
  one_full_per_node,
  /// All but 2 devices of every node are full (those 2 run 0 to 3 jobs).
  busy,
};

/// Places `gangs` gangs of 8 ranks of 16 GiB, with `choose` picking the
/// slots, in a ledger of 1,000 sim devices on 125 nodes of 8 under `how`
/// (see bench_placement's file comment); gangs spread over nodes unless
/// `how` is random. Each gang's ranks start, and end 8 gangs later.
template <class Choose>
gang_figures measure_gangs(gang_load how, size_t gangs, Choose choose,
                           failure_handler fail) {
  constexpr int32_t devices = 1000;
  constexpr int32_t per_node = 8;
  constexpr int32_t ranks = 8;
  constexpr size_t in_flight = 8;
  constexpr uint64_t bytes = 16ull << 30;
  const std::vector<std::vector<std::string>> model_lists{
    {"sim", "sim-*"}, {"sim", "sim-*", "toy"}};
  std::mt19937 rng{20261202};
  std::uniform_int_distribution<int32_t> load{0, gang_slots};
  std::uniform_int_distribution<int32_t> some_device{0, per_node - 1};
  auto across = how != gang_load::random;
  actors::device_ledger ledger;
  uint64_t next_job = 1;
  auto start = [&](actors::device_slot& device) {
    device.running.push_back(runtime::job_id{next_job++});
    device.reserved += bytes;
  };
  // The devices of the current node that are full, or that are not.
  int32_t full = 0;
  int32_t free = 0;
  int32_t other_free = 0;
  for (int32_t i = 0; i < devices; ++i) {
    runtime::device_info info;
    info.index = i;
    info.kind = runtime::device_kind::sim;
    info.ordinal = i;
    info.memory_bytes = gpu::default_sim_memory_bytes;
    auto node = i / per_node;
    auto index = i % per_node;
    if (index == 0) {
      full = some_device(rng);
      free = some_device(rng);
      other_free = some_device(rng);
    }
    const auto& models = model_lists[static_cast<size_t>(node % 2)];
    auto& device =
      ledger.at(ledger.add("bench-" + std::to_string(node), info, models));
    device.state = actors::device_slot::health::up;
    if (rng() % 2 == 0)
      device.models.push_back({"sim", 1, true});
    auto running = load(rng);
    if (how == gang_load::one_full_per_node && index == full)
      running = gang_slots;
    if (how == gang_load::busy)
      running = index == free || index == other_free
                  ? std::uniform_int_distribution<int32_t>{0, 3}(rng)
                  : gang_slots;
    for (int32_t i = 0; i < running; ++i)
      start(device);
  }
  auto nodes_of = [&](const std::vector<int32_t>& gang) {
    std::set<int32_t> nodes;
    for (auto slot : gang)
      nodes.insert(ledger.at(slot).node_number);
    return nodes.size();
  };
  // The first query indexes every device: not per gang.
  if (choose(ledger, bytes, ranks, across).empty())
    fail("gang placement", "no gang placed");
  std::deque<std::vector<int32_t>> running;
  std::vector<int64_t> nanos;
  std::vector<int64_t> cpu_nanos;
  nanos.reserve(gangs);
  cpu_nanos.reserve(gangs);
  auto began = clock_type::now();
  for (size_t i = 0; i < gangs; ++i) {
    if (running.size() == in_flight) {
      for (auto slot : running.front()) {
        auto& device = ledger.at(slot);
        device.running.pop_back();
        device.reserved -= bytes;
      }
      running.pop_front();
    }
    auto cpu_before = thread_cpu_nanos();
    auto before = clock_type::now();
    auto gang = choose(ledger, bytes, ranks, across);
    nanos.push_back(nanos_between(before, clock_type::now()));
    cpu_nanos.push_back(thread_cpu_nanos() - cpu_before);
    if (gang.size() != static_cast<size_t>(ranks)
        || (nodes_of(gang) == 1) == across)
      fail("gang placement", "a gang on the wrong number of nodes");
    for (auto slot : gang)
      start(ledger.at(slot));
    running.push_back(std::move(gang));
  }
  gang_figures result;
  result.ns_per_gang =
    static_cast<double>(nanos_between(began, clock_type::now()))
    / static_cast<double>(gangs);
  result.choose = summarize(nanos);
  result.choose_cpu = summarize(cpu_nanos);
  return result;
}

/// Prints gang placement with the ledger's index and with a scan of every
/// device, under each gang_load.
inline void print_gang_placement(double factor, failure_handler fail) {
  std::string reason;
  auto catalog = gpu::model_catalog::make({}, reason);
  if (!catalog)
    fail("making the model catalog", reason);
  const auto& sim = *catalog->find("sim");
  auto indexed = [&](const actors::device_ledger& ledger, uint64_t bytes,
                     int32_t ranks, bool across) {
    return ledger.choose_gang(sim, "sim", bytes, ranks, across, gang_slots);
  };
  std::vector<actors::gang_candidate> candidates;
  auto scanned = [&](const actors::device_ledger& ledger, uint64_t bytes,
                     int32_t ranks, bool across) {
    candidates.clear();
    for (int32_t slot = 0; slot < ledger.size(); ++slot) {
      actors::gang_candidate c;
      if (auto device = ledger.find(slot)) {
        c.node = device->node_number;
        c.device.available = device->state == actors::device_slot::health::up
                             && sim.runs_on(device->info.kind)
                             && ledger.serves(*device, "sim");
        c.device.running = static_cast<int32_t>(device->running.size());
        c.device.slots = gang_slots;
        c.device.memory_bytes = device->budget();
        c.device.memory_reserved = device->reserved;
        auto model = device->find_model("sim");
        c.device.has_model = model != nullptr && model->loaded;
      }
      candidates.push_back(c);
    }
    return actors::choose_gang_devices(candidates, bytes, ranks, across);
  };
  auto gangs = scaled(20000, factor, 200);
  markdown_table table{
    {"gang of 8", "gangs", "choose_gang us p50", "p99", "max", "CPU us p99",
     "us per gang with its starts and ends", "scan of every device us p50",
     "met? (CPU p99 < 1 ms)"}};
  const std::vector<std::pair<gang_load, std::string>> loads{
    {gang_load::random, "on one node"},
    {gang_load::one_full_per_node,
     "across nodes (every node has at most 7 free)"},
    {gang_load::busy, "across nodes, busy (every node has at most 2 free)"}};
  for (const auto& [how, name] : loads) {
    auto with_index = measure_gangs(how, gangs, indexed, fail);
    auto with_scan = measure_gangs(how, gangs, scanned, fail);
    auto met = with_index.choose_cpu.p99_us < 1000;
    table.add({name, grouped(static_cast<double>(gangs)),
               fixed(with_index.choose.p50_us), fixed(with_index.choose.p99_us),
               fixed(with_index.choose.max_us),
               fixed(with_index.choose_cpu.p99_us),
               fixed(with_index.ns_per_gang / 1000),
               fixed(with_scan.choose.p50_us), verdict(met)});
    record_summary({"gang placement, 8 ranks " + name + ", 1,000 devices",
                    fixed(with_index.choose_cpu.p99_us) + " us p99 (CPU)",
                    fixed(with_scan.choose.p50_us) + " us p50 (scan)", "-",
                    "< 1 ms", met});
  }
  table.print("Gang placement: choose_gang for gangs of 8 ranks of 16 GiB "
              "among 1,000 sim devices on 125 nodes of 8 (4 slots each, "
              "random load, two serving profiles), no actors; target: under "
              "1 ms");
}

} // namespace vidnode::bench
