#pragma once

/// @file
/// The disk's one-fsync-per-job rate, measured with SQLite alone: what a
/// journal that commits every job on its own could reach at best.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>

namespace vidnode::bench {

/// A database of its own in `dir` (bare.db) into which `commit` inserts one
/// ~500-byte row per transaction, with journal_mode=WAL and
/// synchronous=FULL: one fsync per row. Throws std::runtime_error naming
/// the step that failed.
class bare_sqlite {
public:
  explicit bare_sqlite(const std::string& dir) : blob_(500, '\0') {
    std::filesystem::create_directories(dir);
    auto path = (std::filesystem::path{dir} / "bare.db").string();
    check(sqlite3_open(path.c_str(), &db_), "sqlite3_open");
    check(sqlite3_exec(db_,
                       "PRAGMA locking_mode=EXCLUSIVE;"
                       "PRAGMA journal_mode=WAL;"
                       "PRAGMA synchronous=FULL;"
                       "CREATE TABLE jobs(id INTEGER PRIMARY KEY, record BLOB "
                       "NOT NULL);",
                       nullptr, nullptr, nullptr),
          "setting up the bare database");
    check(sqlite3_prepare_v2(db_, "INSERT INTO jobs(id, record) VALUES(?1, ?2)",
                             -1, &insert_, nullptr),
          "preparing the insert");
    std::mt19937 gen{1};
    for (auto& c : blob_)
      c = static_cast<char>(gen() & 0xff);
  }

  ~bare_sqlite() {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }

  bare_sqlite(const bare_sqlite&) = delete;
  bare_sqlite& operator=(const bare_sqlite&) = delete;

  /// Inserts one row in a transaction of its own.
  void commit() {
    sqlite3_bind_int64(insert_, 1, ++id_);
    sqlite3_bind_blob(insert_, 2, blob_.data(), static_cast<int>(blob_.size()),
                      SQLITE_STATIC);
    check(sqlite3_step(insert_), "an insert");
    sqlite3_reset(insert_);
  }

private:
  void check(int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
      throw std::runtime_error(std::string{what}
                               + " failed: " + sqlite3_errmsg(db_));
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  std::string blob_;
  int64_t id_ = 0;
};

} // namespace vidnode::bench
