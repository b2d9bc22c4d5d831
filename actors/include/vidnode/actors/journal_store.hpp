#pragma once

/// @file
/// The head's journal on disk: one SQLite database in WAL mode whose rows
/// are cereal records of every job the head accepted (its whole spec, its
/// current or final state, the dispatch of its running attempt) and of the
/// learned memory estimates. Crash safety, torn writes and reuse of the
/// space of deleted rows are SQLite's; versioned records are cereal's.
/// Not an actor: the journal actor (journal.hpp) owns one and calls it from
/// its own thread.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::actors {

/// How a commit reaches the disk: SQLite's `synchronous` setting in WAL
/// mode (https://www.sqlite.org/pragma.html#pragma_synchronous).
enum class journal_sync : uint8_t {
  /// Each commit is fsynced before it is acknowledged: a commit survives
  /// a power failure.
  full,
  /// Commits reach the operating system at once and the disk at the next
  /// checkpoint: they survive a crash of the process, but the latest
  /// commits may be lost on a power failure (never corrupt the journal).
  normal,
};

/// "full" or "normal".
const char* to_string(journal_sync sync) noexcept;

/// Parses "full" or "normal"; false otherwise.
bool from_string(const std::string& text, journal_sync& sync) noexcept;

/// One job as the journal holds it: enough to rebuild admission's record of
/// it after a restart.
struct journaled_job {
  /// What clients see: id, state, error, output, model, priority, device
  /// and node of the latest attempt, attempts, progress, wall-clock times.
  runtime::job_result result;
  /// The request as accepted.
  runtime::job_spec spec;
  /// Failures charged to the job so far (out of max_attempts).
  int32_t charged_failures = 0;
  /// The dispatch of the running attempt: its lease (0 when the job is not
  /// running) and the index of its device on the node `result.node`
  /// (-1 when none).
  uint64_t lease = 0;
  int32_t device_index = -1;
};

/// Everything a journal held when it was opened.
struct journal_contents {
  /// The jobs, in id order (which is acceptance order).
  std::vector<journaled_job> jobs;
  /// Learned memory estimates, (shape key, bytes), oldest learned first (a
  /// figure changed later keeps the place where its key was first learned,
  /// as in memory_estimates).
  std::vector<std::pair<std::string, uint64_t>> estimates;
  /// The highest job id ever journaled, also of jobs forgotten since: ids
  /// are never reused.
  uint64_t last_job_id = 0;
  /// How many times the journal was opened, this time included (1 for a
  /// new journal); leases made by different runs of the head differ by it.
  uint64_t generation = 0;
  /// The lease grace the previous run of the head gave its worker nodes
  /// (node_settings::lease_grace; zero if none was recorded): nodes that
  /// have not rejoined yet run their attempts on by it.
  caf::timespan previous_lease_grace{0};
};

/// The changes of one transaction. They are applied in the order of the
/// fields: a job both in `jobs` and in `forgotten` (or an estimate both in
/// `estimates` and in `forgotten_estimates`) ends forgotten, so a batch that
/// learns again a key it had forgotten must drop the key from
/// `forgotten_estimates`.
struct journal_batch {
  /// Jobs accepted or changed: each record replaces the job's previous one.
  std::vector<journaled_job> jobs;
  /// Jobs whose results expired (their records are deleted).
  std::vector<runtime::job_id> forgotten;
  /// Estimates learned or changed, (shape key, bytes), in the order learned.
  std::vector<std::pair<std::string, uint64_t>> estimates;
  /// Estimates dropped (the oldest, beyond capacity).
  std::vector<std::string> forgotten_estimates;

  /// Whether the batch changes nothing.
  bool empty() const noexcept {
    return jobs.empty() && forgotten.empty() && estimates.empty()
           && forgotten_estimates.empty();
  }

  /// Drops every change.
  void clear() noexcept;
};

/// A journal open for writing. Only one process at a time may hold one
/// directory's journal open; one thread at a time may call it.
class journal_store {
public:
  /// The version of the journal's layout (tables and record format). A
  /// journal of another version is refused, never converted silently.
  static constexpr uint32_t format_version = 1;

  /// The database's file name inside the state directory.
  static constexpr const char* file_name = "journal.db";

  /// Opens the journal in `dir` (creating `dir` and the journal if
  /// missing) and reads it whole. Errors (errc::journal_unavailable, the
  /// context names the file and the cause): the directory or file cannot
  /// be created or opened; another process holds it open; it is not a
  /// vidnode journal; it has another format version; it is corrupt (SQLite
  /// finds it malformed, or a record does not decode). Nothing is written
  /// to a file that is refused.
  ///
  /// While open, the store holds an flock on `journal.db.lock` beside the
  /// database, which holds the holder's pid for the message of a second
  /// opener, and SQLite's exclusive lock on the database itself, so that
  /// no other program writes it either. Both go when the store is
  /// destroyed or the process ends.
  ///
  /// `lease_grace` is the grace this run of the head gives its worker
  /// nodes: recorded for the next run (journal_contents::
  /// previous_lease_grace).
  static caf::expected<std::unique_ptr<journal_store>>
  open(const std::string& dir, journal_sync sync,
       caf::timespan lease_grace = caf::timespan{0});

  ~journal_store();

  journal_store(const journal_store&) = delete;
  journal_store& operator=(const journal_store&) = delete;

  /// What the journal held when it was opened (moved out by the caller).
  journal_contents& contents() noexcept;

  /// Writes `batch` in one transaction, all of it or (on error) none of it;
  /// with journal_sync::full it is on the disk when this returns. Errors
  /// (errc::journal_unavailable, the context says why): the disk or file is
  /// full; any other failure to write. The store stays usable after an
  /// error: a later commit succeeds once the cause is gone.
  caf::error commit(const journal_batch& batch);

  /// The database file's path.
  const std::string& path() const noexcept;

  /// Test hook: caps the database at `pages` pages of its page size, so
  /// that commits that would grow it past fail as on a full disk (SQLite's
  /// max_page_count, which is never set below the current size: 1 caps the
  /// database at its size now).
  void limit_pages(uint64_t pages);

private:
  struct impl;
  explicit journal_store(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace vidnode::actors
