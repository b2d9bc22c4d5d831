#include "vidnode/actors/journal_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <sqlite3.h>

#include "vidnode/runtime/errc.hpp"

#include "journal_records.hpp"
#include "sqlite_handles.hpp"

namespace vidnode::actors {

using sqlite::cause_of;
using sqlite::database;
using sqlite::file_descriptor;
using sqlite::run;
using sqlite::statement;
using sqlite::statement_reset;

namespace {

/// The result of a journal that cannot be used.
caf::error unavailable(const std::string& path, const std::string& cause) {
  return runtime::make_error(runtime::errc::journal_unavailable,
                             path + ": " + cause);
}

/// The name of the file beside the database that holds the lock and the
/// id of the process holding it.
constexpr const char* lock_file_suffix = ".lock";

/// Freed pages are given back to the file system (incremental vacuum, in
/// the transaction that freed them) once at least this many are free and
/// they are at least a quarter of the file: otherwise SQLite reuses them.
constexpr int64_t vacuum_min_free_pages = 256;

/// A WAL file larger than this is truncated to it after a checkpoint (one
/// very large transaction leaves no file of its size behind).
constexpr int64_t wal_size_limit = 16 * 1024 * 1024;

/// The marker row of `meta`.
constexpr const char* marker_key = "application";
constexpr const char* marker_value = "vidnode journal";

} // namespace

// -- journal_sync and journal_batch ------------------------------------------

const char* to_string(journal_sync sync) noexcept {
  return sync == journal_sync::full ? "full" : "normal";
}

bool from_string(const std::string& text, journal_sync& sync) noexcept {
  if (text == "full")
    sync = journal_sync::full;
  else if (text == "normal")
    sync = journal_sync::normal;
  else
    return false;
  return true;
}

void journal_batch::clear() noexcept {
  jobs.clear();
  forgotten.clear();
  estimates.clear();
  forgotten_estimates.clear();
}

// -- journal_store -----------------------------------------------------------

struct journal_store::impl {
  // Destroyed in reverse order: the statements, then the database (which
  // checkpoints the WAL into the file), then the lock.

  /// The database file.
  std::string path;
  /// The lock file beside it, held (flock) while open.
  file_descriptor lock_file;
  database db;
  journal_contents contents;

  statement begin;
  statement commit;
  statement rollback;
  statement put_job;
  statement drop_job;
  statement put_estimate;
  statement drop_estimate;
  statement raise_last_job_id;
  statement free_pages;
  statement pages;
  statement vacuum;

  /// The `learned` value of the next estimate written.
  int64_t next_learned = 1;
  /// The record being written (reused).
  std::string record;

  caf::error fail(int rc) const {
    return unavailable(path, cause_of(db.get(), rc));
  }

  caf::error fail(const std::string& cause) const {
    return unavailable(path, cause);
  }

  /// Runs `sql` (no rows expected) or returns why not.
  caf::error exec(const char* sql) {
    auto rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? caf::error{} : fail(rc);
  }

  /// Prepares a statement that is kept for reuse.
  caf::error prepare(const char* sql, statement& out) {
    sqlite3_stmt* stmt = nullptr;
    auto rc = sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT,
                                 &stmt, nullptr);
    out.reset(stmt);
    return rc == SQLITE_OK ? caf::error{} : fail(rc);
  }

  /// Runs a query, calling `row` with the statement at each of its rows;
  /// stops at the first error, of SQLite or of `row`.
  template <class F>
  caf::error query(const char* sql, F row) {
    statement stmt;
    if (auto err = prepare(sql, stmt))
      return err;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW)
      if (auto err = row(stmt.get()))
        return err;
    return rc == SQLITE_DONE ? caf::error{} : fail(rc);
  }

  /// One integer from a query of one row and column.
  caf::error query_integer(const char* sql, int64_t& out) {
    return query(sql, [&](sqlite3_stmt* stmt) {
      out = sqlite3_column_int64(stmt, 0);
      return caf::error{};
    });
  }

  /// Takes the lock file beside the database, or says which process has it.
  caf::error lock() {
    auto lock_path = path + lock_file_suffix;
    lock_file.reset(
      ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    auto fd = lock_file.get();
    if (fd < 0)
      return fail("cannot create the lock file " + lock_path + ": "
                  + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      auto error = errno;
      std::string holder;
      char text[32] = {};
      auto n = ::pread(fd, text, sizeof(text) - 1, 0);
      for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; ++i)
        holder += text[i];
      lock_file.reset();
      if (error != EWOULDBLOCK)
        return fail("cannot lock " + lock_path + ": " + std::strerror(error));
      return fail("in use by another process"
                  + (holder.empty() ? std::string{} : " (pid " + holder + ")")
                  + ", which holds " + lock_path
                  + "; only one vidnode head may use a state directory");
    }
    // Only the pid in a second opener's message depends on this write.
    auto pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0)
      (void)!::pwrite(fd, pid.data(), pid.size(), 0);
    return {};
  }

  /// Opens the database without writing to it and tells whether it has no
  /// tables yet (a new journal) or is a vidnode journal.
  caf::error open_database(bool& is_new) {
    sqlite3* raw = nullptr;
    auto rc = sqlite3_open_v2(path.c_str(), &raw,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                | SQLITE_OPEN_NOMUTEX,
                              nullptr);
    db.reset(raw);
    if (rc != SQLITE_OK)
      return fail(rc);
    sqlite3_extended_result_codes(db.get(), 1);
    // Until the journal is accepted, closing leaves a WAL of a crashed run
    // where it is rather than writing it into a file that is refused.
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    // Before the first access: SQLite then holds the database's lock from
    // the first read (shared) and first write (exclusive) until it closes,
    // so that no other program writes it under us, and keeps the WAL
    // index in memory (no -shm file).
    if (auto err = exec("PRAGMA locking_mode=EXCLUSIVE"))
      return err;
    bool has_meta = false;
    int64_t entries = 0;
    auto err =
      query("SELECT type, name FROM sqlite_master", [&](sqlite3_stmt* stmt) {
        ++entries;
        auto type = sqlite3_column_text(stmt, 0);
        auto name = sqlite3_column_text(stmt, 1);
        if (type != nullptr && name != nullptr
            && std::strcmp(reinterpret_cast<const char*>(type), "table") == 0
            && std::strcmp(reinterpret_cast<const char*>(name), "meta") == 0)
          has_meta = true;
        return caf::error{};
      });
    if (err)
      return err;
    is_new = entries == 0;
    if (!is_new && !has_meta)
      return fail("not a vidnode journal (a SQLite database of another "
                  "program); it was left as it is");
    return {};
  }

  /// Creates the tables of a new journal.
  caf::error create() {
    // Only possible before the first table exists.
    if (auto err = exec("PRAGMA auto_vacuum=INCREMENTAL"))
      return err;
    if (auto err = use_wal())
      return err;
    auto sql = std::string{"BEGIN IMMEDIATE;"
                           "CREATE TABLE meta(key TEXT PRIMARY KEY, value "
                           "NOT NULL);"
                           "INSERT INTO meta VALUES('"}
               + marker_key + "', '" + marker_value + "');"
               + "INSERT INTO meta VALUES('format_version', "
               + std::to_string(format_version)
               + ");"
                 "INSERT INTO meta VALUES('generation', 0);"
                 "INSERT INTO meta VALUES('last_job_id', 0);"
                 "CREATE TABLE jobs(id INTEGER PRIMARY KEY, record BLOB NOT "
                 "NULL);"
                 "CREATE TABLE estimates(key TEXT PRIMARY KEY, bytes INTEGER "
                 "NOT NULL, learned INTEGER NOT NULL);"
                 "COMMIT;";
    if (auto err = exec(sql.c_str())) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      return err;
    }
    return {};
  }

  caf::error use_wal() {
    std::string mode;
    auto err = query("PRAGMA journal_mode=WAL", [&](sqlite3_stmt* stmt) {
      if (auto text = sqlite3_column_text(stmt, 0))
        mode = reinterpret_cast<const char*>(text);
      return caf::error{};
    });
    if (err)
      return err;
    if (mode != "wal")
      return fail("cannot use a write-ahead log (journal mode " + mode + ")");
    return {};
  }

  /// Checks the marker and the format version of an existing journal.
  caf::error check_meta() {
    std::string marker;
    int64_t version = -1;
    auto err = query("SELECT key, value FROM meta", [&](sqlite3_stmt* stmt) {
      auto key = sqlite3_column_text(stmt, 0);
      if (key == nullptr)
        return caf::error{};
      auto name = std::string{reinterpret_cast<const char*>(key)};
      if (name == marker_key) {
        if (auto text = sqlite3_column_text(stmt, 1))
          marker = reinterpret_cast<const char*>(text);
      } else if (name == "format_version"
                 && sqlite3_column_type(stmt, 1) == SQLITE_INTEGER) {
        version = sqlite3_column_int64(stmt, 1);
      }
      return caf::error{};
    });
    if (err)
      return err;
    if (marker != marker_value)
      return fail("not a vidnode journal (its meta table has no vidnode "
                  "marker); it was left as it is");
    if (version != format_version)
      return fail(
        "the journal has format version "
        + (version < 0 ? std::string{"unknown"} : std::to_string(version))
        + "; this vidnode reads format version "
        + std::to_string(format_version)
        + " (journals are never converted silently); it was left "
          "as it is");
    return {};
  }

  /// SQLite's quick check of the whole file (its structure, not the
  /// records' content).
  caf::error check_integrity() {
    std::string verdict;
    auto err = query("PRAGMA quick_check(1)", [&](sqlite3_stmt* stmt) {
      if (auto text = sqlite3_column_text(stmt, 0))
        verdict = reinterpret_cast<const char*>(text);
      return caf::error{};
    });
    if (err)
      return err;
    if (verdict != "ok")
      return fail("corrupt: SQLite's check says: " + verdict);
    return {};
  }

  caf::error configure(journal_sync sync) {
    if (auto err = use_wal())
      return err;
    if (auto err =
          exec(sync == journal_sync::full ? "PRAGMA synchronous=FULL"
                                          : "PRAGMA synchronous=NORMAL"))
      return err;
    auto limit = "PRAGMA journal_size_limit=" + std::to_string(wal_size_limit);
    return exec(limit.c_str());
  }

  /// Reads the jobs and estimates into `contents`.
  caf::error read() {
    // Growing the vector as records come would move every job about twice.
    int64_t count = 0;
    if (auto err = query_integer("SELECT count(*) FROM jobs", count))
      return err;
    contents.jobs.reserve(static_cast<size_t>(count));
    auto err =
      query("SELECT id, record FROM jobs ORDER BY id", [&](sqlite3_stmt* stmt) {
        auto id = sqlite3_column_int64(stmt, 0);
        auto data = sqlite3_column_blob(stmt, 1);
        auto size = static_cast<size_t>(sqlite3_column_bytes(stmt, 1));
        auto corrupt = [&](const std::string& why) {
          return fail("corrupt: the record of job " + std::to_string(id)
                      + " does not decode (" + why + ")");
        };
        try {
          auto job = decode_record(data, size);
          if (job.result.id.value != static_cast<uint64_t>(id))
            return corrupt("it is the record of job "
                           + std::to_string(job.result.id.value));
          contents.jobs.push_back(std::move(job));
        } catch (const std::exception& ex) {
          return corrupt(ex.what());
        }
        return caf::error{};
      });
    if (err)
      return err;
    err = query("SELECT key, bytes, learned FROM estimates ORDER BY learned",
                [&](sqlite3_stmt* stmt) {
                  auto key = sqlite3_column_text(stmt, 0);
                  auto size = sqlite3_column_bytes(stmt, 0);
                  contents.estimates.emplace_back(
                    std::string{reinterpret_cast<const char*>(key),
                                static_cast<size_t>(size)},
                    static_cast<uint64_t>(sqlite3_column_int64(stmt, 1)));
                  next_learned = std::max<int64_t>(
                    next_learned, sqlite3_column_int64(stmt, 2) + 1);
                  return caf::error{};
                });
    if (err)
      return err;
    int64_t last_job_id = 0;
    if (auto err = query_integer(
          "SELECT value FROM meta WHERE key = 'last_job_id'", last_job_id))
      return err;
    contents.last_job_id = static_cast<uint64_t>(last_job_id);
    if (!contents.jobs.empty())
      contents.last_job_id =
        std::max(contents.last_job_id, contents.jobs.back().result.id.value);
    return {};
  }

  /// Counts this opening, and records the lease grace of this run after
  /// reading the previous run's.
  caf::error next_generation(caf::timespan lease_grace) {
    int64_t previous = 0;
    if (auto err = query_integer(
          "SELECT value FROM meta WHERE key = 'lease_grace_ns'", previous))
      return err;
    contents.previous_lease_grace =
      caf::timespan{std::max(previous, int64_t{0})};
    auto sql =
      std::string{"BEGIN IMMEDIATE;"
                  "UPDATE meta SET value = value + 1 "
                  "WHERE key = 'generation';"
                  "INSERT OR REPLACE INTO meta VALUES('lease_grace_ns', "}
      + std::to_string(lease_grace.count()) + ");COMMIT;";
    if (auto err = exec(sql.c_str())) {
      sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      return err;
    }
    int64_t generation = 0;
    if (auto err = query_integer(
          "SELECT value FROM meta WHERE key = 'generation'", generation))
      return err;
    contents.generation = static_cast<uint64_t>(generation);
    return {};
  }

  caf::error prepare_statements() {
    struct {
      const char* sql;
      statement& out;
    } all[] = {
      {"BEGIN IMMEDIATE", begin},
      {"COMMIT", commit},
      {"ROLLBACK", rollback},
      {"INSERT OR REPLACE INTO jobs(id, record) VALUES(?1, ?2)", put_job},
      {"DELETE FROM jobs WHERE id = ?1", drop_job},
      // An estimate keeps the place it was first learned at when its figure
      // changes, as memory_estimates does.
      {"INSERT INTO estimates(key, bytes, learned) VALUES(?1, ?2, ?3) "
       "ON CONFLICT(key) DO UPDATE SET bytes = excluded.bytes",
       put_estimate},
      {"DELETE FROM estimates WHERE key = ?1", drop_estimate},
      {"UPDATE meta SET value = ?1 WHERE key = 'last_job_id' AND value < ?1",
       raise_last_job_id},
      {"PRAGMA freelist_count", free_pages},
      {"PRAGMA page_count", pages},
      {"PRAGMA incremental_vacuum", vacuum},
    };
    for (auto& x : all)
      if (auto err = prepare(x.sql, x.out))
        return err;
    return {};
  }

  caf::error open(const std::string& dir, journal_sync sync,
                  caf::timespan lease_grace) {
    path = (std::filesystem::path{dir} / file_name).string();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return unavailable(dir, "cannot create the directory: " + ec.message());
    if (auto err = lock())
      return err;
    // A WAL without its database (deleted, or emptied) holds commits that
    // opening would throw away: SQLite would start an empty journal and
    // delete the WAL.
    auto wal = path + "-wal";
    auto db_size = std::filesystem::file_size(path, ec);
    auto db_missing = ec ? true : db_size == 0;
    auto wal_size = std::filesystem::file_size(wal, ec);
    if (db_missing && !ec && wal_size > 0)
      return unavailable(path, "it is missing or empty but its write-ahead "
                               "log "
                                 + wal + " holds " + std::to_string(wal_size)
                                 + " bytes of commits; restore the database "
                                   "file, or move both aside to start an "
                                   "empty journal");
    bool is_new = false;
    if (auto err = open_database(is_new))
      return err;
    if (is_new) {
      if (auto err = create())
        return err;
    } else {
      if (auto err = check_meta())
        return err;
      if (auto err = check_integrity())
        return err;
    }
    if (auto err = read())
      return err;
    sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    if (auto err = configure(sync))
      return err;
    if (auto err = next_generation(lease_grace))
      return err;
    return prepare_statements();
  }

  // -- commit ----------------------------------------------------------------

  int encode(const journaled_job& job) {
    encode_record(job, record);
    return sqlite3_bind_blob(put_job.get(), 2, record.data(),
                             static_cast<int>(record.size()), SQLITE_STATIC);
  }

  /// Writes the batch inside the open transaction; SQLITE_DONE or the error.
  int write(const journal_batch& batch) {
    uint64_t max_id = 0;
    for (const auto& job : batch.jobs) {
      auto id = job.result.id.value;
      max_id = std::max(max_id, id);
      sqlite3_bind_int64(put_job.get(), 1, static_cast<int64_t>(id));
      if (auto rc = encode(job); rc != SQLITE_OK)
        return rc;
      if (auto rc = run(put_job.get()); rc != SQLITE_DONE)
        return rc;
    }
    for (auto id : batch.forgotten) {
      sqlite3_bind_int64(drop_job.get(), 1, static_cast<int64_t>(id.value));
      if (auto rc = run(drop_job.get()); rc != SQLITE_DONE)
        return rc;
    }
    for (const auto& [key, bytes] : batch.estimates) {
      auto stmt = put_estimate.get();
      sqlite3_bind_text(stmt, 1, key.data(), static_cast<int>(key.size()),
                        SQLITE_STATIC);
      sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(bytes));
      sqlite3_bind_int64(stmt, 3, next_learned++);
      if (auto rc = run(stmt); rc != SQLITE_DONE)
        return rc;
    }
    for (const auto& key : batch.forgotten_estimates) {
      sqlite3_bind_text(drop_estimate.get(), 1, key.data(),
                        static_cast<int>(key.size()), SQLITE_STATIC);
      if (auto rc = run(drop_estimate.get()); rc != SQLITE_DONE)
        return rc;
    }
    if (max_id > 0) {
      sqlite3_bind_int64(raise_last_job_id.get(), 1,
                         static_cast<int64_t>(max_id));
      if (auto rc = run(raise_last_job_id.get()); rc != SQLITE_DONE)
        return rc;
    }
    if (!batch.forgotten.empty() || !batch.forgotten_estimates.empty())
      return compact();
    return SQLITE_DONE;
  }

  /// Gives free pages back to the file system when they are many.
  int compact() {
    auto count = [](sqlite3_stmt* stmt, int64_t& out) {
      statement_reset reset{stmt};
      auto rc = sqlite3_step(stmt);
      if (rc != SQLITE_ROW)
        return rc;
      out = sqlite3_column_int64(stmt, 0);
      return SQLITE_DONE;
    };
    int64_t free = 0;
    int64_t total = 0;
    if (auto rc = count(free_pages.get(), free); rc != SQLITE_DONE)
      return rc;
    if (free < vacuum_min_free_pages)
      return SQLITE_DONE;
    if (auto rc = count(pages.get(), total); rc != SQLITE_DONE)
      return rc;
    if (free * 4 < total)
      return SQLITE_DONE;
    return run(vacuum.get());
  }

  caf::error commit_batch(const journal_batch& batch) {
    auto write_failure = [this](int rc) {
      return fail("cannot write: " + cause_of(db.get(), rc));
    };
    if (auto rc = run(begin.get()); rc != SQLITE_DONE)
      return write_failure(rc);
    auto rc = write(batch);
    if (rc == SQLITE_DONE)
      rc = run(commit.get());
    if (rc == SQLITE_DONE)
      return {};
    auto err = write_failure(rc);
    // SQLite may have rolled back already (after some I/O errors).
    if (sqlite3_get_autocommit(db.get()) == 0)
      run(rollback.get());
    return err;
  }
};

journal_store::journal_store(std::unique_ptr<impl> ptr)
  : impl_(std::move(ptr)) {}

journal_store::~journal_store() = default;

caf::expected<std::unique_ptr<journal_store>>
journal_store::open(const std::string& dir, journal_sync sync,
                    caf::timespan lease_grace) {
  auto ptr = std::make_unique<impl>();
  if (auto err = ptr->open(dir, sync, lease_grace))
    return err;
  return std::unique_ptr<journal_store>{new journal_store(std::move(ptr))};
}

journal_contents& journal_store::contents() noexcept {
  return impl_->contents;
}

caf::error journal_store::commit(const journal_batch& batch) {
  if (batch.empty())
    return {};
  return impl_->commit_batch(batch);
}

const std::string& journal_store::path() const noexcept {
  return impl_->path;
}

void journal_store::limit_pages(uint64_t pages) {
  auto sql = "PRAGMA max_page_count=" + std::to_string(pages);
  sqlite3_exec(impl_->db.get(), sql.c_str(), nullptr, nullptr, nullptr);
}

} // namespace vidnode::actors
