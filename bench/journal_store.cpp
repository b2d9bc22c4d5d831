/// @file
/// The journal's baseline: how many jobs per second reach the disk through
/// actors::journal_store, against SQLite alone, and how long a head takes
/// to open a journal of 100,000 finished jobs. No target yet: this is the
/// figure the journal actor's batching is later judged against.
///
/// In one run, in fresh directories under the system's temporary directory
/// (TMPDIR chooses the disk):
/// - (a) bare SQLite: one ~500-byte blob row inserted and committed per
///   row, WAL, synchronous=FULL, exclusive locking mode as the store uses
///   it: one fsync per job, the rate a journal without batching could not
///   beat;
/// - (b) journal_store::commit with one job per batch, journal_sync::full;
/// - (c) the same with batches of 64 jobs (one fsync per 64 jobs);
/// - (d) batches of 64 jobs, journal_sync::normal (no fsync at commit);
/// - (e) open() and contents() of a journal of 100,000 finished jobs
///   (prompts of about 100 characters, a few options), built beforehand
///   with batches of 1,000.
/// The rates are measured in 5 rounds of 0.5 s each, (a) to (d) one after
/// the other in every round, and pooled. Jobs are realistic finished jobs,
/// made before they are timed; (e) shows their bytes per job in the file,
/// and, for comparison, SQLite's own quick check and a scan of the records
/// of the same file without decoding them.
///
/// Usage: bench_journal_store [SCALE] (or VIDNODE_BENCH_SCALE): multiplies
/// the time of each rate and the jobs of (e).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "support/temp_directory.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/job.hpp"

#include "measurement.hpp"
#include "sqlite_baseline.hpp"

namespace vidnode::bench {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

/// Each rate is measured in `rounds` slices of `slice` (times the scale).
constexpr int rounds = 5;
constexpr auto slice = 500ms;

[[noreturn]] void fail(const std::string& what, const std::string& why) {
  std::cerr << "bench_journal_store: " << what << " failed: " << why << '\n';
  std::exit(1);
}

/// A finished job as a head journals it.
actors::journaled_job finished_job(uint64_t id) {
  actors::journaled_job job;
  auto& spec = job.spec;
  spec.model = "sim";
  spec.prompt = "a red fox running through fresh snow at dawn, golden light, "
                "slow camera pan, shallow depth of field #"
                + std::to_string(id);
  spec.width = 512;
  spec.height = 512;
  spec.frames = 16;
  spec.fps = 8;
  spec.steps = 20;
  spec.seed = id * 7919;
  spec.priority = 5;
  spec.options = {
    {"guidance", "7.5"}, {"scheduler", "ddim"}, {"negative", "blurry"}};
  auto& result = job.result;
  result.id = runtime::job_id{id};
  result.state = runtime::job_state::succeeded;
  result.output = "/var/lib/vidnode/out/job-" + std::to_string(id) + ".mp4";
  result.output_node = "host-a";
  result.model = spec.model;
  result.priority = spec.priority;
  result.device = "cuda:0";
  result.node = "host-a";
  result.attempts = 1;
  result.step = 20;
  result.steps = 20;
  result.reserved_bytes = 3'000'000'000;
  auto now = caf::make_timestamp();
  result.accepted_at = now;
  result.started_at = now + 2s;
  result.computed_at = now + 30s;
  result.finished_at = now + 31s;
  result.queue_time = 2s;
  result.run_time = 29s;
  return job;
}

void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE)
    fail(what, sqlite3_errmsg(db));
}

std::unique_ptr<actors::journal_store> open_journal(const std::string& dir,
                                                    actors::journal_sync sync) {
  auto store = actors::journal_store::open(dir, sync);
  if (!store)
    fail("opening " + dir, runtime::describe(store.error()));
  return std::move(*store);
}

/// (b), (c), (d): journal_store::commit of batches of `per_batch` new jobs
/// (made once; each commit gives them the next ids).
class store_commits {
public:
  store_commits(const std::string& dir, actors::journal_sync sync,
                size_t per_batch)
    : store_(open_journal(dir, sync)) {
    for (size_t i = 0; i < per_batch; ++i)
      batch_.jobs.push_back(finished_job(i + 1));
  }

  void commit() {
    for (auto& job : batch_.jobs)
      job.result.id = runtime::job_id{++id_};
    if (auto err = store_->commit(batch_))
      fail("a commit", runtime::describe(err));
  }

private:
  std::unique_ptr<actors::journal_store> store_;
  actors::journal_batch batch_;
  uint64_t id_ = 0;
};

/// One way of journaling and what it achieved.
struct contender {
  const char* id;
  const char* what;
  size_t jobs_per_commit;
  std::function<void()> commit;
  size_t jobs = 0;
  double seconds = 0;

  double per_second() const {
    return static_cast<double>(jobs) / seconds;
  }
};

/// Measures every contender in `rounds` rounds of `slice` each, one after
/// the other within a round, so that a change of the shared disk's speed
/// during the run falls on all of them.
void measure(std::vector<contender>& all, int rounds,
             std::chrono::nanoseconds slice) {
  for (int round = 0; round < rounds; ++round)
    for (auto& x : all) {
      auto start = clock_type::now();
      auto deadline = start + slice;
      size_t commits = 0;
      do {
        x.commit();
        ++commits;
      } while (clock_type::now() < deadline);
      x.jobs += commits * x.jobs_per_commit;
      x.seconds +=
        static_cast<double>(nanos_between(start, clock_type::now())) / 1e9;
    }
}

struct open_time {
  double seconds = 0;
  size_t jobs = 0;
  uint64_t file_bytes = 0;
  /// Where the time goes, SQLite alone on the same file: its quick check,
  /// and reading every record without decoding it.
  double quick_check_seconds = 0;
  double scan_seconds = 0;
};

template <class F>
double seconds_of(F f) {
  auto start = clock_type::now();
  f();
  return static_cast<double>(nanos_between(start, clock_type::now())) / 1e9;
}

/// Times SQLite's quick check and a scan of the jobs of the journal at
/// `path` (closed).
void time_sqlite_alone(const std::string& path, open_time& result) {
  sqlite3* db = nullptr;
  check(db, sqlite3_open(path.c_str(), &db), "sqlite3_open");
  auto run = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    check(db, sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), sql);
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
      bytes += static_cast<size_t>(sqlite3_column_bytes(stmt, 0));
    check(db, rc, sql);
    sqlite3_finalize(stmt);
    return bytes;
  };
  result.quick_check_seconds = seconds_of([&] { run("PRAGMA quick_check"); });
  result.scan_seconds =
    seconds_of([&] { run("SELECT record, id FROM jobs ORDER BY id"); });
  sqlite3_close(db);
}

/// (e): writes `count` finished jobs, closes, then times open + contents.
open_time open_large(const std::string& dir, size_t count) {
  {
    auto store = open_journal(dir, actors::journal_sync::normal);
    actors::journal_batch batch;
    uint64_t id = 0;
    while (id < count) {
      batch.clear();
      for (size_t i = 0; i < 1000 && id < count; ++i)
        batch.jobs.push_back(finished_job(++id));
      if (auto err = store->commit(batch))
        fail("writing the large journal", runtime::describe(err));
    }
  }
  open_time result;
  result.file_bytes =
    fs::file_size(fs::path{dir} / actors::journal_store::file_name);
  {
    actors::journal_contents contents;
    std::unique_ptr<actors::journal_store> store;
    result.seconds = seconds_of([&] {
      store = open_journal(dir, actors::journal_sync::full);
      contents = std::move(store->contents());
    });
    result.jobs = contents.jobs.size();
    if (result.jobs != count)
      fail("opening the large journal",
           "it holds " + std::to_string(result.jobs) + " jobs, not "
             + std::to_string(count));
  }
  time_sqlite_alone((fs::path{dir} / actors::journal_store::file_name).string(),
                    result);
  return result;
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  using vidnode::actors::journal_sync;
  auto factor = scale(argc, argv);
  auto large = scaled(100'000, factor, 1000);
  vidnode::test::temp_directory root{"vidnode-bench-journal"};
  auto dir = [&](const char* name) {
    return (fs::path{root.path()} / name).string();
  };
  std::cout << "## bench_journal_store (" << root.path() << ")\n\n";
  bare_sqlite bare{dir("a")};
  store_commits single{dir("b"), journal_sync::full, 1};
  store_commits batched{dir("c"), journal_sync::full, 64};
  store_commits normal{dir("d"), journal_sync::normal, 64};
  std::vector<contender> all{
    {"a", "bare SQLite, one 500-byte row per commit, WAL, synchronous=FULL", 1,
     [&] { bare.commit(); }},
    {"b", "journal_store, 1 job per commit, full", 1, [&] { single.commit(); }},
    {"c", "journal_store, 64 jobs per commit, full", 64,
     [&] { batched.commit(); }},
    {"d", "journal_store, 64 jobs per commit, normal", 64,
     [&] { normal.commit(); }},
  };
  measure(all, rounds,
          std::chrono::duration_cast<std::chrono::nanoseconds>(slice * factor));
  markdown_table rates{{"", "what", "jobs", "seconds", "jobs/s"}};
  for (const auto& x : all)
    rates.add({x.id, x.what, grouped(static_cast<double>(x.jobs)),
               fixed(x.seconds, 2), grouped(x.per_second())});
  rates.print("Jobs journaled per second");
  auto ratio = [&](size_t x, size_t y) {
    return all[x].per_second() / all[y].per_second();
  };
  std::cout << "(c)/(a): " << fixed(ratio(2, 0), 1)
            << "x; (b)/(a): " << fixed(ratio(1, 0), 2)
            << "x; (d)/(c): " << fixed(ratio(3, 2), 2) << "x\n\n";

  auto opened = open_large(dir("e"), large);
  markdown_table open{{"", "jobs", "file MB", "file bytes per job",
                       "open + contents, s", "SQLite alone: quick_check, s",
                       "SQLite alone: scan of the records, s"}};
  open.add({"e", grouped(static_cast<double>(opened.jobs)),
            fixed(static_cast<double>(opened.file_bytes) / 1e6, 1),
            grouped(static_cast<double>(opened.file_bytes)
                    / static_cast<double>(opened.jobs)),
            fixed(opened.seconds, 3), fixed(opened.quick_check_seconds, 3),
            fixed(opened.scan_seconds, 3)});
  open.print("Opening a journal of finished jobs");
  return 0;
}
