/// The head's journal on disk (actors/journal_store.hpp): what survives a
/// close, a torn write and a full disk, what is refused at open, and that
/// the file does not grow over cycles of jobs accepted and forgotten.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/sec.hpp>
#include <catch2/catch.hpp>
#include <sqlite3.h>

#include "support/temp_directory.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using actors::journal_batch;
using actors::journal_store;
using actors::journal_sync;
using actors::journaled_job;
using runtime::errc;

namespace {

namespace fs = std::filesystem;

/// A scratch state directory and the journal's files in it.
struct scratch {
  test::temp_directory dir{"vidnode-journal"};
  fs::path db = fs::path{dir.path()} / journal_store::file_name;
  fs::path wal = fs::path{db.string() + "-wal"};
};

std::unique_ptr<journal_store>
open_store(const std::string& dir, journal_sync sync = journal_sync::full) {
  auto store = journal_store::open(dir, sync);
  if (!store)
    FAIL("open failed: " << runtime::describe(store.error()));
  return std::move(*store);
}

/// Why opening `dir` fails (REQUIREs that it does).
caf::error open_error(const std::string& dir) {
  auto store = journal_store::open(dir, journal_sync::full);
  REQUIRE_FALSE(store);
  return store.error();
}

/// Runs `sql` on the database at `path` with SQLite itself.
void run_sql(const fs::path& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* message = nullptr;
  auto rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  std::string text = message != nullptr ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  INFO(sql << ": " << text);
  REQUIRE(rc == SQLITE_OK);
}

caf::timestamp at(int64_t seconds) {
  return caf::timestamp{caf::timespan{seconds * 1'000'000'000 + 123}};
}

/// A finished job with every field set, different for every id.
journaled_job full_job(uint64_t id) {
  journaled_job job;
  auto& spec = job.spec;
  spec.model = "sim-" + std::to_string(id % 3);
  spec.prompt =
    "a red fox running through fresh snow, take " + std::to_string(id);
  spec.width = 640;
  spec.height = 360;
  spec.frames = 24;
  spec.fps = 12;
  spec.steps = 30;
  spec.seed = 0xfeedface00000000 + id;
  spec.priority = 7;
  spec.queue_timeout = 90s;
  spec.run_timeout = 1234567ns;
  spec.idempotency_key = "key-" + std::to_string(id);
  spec.options = {{"guidance", "7.5"}, {"scheduler", "ddim"}, {"step_ms", "0"}};
  spec.audio_url = "https://example.com/audio/" + std::to_string(id) + ".wav";
  spec.output_url = "https://bucket.example.com/out/" + std::to_string(id);
  spec.webhook_url = "https://hooks.example.com/done";
  spec.endpoint = "endpoint-" + std::to_string(id);
  auto& result = job.result;
  result.id = runtime::job_id{id};
  result.state = runtime::job_state::succeeded;
  result.output = "/var/lib/vidnode/out/" + std::to_string(id) + ".mp4";
  result.output_node = "host-b";
  result.model = spec.model;
  result.priority = spec.priority;
  result.device = "cuda:1";
  result.node = "host-b";
  result.attempts = 2;
  result.step = 30;
  result.steps = 30;
  result.reserved_bytes = 6'000'000'000;
  result.accepted_at = at(1000);
  result.started_at = at(1001);
  result.computed_at = at(1042);
  result.finished_at = at(1043);
  result.queue_time = 1500ms;
  result.run_time = 41s;
  job.charged_failures = 1;
  job.lease = 0x0000000300000011;
  job.device_index = 1;
  return job;
}

void check_same_error(const caf::error& x, const caf::error& y) {
  CHECK(static_cast<bool>(x) == static_cast<bool>(y));
  if (!x || !y)
    return;
  CHECK(x.category() == y.category());
  CHECK(x.code() == y.code());
  CHECK(runtime::describe(x) == runtime::describe(y));
}

void check_same(const journaled_job& x, const journaled_job& y) {
  INFO("job " << x.result.id.value);
  CHECK(x.spec == y.spec);
  const auto& a = x.result;
  const auto& b = y.result;
  CHECK(a.id == b.id);
  CHECK(a.state == b.state);
  check_same_error(a.error, b.error);
  CHECK(a.output == b.output);
  CHECK(a.output_node == b.output_node);
  CHECK(a.model == b.model);
  CHECK(a.priority == b.priority);
  CHECK(a.device == b.device);
  CHECK(a.node == b.node);
  CHECK(a.attempts == b.attempts);
  CHECK(a.step == b.step);
  CHECK(a.steps == b.steps);
  CHECK(a.reserved_bytes == b.reserved_bytes);
  CHECK(a.accepted_at == b.accepted_at);
  CHECK(a.started_at == b.started_at);
  CHECK(a.computed_at == b.computed_at);
  CHECK(a.finished_at == b.finished_at);
  CHECK(a.queue_time == b.queue_time);
  CHECK(a.run_time == b.run_time);
  CHECK(x.charged_failures == y.charged_failures);
  CHECK(x.lease == y.lease);
  CHECK(x.device_index == y.device_index);
}

std::vector<uint64_t> ids_of(const std::vector<journaled_job>& jobs) {
  std::vector<uint64_t> ids;
  for (const auto& job : jobs)
    ids.push_back(job.result.id.value);
  return ids;
}

std::vector<uint64_t> id_range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> ids;
  for (auto id = first; id <= last; ++id)
    ids.push_back(id);
  return ids;
}

/// A batch of the jobs `first` to `last`.
journal_batch jobs_batch(uint64_t first, uint64_t last,
                         const std::string& prompt = {}) {
  journal_batch batch;
  for (auto id = first; id <= last; ++id) {
    batch.jobs.push_back(full_job(id));
    if (!prompt.empty())
      batch.jobs.back().spec.prompt = prompt;
  }
  return batch;
}

std::string random_bytes(size_t n) {
  std::mt19937 gen{7};
  std::string result(n, '\0');
  for (auto& c : result)
    c = static_cast<char>(gen() & 0xff);
  return result;
}

uint64_t size_or_zero(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

} // namespace

TEST_CASE("journal_sync names parse back and other words are refused",
          "[journal]") {
  for (auto sync : {journal_sync::full, journal_sync::normal}) {
    auto parsed =
      sync == journal_sync::full ? journal_sync::normal : journal_sync::full;
    CHECK(actors::from_string(actors::to_string(sync), parsed));
    CHECK(parsed == sync);
  }
  auto parsed = journal_sync::normal;
  CHECK_FALSE(actors::from_string("FULL", parsed));
  CHECK_FALSE(actors::from_string("", parsed));
  CHECK(parsed == journal_sync::normal);
  auto batch = jobs_batch(1, 2);
  batch.forgotten.push_back(runtime::job_id{3});
  batch.estimates.emplace_back("k", 1);
  batch.forgotten_estimates.push_back("j");
  CHECK_FALSE(batch.empty());
  batch.clear();
  CHECK(batch.empty());
}

TEST_CASE("every field of a job and the estimates survive a close and a "
          "reopen, and forgotten ones are gone",
          "[journal]") {
  scratch s;
  auto job1 = full_job(1);
  job1.result.state = runtime::job_state::running;
  job1.result.finished_at = {};
  auto job2 = full_job(2);
  job2.result.state = runtime::job_state::failed;
  job2.result.error =
    runtime::make_error(errc::out_of_memory, "cuda:1 needed 7 GiB, had 6 GiB");
  auto job3 = full_job(3);
  job3.result.state = runtime::job_state::failed;
  job3.result.error = caf::make_error(caf::sec::request_timeout);
  auto job4 = full_job(4);
  job4.result.state = runtime::job_state::failed;
  job4.result.error = caf::make_error(caf::sec::runtime_error, "boom");
  auto job5 = full_job(5);
  job5.result.state = runtime::job_state::cancelled;
  job5.result.error = runtime::make_error(errc::cancelled);
  job5.spec.options.clear();
  {
    auto store = open_store(s.dir.path());
    CHECK(store->path() == s.db.string());
    auto& contents = store->contents();
    CHECK(contents.jobs.empty());
    CHECK(contents.estimates.empty());
    CHECK(contents.last_job_id == 0);
    CHECK(contents.generation == 1);
    journal_batch batch;
    batch.jobs = {job1, job2, job3, job4, job5, full_job(6)};
    batch.estimates = {
      {"sim|512x512x16", 100}, {"sim|64x64x8", 200}, {"toy|256x256x8", 300}};
    REQUIRE_FALSE(store->commit(batch));
    batch.clear();
    // Job 1 ends; job 6, the highest id, expires; one estimate changes
    // (and keeps its place), one is dropped, one is learned.
    job1.result.state = runtime::job_state::succeeded;
    job1.result.finished_at = at(2000);
    job1.lease = 0;
    batch.jobs = {job1};
    batch.forgotten = {runtime::job_id{6}};
    batch.estimates = {{"sim|512x512x16", 150}, {"cpu|8x8x1", 400}};
    batch.forgotten_estimates = {"sim|64x64x8"};
    REQUIRE_FALSE(store->commit(batch));
    CHECK_FALSE(store->commit(journal_batch{}));
  }
  auto store = open_store(s.dir.path());
  auto& contents = store->contents();
  CHECK(contents.generation == 2);
  CHECK(contents.last_job_id == 6);
  REQUIRE(ids_of(contents.jobs) == id_range(1, 5));
  check_same(contents.jobs[0], job1);
  check_same(contents.jobs[1], job2);
  check_same(contents.jobs[2], job3);
  check_same(contents.jobs[3], job4);
  check_same(contents.jobs[4], job5);
  CHECK(runtime::is(contents.jobs[1].result.error, errc::out_of_memory));
  CHECK(runtime::detail_of(contents.jobs[1].result.error)
        == "cuda:1 needed 7 GiB, had 6 GiB");
  CHECK(contents.jobs[2].result.error == caf::sec::request_timeout);
  CHECK(contents.jobs[3].result.error == caf::sec::runtime_error);
  using estimate = std::pair<std::string, uint64_t>;
  CHECK(contents.estimates
        == std::vector<estimate>{
          {"sim|512x512x16", 150}, {"toy|256x256x8", 300}, {"cpu|8x8x1", 400}});
  store.reset();
  CHECK(open_store(s.dir.path())->contents().generation == 3);
}

TEST_CASE("a job's HTTP gateway endpoint survives a close and a reopen",
          "[journal]") {
  scratch s;
  auto job = full_job(1);
  job.spec.endpoint = "text-to-video_v2";
  auto plain = full_job(2);
  plain.spec.endpoint.clear();
  {
    auto store = open_store(s.dir.path());
    journal_batch batch;
    batch.jobs = {job, plain};
    REQUIRE_FALSE(store->commit(batch));
  }
  auto store = open_store(s.dir.path());
  auto& jobs = store->contents().jobs;
  REQUIRE(jobs.size() == 2);
  CHECK(jobs[0].spec.endpoint == "text-to-video_v2");
  CHECK(jobs[1].spec.endpoint.empty());
  check_same(jobs[0], job);
  check_same(jobs[1], plain);
}

TEST_CASE("a job_spec record of an older version decodes with the fields it "
          "lacks at their defaults",
          "[journal]") {
  scratch s;
  // The spec's model is found by its bytes (its size, then the name) in
  // the record: its class version is the 4 bytes before it. The spec's
  // last fields, ranks (4 bytes) and endpoint's size (8 bytes, empty), come
  // before the 16 bytes of charged_failures, lease and device_index.
  const std::string model = "sim-old-record";
  auto job = full_job(1);
  job.spec.model = model;
  job.spec.endpoint.clear();
  job.spec.ranks = 1;
  {
    auto store = open_store(s.dir.path());
    journal_batch batch;
    batch.jobs = {job};
    REQUIRE_FALSE(store->commit(batch));
  }
  // (A concatenation is text, which instr would count in characters.)
  auto at =
    "instr(record, CAST(X'0E00000000000000' || '" + model + "' AS BLOB))";
  std::string version;
  std::string kept_bytes;
  SECTION("version 2: no endpoint") {
    version = "X'02000000'";
    kept_bytes = "length(record) - 23 - " + at;
  }
  SECTION("version 1: neither ranks nor endpoint") {
    version = "X'01000000'";
    kept_bytes = "length(record) - 27 - " + at;
  }
  run_sql(s.db, "UPDATE jobs SET record = CAST(substr(record, 1, " + at
                  + " - 5) || " + version + " || substr(record, " + at + ", "
                  + kept_bytes
                  + ") || substr(record, length(record) - 15) AS BLOB) "
                    "WHERE id = 1;");
  auto store = open_store(s.dir.path());
  auto& jobs = store->contents().jobs;
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].spec.endpoint.empty());
  CHECK(jobs[0].spec.ranks == 1);
  check_same(jobs[0], job);
}

TEST_CASE("each opening records its lease grace for the next, which reads "
          "the previous one",
          "[journal]") {
  scratch s;
  CHECK(journal_store::open(s.dir.path(), journal_sync::full, 30s)
          .value()
          ->contents()
          .previous_lease_grace
        == 0s);
  CHECK(journal_store::open(s.dir.path(), journal_sync::full, 2s)
          .value()
          ->contents()
          .previous_lease_grace
        == 30s);
  CHECK(open_store(s.dir.path())->contents().previous_lease_grace == 2s);
}

TEST_CASE("a write torn in the middle of the last commit loses that commit "
          "and nothing before it",
          "[journal]") {
  scratch s;
  scratch copy;
  auto store = open_store(s.dir.path());
  for (uint64_t first = 1; first <= 31; first += 10)
    REQUIRE_FALSE(store->commit(jobs_batch(first, first + 9)));
  // The store is open, so the WAL holds every commit since it was created:
  // in exclusive locking mode SQLite keeps the WAL index in memory (there
  // is no -shm file) and checkpoints at 1000 pages or at close.
  CHECK_FALSE(fs::exists(s.db.string() + "-shm"));
  auto before = size_or_zero(s.wal);
  REQUIRE(before > 0);
  // The last commit spans many pages: long prompts.
  REQUIRE_FALSE(store->commit(jobs_batch(41, 80, std::string(2000, 'p'))));
  auto after = size_or_zero(s.wal);
  REQUIRE(after > before + 10 * 4096);
  fs::copy_file(s.db, copy.db);
  fs::copy_file(s.wal, copy.wal);
  fs::resize_file(copy.wal, before + (after - before) / 2);
  auto torn = open_store(copy.dir.path());
  CHECK(ids_of(torn->contents().jobs) == id_range(1, 40));
  CHECK(torn->contents().last_job_id == 40);
  CHECK(torn->contents().generation == 2);
  check_same(torn->contents().jobs.back(), full_job(40));
}

TEST_CASE("a write-ahead log whose database is missing or empty is refused "
          "and kept, not replaced by an empty journal",
          "[journal]") {
  for (bool emptied : {false, true}) {
    scratch s;
    scratch copy;
    auto store = open_store(s.dir.path());
    REQUIRE_FALSE(store->commit(jobs_batch(1, 10)));
    REQUIRE(size_or_zero(s.wal) > 0);
    fs::copy_file(s.wal, copy.wal);
    if (emptied)
      test::write_file(copy.db, "");
    auto wal = test::read_file(copy.wal);
    auto err = open_error(copy.dir.path());
    INFO(runtime::detail_of(err));
    CHECK(runtime::is(err, errc::journal_unavailable));
    CHECK_THAT(runtime::detail_of(err), Catch::Contains("write-ahead log"));
    CHECK(test::read_file(copy.wal) == wal);
  }
}

TEST_CASE("a file that is not a SQLite database is refused and left as it "
          "was",
          "[journal]") {
  scratch s;
  auto garbage = random_bytes(8192);
  test::write_file(s.db, garbage);
  auto err = open_error(s.dir.path());
  CHECK(runtime::is(err, errc::journal_unavailable));
  CHECK_THAT(runtime::detail_of(err), Catch::StartsWith(s.db.string() + ": "));
  CHECK_THAT(runtime::detail_of(err), Catch::Contains("not a SQLite database"));
  CHECK(test::read_file(s.db) == garbage);
  CHECK_FALSE(fs::exists(s.wal));
  // A second try finds the same file, not a new journal.
  CHECK(runtime::is(open_error(s.dir.path()), errc::journal_unavailable));
  CHECK(test::read_file(s.db) == garbage);
}

TEST_CASE("a state directory that cannot be made is refused, naming it",
          "[journal]") {
  scratch s;
  auto file = fs::path{s.dir.path()} / "file";
  test::write_file(file, "not a directory");
  auto dir = (file / "state").string();
  auto err = open_error(dir);
  CHECK(runtime::is(err, errc::journal_unavailable));
  CHECK_THAT(runtime::detail_of(err),
             Catch::StartsWith(dir + ": cannot create the directory: "));
}

TEST_CASE("a SQLite database of another program is refused and left as it "
          "was",
          "[journal]") {
  scratch s;
  SECTION("one without a meta table") {
    run_sql(s.db, "CREATE TABLE users(name TEXT);"
                  "INSERT INTO users VALUES('ada');");
  }
  SECTION("one with a meta table without vidnode's marker") {
    run_sql(s.db, "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
                  "INSERT INTO meta VALUES('format_version', 1);");
  }
  auto content = test::read_file(s.db);
  auto err = open_error(s.dir.path());
  CHECK(runtime::is(err, errc::journal_unavailable));
  CHECK_THAT(runtime::detail_of(err), Catch::StartsWith(s.db.string() + ": "));
  CHECK_THAT(runtime::detail_of(err), Catch::Contains("not a vidnode journal"));
  CHECK(test::read_file(s.db) == content);
}

TEST_CASE("a journal of another format version is refused, never converted",
          "[journal]") {
  scratch s;
  {
    auto store = open_store(s.dir.path());
    REQUIRE_FALSE(store->commit(jobs_batch(1, 3)));
  }
  run_sql(s.db, "UPDATE meta SET value = 2 WHERE key = 'format_version';");
  auto content = test::read_file(s.db);
  auto err = open_error(s.dir.path());
  CHECK(runtime::is(err, errc::journal_unavailable));
  CHECK_THAT(runtime::detail_of(err), Catch::StartsWith(s.db.string() + ": "));
  CHECK_THAT(runtime::detail_of(err),
             Catch::Contains("format version 2")
               && Catch::Contains("reads format version 1"));
  CHECK(test::read_file(s.db) == content);
}

TEST_CASE("a record that does not decode is refused as corrupt, naming its "
          "job",
          "[journal]") {
  scratch s;
  {
    auto store = open_store(s.dir.path());
    REQUIRE_FALSE(store->commit(jobs_batch(1, 3)));
  }
  SECTION("a record cut short") {
    run_sql(s.db, "UPDATE jobs SET record = substr(record, 1, "
                  "length(record) - 5) WHERE id = 2;");
  }
  SECTION("a record of a newer version") {
    run_sql(s.db, "UPDATE jobs SET record = X'FFFFFFFF' || substr(record, 5) "
                  "WHERE id = 2;");
  }
  SECTION("a string size of 8 GiB") {
    // The error detail's size: after the versions (2 x 4 bytes), the id (8),
    // the state (1), the category (8) and the code (1). It is refused
    // before anything of that size is allocated.
    run_sql(s.db, "UPDATE jobs SET record = substr(record, 1, 26) || "
                  "X'0000000002000000' || substr(record, 35) WHERE id = 2;");
  }
  SECTION("another job's record") {
    run_sql(s.db, "UPDATE jobs SET record = (SELECT record FROM jobs WHERE "
                  "id = 3) WHERE id = 2;");
  }
  auto err = open_error(s.dir.path());
  CHECK(runtime::is(err, errc::journal_unavailable));
  CHECK_THAT(runtime::detail_of(err),
             Catch::StartsWith(s.db.string()
                               + ": corrupt: the record of job "
                                 "2 does not decode"));
}

TEST_CASE("a journal in use is refused to a second opener until the first "
          "closes",
          "[journal]") {
  scratch s;
  auto first = open_store(s.dir.path());
  REQUIRE_FALSE(first->commit(jobs_batch(1, 1)));
  auto err = open_error(s.dir.path());
  CHECK(runtime::is(err, errc::journal_unavailable));
  CHECK_THAT(runtime::detail_of(err),
             Catch::StartsWith(s.db.string() + ": in use by another process")
               && Catch::Contains("(pid " + std::to_string(::getpid()) + ")"));
  // SQLite's own lock keeps other programs out too.
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(s.db.c_str(), &raw) == SQLITE_OK);
  auto rc =
    sqlite3_exec(raw, "SELECT count(*) FROM jobs", nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  CHECK(rc == SQLITE_BUSY);
  first.reset();
  auto second = open_store(s.dir.path());
  CHECK(ids_of(second->contents().jobs) == id_range(1, 1));
  CHECK(second->contents().generation == 2);
}

TEST_CASE("a full disk refuses a commit and keeps nothing of it, and a later "
          "commit succeeds once there is room",
          "[journal]") {
  scratch s;
  {
    auto store = open_store(s.dir.path());
    REQUIRE_FALSE(store->commit(jobs_batch(1, 5)));
    // SQLite never caps a database below its current size: this is it.
    store->limit_pages(1);
    auto err = store->commit(jobs_batch(6, 205, std::string(2000, 'x')));
    CHECK(runtime::is(err, errc::journal_unavailable));
    CHECK(runtime::detail_of(err)
          == s.db.string() + ": cannot write: the disk is full");
    // Still full: the next one fails the same way.
    CHECK(runtime::is(store->commit(jobs_batch(6, 205)),
                      errc::journal_unavailable));
    store->limit_pages(1'000'000);
    REQUIRE_FALSE(store->commit(jobs_batch(6, 10, "after the disk was full")));
  }
  auto store = open_store(s.dir.path());
  auto& contents = store->contents();
  REQUIRE(ids_of(contents.jobs) == id_range(1, 10));
  check_same(contents.jobs[0], full_job(1));
  CHECK(contents.jobs[5].spec.prompt == "after the disk was full");
  CHECK(contents.last_job_id == 10);
}

TEST_CASE("the file does not grow over cycles of many jobs accepted and "
          "forgotten",
          "[journal]") {
  scratch s;
  constexpr uint64_t jobs_per_cycle = 2000;
  uint64_t next_id = 1;
  auto cycle = [&](journal_store& store) {
    auto first = next_id;
    for (; next_id < first + jobs_per_cycle; next_id += 100)
      REQUIRE_FALSE(store.commit(jobs_batch(next_id, next_id + 99)));
    journal_batch forget;
    for (auto id = first; id < next_id; ++id)
      forget.forgotten.push_back(runtime::job_id{id});
    REQUIRE_FALSE(store.commit(forget));
  };
  {
    auto store = open_store(s.dir.path(), journal_sync::normal);
    // 20 cycles write about 24 MB of pages. One cycle's 2,000 jobs take
    // about 1.2 MB; the WAL is checkpointed at 1,000 pages of 4 KiB and
    // then written again from its start.
    for (int i = 1; i <= 20; ++i) {
      cycle(*store);
      INFO("cycle " << i);
      CHECK(size_or_zero(s.db) <= 2'000'000);
      CHECK(size_or_zero(s.wal) <= 5'000'000);
    }
  }
  // Closing checkpoints the WAL into the file; the pages of the forgotten
  // jobs were given back, not kept as free pages.
  CHECK(size_or_zero(s.db) <= 64 * 1024);
  CHECK_FALSE(fs::exists(s.wal));
  auto store = open_store(s.dir.path());
  CHECK(store->contents().jobs.empty());
  CHECK(store->contents().last_job_id == next_id - 1);
}
