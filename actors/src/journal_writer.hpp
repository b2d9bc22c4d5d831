#pragma once

/// @file
/// Commits admission's journal batches on a thread of its own, so that the
/// admission actor never waits for the disk. Admission hands it one batch at
/// a time and gathers everything that changes meanwhile into the next one:
/// that is the group commit (one fsync for every job accepted while the
/// previous commit was in flight).

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <caf/actor_addr.hpp>
#include <caf/fwd.hpp>
#include <caf/error.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/journal_store.hpp"
#include "vidnode/actors/node_observer.hpp"

namespace vidnode::actors {

/// A thread that commits one batch at a time to `store` and tells the
/// admission actor (journaled_atom, number, error) when each commit is
/// durable or failed, from an actor of `sys` (admission takes messages of
/// its kind only from actors of its own node). Each commit's duration goes
/// to `events` (journal_committed, on the writer's thread).
class journal_writer {
public:
  journal_writer(std::shared_ptr<journal_store> store,
                 admission_control_actor admission, caf::actor_system& sys,
                 std::shared_ptr<node_observer> events);

  /// Waits for the batch in flight, if any, then ends the thread.
  ~journal_writer();

  journal_writer(const journal_writer&) = delete;
  journal_writer& operator=(const journal_writer&) = delete;

  /// Commits `batch` as commit `number`. At most one batch is in flight:
  /// the caller waits for the previous one's journaled_atom first.
  void commit(journal_batch batch, uint64_t number);

  /// The database file's path.
  const std::string& path() const noexcept {
    return path_;
  }

private:
  void run();

  std::shared_ptr<journal_store> store_;
  std::string path_;
  /// Admission's address: the writer must not keep it alive.
  caf::actor_addr admission_;
  caf::actor_system& sys_;
  std::shared_ptr<node_observer> events_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<std::pair<journal_batch, uint64_t>> next_;
  bool stopping_ = false;
  std::thread thread_;
};

} // namespace vidnode::actors
