#pragma once

/// @file
/// Owning handles for SQLite's C API and a file descriptor, and SQLite's
/// result codes in words, for the journal store.

#include <memory>
#include <string>

#include <unistd.h>

#include <sqlite3.h>

namespace vidnode::actors::sqlite {

/// Closes a database.
struct database_closer {
  void operator()(sqlite3* db) const noexcept {
    sqlite3_close(db);
  }
};

/// An open database.
using database = std::unique_ptr<sqlite3, database_closer>;

/// Finalizes a statement.
struct statement_finalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept {
    sqlite3_finalize(stmt);
  }
};

/// A prepared statement.
using statement = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

/// A file descriptor, closed (and with it any flock on it) when the object
/// goes.
class file_descriptor {
public:
  file_descriptor() = default;
  ~file_descriptor() {
    reset();
  }
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;

  int get() const noexcept {
    return fd_;
  }

  void reset(int fd = -1) noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

/// Resets a statement (and clears its bindings) when the scope ends, so
/// that a reused statement never holds a read or write open.
class statement_reset {
public:
  explicit statement_reset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~statement_reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  statement_reset(const statement_reset&) = delete;
  statement_reset& operator=(const statement_reset&) = delete;

private:
  sqlite3_stmt* stmt_;
};

/// Steps `stmt` until it is done (rows are ignored), then resets it;
/// returns SQLITE_DONE or the error.
int run(sqlite3_stmt* stmt);

/// What went wrong, in words a user understands, for result code `rc` of
/// SQLite on `db` (null: `rc` alone).
std::string cause_of(sqlite3* db, int rc);

} // namespace vidnode::actors::sqlite
