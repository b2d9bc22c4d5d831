/// @file
/// A device worker's inputs copied from the head, and its reports to
/// admission (device_worker_state.hpp).

#include <filesystem>

#include "vidnode/actors/file_chunks.hpp"

#include "device_worker_state.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::make_error;

std::string reported(const char* what) {
  std::string text{what};
  if (text.size() > max_reported_text) {
    auto cut = text.size() - max_reported_text;
    text.resize(max_reported_text);
    text += "... (" + std::to_string(cut) + " more bytes)";
  }
  return text;
}

device_worker_state::~device_worker_state() {
  // Linked lanes end with a worker that failed; these also end with one
  // that quit normally. A lane in a call ends after it.
  for (auto& x : lanes)
    caf::anon_send_exit(x.thread, caf::exit_reason::user_shutdown);
  for (auto& [lease, path] : copied_inputs) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
}

void device_worker_state::copy_input(job_ticket ticket) {
  auto lease = ticket.lease;
  auto path = (std::filesystem::path{output_dir} / "copies"
               / ("job-" + std::to_string(ticket.id.value) + "-audio-"
                  + std::to_string(lease)))
                .string();
  chunk_source source{
    caf::actor_cast<caf::actor>(admission),
    caf::make_message(read_input_atom::value, ticket.id, lease), "the head"};
  copy_options options;
  options.chunk_bytes = input_chunk_bytes;
  auto copier = spawn_chunked_copy(
    self->system(), std::move(source), std::move(path), lease,
    caf::actor_cast<caf::actor>(self), std::move(options));
  copying.push_back({lease, std::move(ticket), std::move(copier)});
}

void device_worker_state::input_copied(uint64_t lease, std::string path,
                                       caf::error err) {
  auto i = std::find_if(copying.begin(), copying.end(),
                        [&](const auto& x) { return x.lease == lease; });
  if (i == copying.end()) {
    std::error_code ec;
    if (!path.empty())
      std::filesystem::remove(path, ec);
    return;
  }
  auto ticket = std::move(i->ticket);
  copying.erase(i);
  if (err) {
    report_failed(ticket.id, lease,
                  make_error(errc::transfer_failed,
                             "audio_url: copying the fetched audio from the "
                             "head to "
                               + where()
                               + " failed: " + runtime::describe(err)));
    return;
  }
  copied_inputs.emplace_back(lease, path);
  ticket.audio_path = std::move(path);
  start(std::move(ticket));
}

void device_worker_state::forget_input(uint64_t lease) {
  for (auto i = copied_inputs.begin(); i != copied_inputs.end(); ++i)
    if (i->first == lease) {
      std::error_code ec;
      std::filesystem::remove(i->second, ec);
      copied_inputs.erase(i);
      return;
    }
}

void device_worker_state::report_done(runtime::job_id id, uint64_t lease,
                                      finished_job result) {
  log_attempt(
    runtime::log_level::info,
    fmt::format("{}: job {} succeeded (lease {})", where(), id.value, lease),
    id, device.name(), lease);
  book->ended({id, lease, true, result, caf::error{}});
  self->send(admission, done_atom::value, id, lease, std::move(result));
}

void device_worker_state::report_failed(runtime::job_id id, uint64_t lease,
                                        caf::error reason) {
  log_attempt(runtime::log_level::info,
              fmt::format("{}: job {} failed (lease {}): {}", where(), id.value,
                          lease, runtime::describe(reason)),
              id, device.name(), lease);
  book->ended({id, lease, false, finished_job{}, reason});
  self->send(admission, failed_atom::value, id, lease, std::move(reason),
             uint64_t{0});
}

void device_worker_state::resend_outcomes() {
  for (auto& x : book->outcomes()) {
    if (x.succeeded)
      self->send(admission, done_atom::value, x.id, x.lease,
                 std::move(x.result));
    else
      self->send(admission, failed_atom::value, x.id, x.lease,
                 std::move(x.error), uint64_t{0});
  }
}

void device_worker_state::crash(runtime::job_id id, uint64_t lease,
                                std::string what, bool device_failed) {
  auto reason = make_error(errc::worker_lost, std::move(what));
  self->send(admission, crashed_atom::value, id, lease, reason, device_failed);
  exit_after_lanes(std::move(reason));
}

bool device_worker_state::lapsed(runtime::job_id id, uint64_t lease) {
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
               self->clock().now().time_since_epoch())
               .count();
  if (!book->expired(now))
    return false;
  spdlog::warn("{}: job {} is stopped: the head has not been heard from "
               "for longer than its lease grace allows (lease {})",
               where(), id.value, lease);
  abort(id, lease);
  return true;
}

} // namespace vidnode::actors
