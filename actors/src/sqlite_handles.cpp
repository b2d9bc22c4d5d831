#include "sqlite_handles.hpp"

#include <cstring>

namespace vidnode::actors::sqlite {

int run(sqlite3_stmt* stmt) {
  statement_reset reset{stmt};
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    // Rows of a statement run for its effect (incremental_vacuum) are
    // ignored.
  }
  return rc;
}

std::string cause_of(sqlite3* db, int rc) {
  std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  auto system_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
  auto with_errno = [&](std::string text) {
    if (system_errno != 0)
      text += std::string{" ("} + std::strerror(system_errno) + ")";
    return text;
  };
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return "the disk is full";
    case SQLITE_NOTADB:
      return "not a SQLite database (another program's file, or damaged); "
             "it was left as it is";
    case SQLITE_CORRUPT:
      return "corrupt: SQLite says: " + message;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "locked by another process";
    case SQLITE_IOERR:
      return with_errno("I/O error: " + message);
    case SQLITE_CANTOPEN:
      return with_errno("cannot open the file");
    case SQLITE_READONLY:
      return "cannot write: " + message;
    case SQLITE_PERM:
      return with_errno("permission denied");
    case SQLITE_NOMEM:
      return "out of memory";
    default:
      return message;
  }
}

} // namespace vidnode::actors::sqlite
