/// @file
/// Admission memory per queued job.
///
/// A node with one sim device (one slot) runs a job that lasts ten minutes,
/// so everything submitted after it queues. 100,000 jobs with short prompts
/// are submitted (pipelined, so the mailbox stays small) and the process's
/// resident memory is read before and after: the difference per job is the
/// admission's cost of a queued job (target: under 2048 bytes). The heap's
/// own count (mallinfo2) is shown beside it, and as a baseline the heap
/// cost of merely holding the same job_specs in a std::vector, measured in
/// the same run.
///
/// Usage: bench_memory [SCALE] (or VIDNODE_BENCH_SCALE): multiplies the
/// number of queued jobs.

#include <malloc.h>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"

#include "measurement.hpp"
#include "node_readiness.hpp"
#include "round_trips.hpp"

namespace vidnode::bench {
namespace {

constexpr double target_bytes = 2048.0;
/// Jobs queued before the "before" reading, so that the clients, the
/// mailboxes and the first growth of admission's containers are not
/// charged to the measured jobs.
constexpr size_t warmup_jobs = 1000;

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_memory: " << what << " failed: " << why << '\n';
  std::exit(1);
}

/// The job that keeps the only device busy for the whole benchmark.
runtime::job_spec blocker_job() {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.prompt = "blocker";
  spec.steps = 1;
  spec.options = {{"step_ms", "600000"}, {"load_ms", "0"}};
  return spec;
}

/// A queued job: a short prompt, default settings otherwise.
runtime::job_spec queued_job() {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.prompt = "a red fox running through fresh snow";
  spec.options = {{"load_ms", "0"}};
  return spec;
}

std::string accept_any(runtime::job_id) {
  return {};
}

/// Readings of one measurement: resident and heap bytes, before and after.
struct memory_delta {
  uint64_t rss_before = 0;
  uint64_t rss_after = 0;
  uint64_t heap_before = 0;
  uint64_t heap_after = 0;

  double rss_per(size_t n) const {
    return (static_cast<double>(rss_after) - static_cast<double>(rss_before))
           / static_cast<double>(n);
  }

  double heap_per(size_t n) const {
    return (static_cast<double>(heap_after) - static_cast<double>(heap_before))
           / static_cast<double>(n);
  }
};

/// Heap cost of holding `n` copies of a queued job's spec, nothing else.
memory_delta payload_baseline(size_t n) {
  memory_delta result;
  result.rss_before = resident_bytes();
  result.heap_before = heap_in_use_bytes();
  {
    std::vector<runtime::job_spec> specs(n, queued_job());
    result.rss_after = resident_bytes();
    result.heap_after = heap_in_use_bytes();
  }
  malloc_trim(0);
  return result;
}

/// Queues `n` jobs on a node whose only device is busy.
memory_delta queued_jobs(size_t n) {
  caf::actor_system_config cfg;
  actors::add_types(cfg);
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.node_name = "bench";
  settings.devices = "sim:1";
  settings.max_concurrency = 1;
  settings.queue_size = static_cast<uint32_t>(n + warmup_jobs + 1000);
  auto node = actors::local_node::start(sys, settings);
  if (!node)
    fail("starting the node", sys.render(node.error()));
  auto admission = (*node)->admission();
  if (!await_devices(sys, admission, 1))
    fail("starting the node", "devices did not attach");
  runtime::job_id blocker;
  {
    caf::scoped_actor self{sys};
    self
      ->request(admission, caf::infinite, runtime::submit_atom::value,
                blocker_job())
      .receive([&](runtime::job_id id) { blocker = id; },
               [&](caf::error& err) { fail("submit", sys.render(err)); });
  }
  auto submit = runtime::submit_atom::value;
  auto job = queued_job();
  auto warmup = pipelined_requests<runtime::job_id>(
    sys, admission, {4, 64, warmup_jobs}, accept_any, submit, job);
  if (!warmup.failure.empty())
    fail("warm-up submits", warmup.failure);
  memory_delta result;
  result.rss_before = resident_bytes();
  result.heap_before = heap_in_use_bytes();
  auto run = pipelined_requests<runtime::job_id>(sys, admission, {4, 64, n},
                                                 accept_any, submit, job);
  if (!run.failure.empty())
    fail("submits", run.failure);
  result.rss_after = resident_bytes();
  result.heap_after = heap_in_use_bytes();
  // Every job but the blocker must still be queued.
  caf::scoped_actor self{sys};
  auto last = runtime::job_id{blocker.value + warmup_jobs + n};
  self->request(admission, caf::infinite, runtime::status_atom::value, last)
    .receive(
      [&](const runtime::job_result& r) {
        if (r.state != runtime::job_state::queued)
          fail("queueing", "job " + runtime::to_string(last) + " is "
                             + runtime::to_string(r.state));
      },
      [&](caf::error& err) { fail("status", sys.render(err)); });
  if (auto err = (*node)->stop())
    fail("stopping the node", sys.render(err));
  return result;
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  // Stopping the node cancels every queued job, and each cancellation is
  // logged at info level.
  spdlog::set_level(spdlog::level::warn);
  auto n = scaled(100000, scale(argc, argv), 1000);
  auto payload = payload_baseline(n);
  auto node = queued_jobs(n);
  auto mib = [](uint64_t x) {
    return fixed(static_cast<double>(x) / 1048576.0);
  };
  auto rss_per_job = node.rss_per(n);
  std::cout << "## bench_memory\n\n";
  markdown_table table{{"what", "jobs", "RSS before MiB", "RSS after MiB",
                        "RSS bytes / job", "heap bytes / job",
                        "met? (RSS < 2048 B)"}};
  table.add({"queued jobs in admission", grouped(static_cast<double>(n)),
             mib(node.rss_before), mib(node.rss_after), fixed(rss_per_job, 0),
             fixed(node.heap_per(n), 0), verdict(rss_per_job < target_bytes)});
  table.add({"baseline: the job_specs alone in a std::vector",
             grouped(static_cast<double>(n)), mib(payload.rss_before),
             mib(payload.rss_after), fixed(payload.rss_per(n), 0),
             fixed(payload.heap_per(n), 0), "-"});
  table.print("Admission memory per queued job (1 sim device busy, "
              + grouped(static_cast<double>(n)) + " jobs queued after "
              + grouped(static_cast<double>(warmup_jobs)) + " warm-up)");
  record_summary({"memory per queued job", fixed(rss_per_job, 0) + " B (RSS)",
                  fixed(payload.heap_per(n), 0) + " B (bare job_spec)",
                  fixed(rss_per_job / payload.heap_per(n), 2) + "x", "< 2048 B",
                  rss_per_job < target_bytes});
  return 0;
}
