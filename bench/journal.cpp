/// @file
/// The head's journal: durable accepts per second and the restart time.
///
/// Accepts: an event-based client keeps `window` submissions in flight
/// against a node with one sim device that a long job holds (so every job
/// is accepted and queued; nothing else runs), until `jobs` were
/// acknowledged.
/// Measured in one run on the same disk: the node without a journal, with
/// `--journal-sync full` and `normal` (group commit: every job accepted
/// while a commit is in flight goes into the next), with `full` and one
/// submission at a time (one commit per job through the whole path), and a
/// bare SQLite loop that inserts one row and commits it, per job, with
/// synchronous=FULL in WAL mode (the one-fsync-per-job rate of the disk).
/// Targets: at least 10,000 durable accepts/s with `full`, and group commit
/// at least 20x the bare one-fsync-per-job loop.
///
/// Restart: a journal holding 100,000 jobs (95,000 finished, 5,000 queued)
/// is written, then `vidnode --state-dir` is started on it; measured from
/// the process's start to the first job acknowledged by it. Target: under
/// 2 s.
///
/// Usage: bench_journal [SCALE] (or VIDNODE_BENCH_SCALE): multiplies the
/// job counts. The journals are written under $TMPDIR (default /tmp).

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "support/process.hpp"
#include "support/temp_directory.hpp"
#include "vidnode/runtime/logging.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"
#include "vidnode/runtime/type_registration.hpp"

#include "measurement.hpp"
#include "sqlite_baseline.hpp"

namespace vidnode::bench {
namespace {

using namespace std::chrono_literals;

constexpr double target_accepts = 10000.0;
constexpr double target_group_ratio = 20.0;
constexpr double target_restart_s = 2.0;

class bench_config : public caf::actor_system_config {
public:
  bench_config() {
    actors::add_types(*this);
    set("scheduler.max-threads", 2);
  }
};

/// A request a user would send: a prompt of about 100 characters and a few
/// options.
runtime::job_spec realistic_job(uint64_t n) {
  runtime::job_spec spec;
  spec.prompt = "a red fox running through fresh snow at dawn, cinematic "
                "lighting, shallow depth of field, 4k, take "
                + std::to_string(n);
  spec.options = {{"step_ms", "50"}, {"mem_mb", "1024"}};
  spec.priority = static_cast<int32_t>(n % 10);
  spec.seed = n;
  return spec;
}

/// Keeps `window` submissions in flight until `jobs` were acknowledged;
/// returns accepts per second (0 if one was refused).
double accepts_per_second(const std::string& state_dir, const std::string& sync,
                          size_t jobs, size_t window) {
  bench_config cfg;
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.devices = "sim:1";
  settings.queue_size = 10000000;
  settings.max_results = 10;
  settings.state_dir = state_dir;
  settings.journal_sync = sync;
  auto node = actors::local_node::start(sys, settings);
  if (!node) {
    std::cerr << runtime::describe(node.error()) << "\n";
    return 0;
  }
  auto admission = (*node)->admission();
  {
    // One long job holds the only device: every job measured is accepted
    // and queued, none runs.
    caf::scoped_actor self{sys};
    auto blocker = realistic_job(0);
    blocker.steps = 1000;
    blocker.options["step_ms"] = "1000";
    self
      ->request(admission, caf::infinite, runtime::submit_atom::value, blocker)
      .receive(
        [](runtime::job_id) {},
        [](caf::error& err) { std::cerr << runtime::describe(err) << "\n"; });
  }
  std::vector<runtime::job_spec> specs;
  specs.reserve(jobs);
  for (size_t i = 0; i < jobs; ++i)
    specs.push_back(realistic_job(i));
  auto started = clock_type::now();
  size_t acknowledged = 0;
  size_t refused = 0;
  {
    caf::scoped_actor self{sys};
    auto driver = self->spawn([&](caf::event_based_actor* client) {
      auto sent = std::make_shared<size_t>(0);
      auto total = specs.size();
      auto next = std::make_shared<std::function<void()>>();
      *next = [=, &specs, &acknowledged, &refused] {
        if (*sent >= total)
          return;
        auto& spec = specs[(*sent)++];
        client
          ->request(admission, caf::infinite, runtime::submit_atom::value, spec)
          .then(
            [=, &acknowledged](runtime::job_id) {
              if (++acknowledged + refused == total)
                client->quit();
              (*next)();
            },
            [=, &acknowledged, &refused](caf::error& err) {
              if (refused++ == 0)
                std::cerr << runtime::describe(err) << "\n";
              if (acknowledged + refused == total)
                client->quit();
              (*next)();
            });
      };
      for (size_t i = 0; i < window; ++i)
        (*next)();
    });
    self->wait_for(driver);
  }
  auto seconds = std::chrono::duration<double>(clock_type::now() - started);
  (*node)->stop();
  return refused > 0 ? 0.0 : static_cast<double>(jobs) / seconds.count();
}

/// Writes a journal of `finished` finished and `queued` queued jobs.
void fill_journal(const std::string& dir, size_t finished, size_t queued) {
  auto store = actors::journal_store::open(dir, actors::journal_sync::normal);
  if (!store) {
    std::cerr << runtime::describe(store.error()) << "\n";
    std::exit(1);
  }
  auto now = caf::make_timestamp();
  actors::journal_batch batch;
  for (size_t i = 0; i < finished + queued; ++i) {
    actors::journaled_job job;
    job.spec = realistic_job(i);
    job.spec.idempotency_key = "key-" + std::to_string(i);
    job.result.id = runtime::job_id{i + 1};
    job.result.model = job.spec.model;
    job.result.priority = job.spec.priority;
    job.result.steps = job.spec.steps;
    job.result.accepted_at = now - 10s;
    if (i < finished) {
      job.result.state = runtime::job_state::succeeded;
      job.result.attempts = 1;
      job.result.device = "sim:0";
      job.result.node = "bench";
      job.result.output = "sim://sim/" + std::to_string(i);
      job.result.started_at = now - 9s;
      job.result.finished_at = now - 8s;
    }
    batch.jobs.push_back(std::move(job));
    if (batch.jobs.size() == 5000) {
      if (auto err = (*store)->commit(batch)) {
        std::cerr << runtime::describe(err) << "\n";
        std::exit(1);
      }
      batch.clear();
    }
  }
  if (auto err = (*store)->commit(batch)) {
    std::cerr << runtime::describe(err) << "\n";
    std::exit(1);
  }
}

/// Seconds from starting vidnode on `dir` to its first acknowledged job.
double restart_seconds(const std::string& dir) {
  auto started = clock_type::now();
  test::child_process node{{VIDNODE_BIN, "--devices", "sim:1", "--listen",
                            "127.0.0.1:0", "--state-dir", dir, "--max-results",
                            "100000", "--queue-size", "1000000", "--log-level",
                            "warn"}};
  auto line = node.read_line(60s);
  auto prefix = std::string{"vidnode listening on 127.0.0.1:"};
  if (!line || line->rfind(prefix, 0) != 0) {
    std::cerr << "vidnode did not start: " << node.stderr_text() << "\n";
    return -1;
  }
  net::client::options opts;
  opts.port = static_cast<uint16_t>(std::stoi(line->substr(prefix.size())));
  auto client = net::client::connect(opts);
  if (!client) {
    std::cerr << runtime::describe(client.error()) << "\n";
    return -1;
  }
  auto id = (*client)->submit(realistic_job(0));
  auto seconds = std::chrono::duration<double>(clock_type::now() - started);
  if (!id) {
    std::cerr << runtime::describe(id.error()) << "\n";
    return -1;
  }
  node.signal(SIGTERM);
  node.wait(30s);
  return seconds.count();
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode;
  using namespace vidnode::bench;
  spdlog::set_level(spdlog::level::warn);
  auto factor = scale(argc, argv);
  auto jobs = scaled(40000, factor, 1000);
  auto sequential = scaled(1000, factor, 100);
  auto bare_rows = scaled(1000, factor, 100);
  size_t window = 512;

  auto dir = [](const char* name) {
    return std::make_unique<test::temp_directory>(name);
  };
  auto bare = [&] {
    auto d = dir("bench-journal-bare");
    bare_sqlite db{d->path()};
    auto started = clock_type::now();
    for (size_t i = 0; i < bare_rows; ++i)
      db.commit();
    auto seconds = std::chrono::duration<double>(clock_type::now() - started);
    return static_cast<double>(bare_rows) / seconds.count();
  }();
  auto none = accepts_per_second("", "full", jobs, window);
  double full = 0;
  double normal = 0;
  double one_by_one = 0;
  {
    auto d = dir("bench-journal-full");
    full = accepts_per_second(d->path(), "full", jobs, window);
  }
  {
    auto d = dir("bench-journal-normal");
    normal = accepts_per_second(d->path(), "normal", jobs, window);
  }
  // The default --log-level info writes a line per job state change: the
  // same accepts with every line written to a file, text and JSON.
  auto logged = [&](runtime::log_format format) {
    auto d = dir("bench-journal-logged");
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(
      spdlog::basic_logger_mt("bench-journal-log", d->path() + "/log.txt"));
    spdlog::set_level(spdlog::level::info);
    runtime::use_log_format(format);
    auto rate = accepts_per_second(d->path(), "full", jobs, window);
    spdlog::drop("bench-journal-log");
    spdlog::set_default_logger(previous);
    spdlog::set_level(spdlog::level::warn);
    return rate;
  };
  auto full_text_log = logged(runtime::log_format::text);
  auto full_json_log = logged(runtime::log_format::json);
  {
    auto d = dir("bench-journal-sequential");
    one_by_one = accepts_per_second(d->path(), "full", sequential, 1);
  }
  markdown_table accepts{{"configuration", "jobs", "in flight", "accepts/s",
                          "vs bare one-fsync-per-job SQLite"}};
  auto row = [&](const std::string& name, size_t n, size_t w, double rate) {
    accepts.add({name, std::to_string(n), std::to_string(w), grouped(rate),
                 fixed(rate / bare, 1) + "x"});
  };
  row("bare SQLite: insert + commit per row, synchronous=FULL, WAL", bare_rows,
      1, bare);
  row("vidnode, --state-dir none", jobs, window, none);
  row("vidnode, --journal-sync full (group commit)", jobs, window, full);
  row("vidnode, --journal-sync normal (group commit)", jobs, window, normal);
  row("vidnode, --journal-sync full, --log-level info to a file (text)", jobs,
      window, full_text_log);
  row("vidnode, --journal-sync full, --log-level info to a file (json)", jobs,
      window, full_json_log);
  row("vidnode, --journal-sync full, one submission at a time", sequential, 1,
      one_by_one);
  accepts.print("Durable accepts per second (same disk, same run)");
  auto group_ratio = full / bare;
  std::cout << "durable accepts/s with --journal-sync full: " << grouped(full)
            << " (target >= " << grouped(target_accepts)
            << "): " << verdict(full >= target_accepts) << "\n"
            << "group commit / one fsync per job: " << fixed(group_ratio, 1)
            << "x (target >= " << fixed(target_group_ratio, 0)
            << "x): " << verdict(group_ratio >= target_group_ratio) << "\n"
            << "journal full / no journal: " << fixed(full / none, 2) << "x\n"
            << "info logs (text) / no logs: " << fixed(full_text_log / full, 2)
            << "x, (json): " << fixed(full_json_log / full, 2) << "x\n\n";
  record_summary({"journal: durable accepts/s (full, group commit)",
                  grouped(full) + "/s", grouped(bare) + "/s bare SQLite",
                  fixed(group_ratio, 1) + "x", ">= 10,000/s and >= 20x",
                  full >= target_accepts && group_ratio >= target_group_ratio});

  auto restart_dir = dir("bench-journal-restart");
  auto finished = scaled(95000, factor, 1000);
  auto queued = scaled(5000, factor, 100);
  fill_journal(restart_dir->path(), finished, queued);
  auto restart = restart_seconds(restart_dir->path());
  markdown_table table{{"jobs in the journal", "finished", "queued",
                        "start to first acknowledged job", "met? (< 2 s)"}};
  table.add({grouped(static_cast<double>(finished + queued)),
             grouped(static_cast<double>(finished)),
             grouped(static_cast<double>(queued)), fixed(restart, 3) + " s",
             verdict(restart >= 0 && restart < target_restart_s)});
  table.print("Head restart on a journal");
  record_summary({"journal: head restart, 100,000 records",
                  fixed(restart, 3) + " s", "-", "-", "< 2 s",
                  restart >= 0 && restart < target_restart_s});
  return 0;
}
