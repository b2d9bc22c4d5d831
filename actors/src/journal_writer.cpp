#include "journal_writer.hpp"

#include <chrono>

#include <caf/actor_cast.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

namespace vidnode::actors {

journal_writer::journal_writer(std::shared_ptr<journal_store> store,
                               admission_control_actor admission,
                               caf::actor_system& sys,
                               std::shared_ptr<node_observer> events)
  : store_(std::move(store)), path_(store_->path()),
    admission_(admission.address()), sys_(sys),
    events_(events ? std::move(events) : null_observer()),
    thread_([this] { run(); }) {}

journal_writer::~journal_writer() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void journal_writer::commit(journal_batch batch, uint64_t number) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    next_.emplace(std::move(batch), number);
  }
  cv_.notify_one();
}

void journal_writer::run() {
  // Hidden: the actor system does not wait for it when it shuts down.
  caf::scoped_actor self{sys_, true};
  for (;;) {
    std::pair<journal_batch, uint64_t> work;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      cv_.wait(guard, [this] { return stopping_ || next_.has_value(); });
      if (!next_)
        return;
      work = std::move(*next_);
      next_.reset();
    }
    auto started = std::chrono::steady_clock::now();
    auto err = store_->commit(work.first);
    events_->journal_committed(std::chrono::duration_cast<caf::timespan>(
                                 std::chrono::steady_clock::now() - started),
                               !err);
    auto admission = caf::actor_cast<admission_control_actor>(admission_);
    if (admission)
      self->send(admission, journaled_atom::value, work.second, std::move(err));
  }
}

} // namespace vidnode::actors
