/// @file
/// Admission: video and input files read across nodes, and videos copied
/// from worker nodes to the head for their upload (see admission_state.hpp;
/// the reading and copying itself is file_chunks.hpp).

#include <algorithm>
#include <filesystem>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "admission_state.hpp"
#include "spawn_transfer.hpp"
#include "vidnode/actors/file_chunks.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using runtime::make_error;
using runtime::output_chunk;

namespace {

namespace fs = std::filesystem;

/// Where the head keeps videos of worker nodes while it uploads them.
fs::path staging_dir(const runtime::node_settings& settings) {
  return fs::path{settings.output_dir} / "staging";
}

/// Uploads the staged copy `path` of job `id`'s video to `url`, then
/// removes the copy, whatever the upload's end.
void staged_upload_task(caf::event_based_actor* self,
                        std::shared_ptr<transfers> mover,
                        admission_control_actor admission, job_id id,
                        std::string path, std::string url,
                        std::shared_ptr<abort_signal> cancel) {
  auto err = mover->upload(path, url, *cancel);
  std::error_code ec;
  fs::remove(path, ec);
  self->send(admission, uploaded_atom::value, id, std::move(err));
  self->quit();
}

/// A node's error for a read, as the reader sees it: vidnode's codes are
/// kept and their context names the node; anything else (the node did not
/// answer, CAF's errors) is output_unavailable.
caf::error read_error(const std::string& node, const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return make_error(
      errc::output_unavailable,
      "node " + node + " did not answer a read within "
        + runtime::format_duration(admission_state::read_timeout));
  if (err.category() == runtime::error_category())
    return make_error(static_cast<errc>(err.code()),
                      "node " + node + ": " + runtime::detail_of(err));
  return make_error(errc::output_unavailable,
                    "node " + node + ": " + runtime::describe(err));
}

} // namespace

caf::result<output_chunk>
admission_state::read_output(job_id id, uint64_t offset, uint32_t max_bytes) {
  auto rec = jobs->find(id);
  if (rec == nullptr)
    return make_error(errc::unknown_job,
                      "no job " + runtime::to_string(id)
                        + " (never accepted, or its result has expired)");
  auto job = "job " + runtime::to_string(id);
  const auto& r = rec->result;
  if (!rec->ended()) {
    if (rec->uploading)
      return make_error(errc::no_output,
                        job + " is running: its video is being uploaded to "
                          + rec->spec.output_url);
    return make_error(errc::no_output,
                      job + " is " + runtime::to_string(r.state)
                        + ": it has no video yet (`vidctl wait --download` "
                          "waits for it)");
  }
  if (r.output_node.empty()) {
    if (r.output.empty())
      return make_error(errc::no_output,
                        job + " " + runtime::to_string(r.state)
                          + " without a video"
                          + (r.error ? " (" + runtime::describe(r.error) + ")"
                                     : std::string{}));
    if (r.output.rfind("http://", 0) == 0 || r.output.rfind("https://", 0) == 0)
      return make_error(errc::no_output, job + " was uploaded to " + r.output
                                           + ": fetch it from there");
    return make_error(errc::no_output,
                      job + "'s output, " + r.output + ", is not a file");
  }
  auto node = nodes.find(r.output_node);
  if (node == nullptr)
    return make_error(errc::output_unavailable,
                      "node " + r.output_node + " that holds the video of "
                        + job
                        + " is no longer in the cluster (it was lost and "
                          "forgotten)");
  if (node->state == cluster_node::status::lost)
    return make_error(errc::output_unavailable,
                      "node " + node->name + " that holds the video of " + job
                        + " was lost at "
                        + runtime::format_timestamp(node->lost_wall) + ": "
                        + node->lost_reason);
  return read_on(*node, r.output, offset, max_bytes);
}

caf::result<output_chunk> admission_state::read_input(job_id id, uint64_t lease,
                                                      uint64_t offset,
                                                      uint32_t max_bytes) {
  auto job = "job " + runtime::to_string(id);
  auto rec = jobs->find(id);
  if (rec == nullptr || rec->result.state != job_state::running
      || rec->lease != lease || rec->lease == 0)
    return make_error(errc::no_output, job + ": attempt "
                                         + std::to_string(lease)
                                         + " is not running");
  auto device = devices.find(rec->device);
  auto node = device != nullptr ? nodes.find(device->node) : nullptr;
  const auto& sender = self->current_sender();
  if (node == nullptr || sender == nullptr || sender->node() != node->id)
    return make_error(errc::unauthorized,
                      "only the node that runs " + job + " reads its input");
  if (rec->audio_path.empty())
    return make_error(errc::no_output, job + " has no input to read");
  return read_on(*nodes.find(node_name), rec->audio_path, offset, max_bytes);
}

caf::result<output_chunk> admission_state::read_on(const cluster_node& node,
                                                   std::string path,
                                                   uint64_t offset,
                                                   uint32_t max_bytes) {
  if (stopped)
    return make_error(errc::shutting_down,
                      "head " + node_name + " is shutting down");
  if (max_bytes == 0)
    return make_error(errc::invalid_request, "max_bytes: must be positive");
  if (reads.size() >= max_reads_in_flight)
    return make_error(errc::queue_full,
                      std::to_string(reads.size())
                        + " reads of files are in flight; try again");
  auto promise = self->make_response_promise<output_chunk>();
  auto number = ++next_read;
  pending_read read;
  read.node = node.name;
  read.promise = promise;
  // The head's own files are read on a reader of their own; a worker
  // node's supervisor spawns one there.
  if (!node.local)
    read.reader = caf::actor_cast<file_reader_actor>(node.supervisor);
  read.path = std::move(path);
  read.offset = offset;
  read.left = std::min(max_bytes, runtime::max_chunk_bytes);
  reads.emplace(number, std::move(read));
  read_piece(number);
  return promise;
}

void admission_state::read_piece(uint64_t number) {
  auto& read = reads.at(number);
  auto target = read.reader;
  auto asked = read.left;
  if (target)
    asked = std::min(asked, part_bytes);
  else
    target = spawn_file_reader(self->system(), settings.output_dir);
  auto name = read.node;
  self
    ->request(target, read_timeout, read_file_atom::value, read.path,
              read.offset, asked)
    .then([this, number,
           asked](output_chunk& piece) { piece_read(number, asked, piece); },
          [this, number, name](caf::error& err) {
            answer_read(number, read_error(name, err));
          });
}

void admission_state::piece_read(uint64_t number, uint32_t asked,
                                 output_chunk& piece) {
  auto i = reads.find(number);
  if (i == reads.end())
    return; // Failed already: the node was lost.
  auto& read = i->second;
  auto n = piece.bytes.size();
  if (n > asked) {
    answer_read(number,
                make_error(errc::output_unavailable,
                           "node " + read.node + " sent " + std::to_string(n)
                             + " bytes of " + read.path + " for a read of "
                             + std::to_string(asked)));
    return;
  }
  if (!read.sized) {
    read.chunk.size = piece.size;
    read.sized = true;
  } else if (piece.size != read.chunk.size) {
    answer_read(number, make_error(errc::output_unavailable,
                                   read.path + " on node " + read.node
                                     + " changed size during a read ("
                                     + std::to_string(read.chunk.size) + " -> "
                                     + std::to_string(piece.size) + " bytes)"));
    return;
  }
  auto& bytes = read.chunk.bytes;
  if (bytes.empty())
    bytes = std::move(piece.bytes);
  else
    bytes.insert(bytes.end(), piece.bytes.begin(), piece.bytes.end());
  read.offset += n;
  read.left -= static_cast<uint32_t>(n);
  // A piece shorter than asked ends at the end of the file.
  if (read.left == 0 || n < asked) {
    answer_read(number, std::move(read.chunk));
    return;
  }
  read_piece(number);
}

void admission_state::answer_read(uint64_t number,
                                  caf::expected<output_chunk> x) {
  auto i = reads.find(number);
  if (i == reads.end())
    return; // Failed already: the node was lost.
  auto waiting = std::move(i->second.promise);
  reads.erase(i);
  if (x)
    waiting.deliver(std::move(*x));
  else
    waiting.deliver(std::move(x.error()));
}

void admission_state::fail_reads(const cluster_node& node,
                                 const std::string& why) {
  for (auto i = reads.begin(); i != reads.end();) {
    if (i->second.node != node.name) {
      ++i;
      continue;
    }
    i->second.promise.deliver(
      make_error(errc::output_unavailable,
                 "node " + node.name + " that holds the video was lost at "
                   + runtime::format_timestamp(node.lost_wall) + ": " + why));
    i = reads.erase(i);
  }
}

void admission_state::fail_all_reads() {
  for (auto& [number, read] : reads)
    read.promise.deliver(make_error(errc::shutting_down,
                                    "head " + node_name + " is shutting down"));
  reads.clear();
}

bool admission_state::output_is_remote(const job_record& rec) const {
  return !rec.result.output_node.empty() && rec.result.output_node != node_name;
}

std::string admission_state::where_kept(const job_record& rec) const {
  if (output_is_remote(rec))
    return rec.video_path + " on node " + rec.result.output_node;
  return rec.video_path;
}

void admission_state::start_staging(job_record& rec) {
  auto id = rec.result.id;
  auto node = nodes.find(rec.result.output_node);
  if (node == nullptr || node->state != cluster_node::status::up
      || !node->supervisor) {
    rec.uploading = false;
    rec.transfer = nullptr;
    rec.result.output_node.clear();
    retry_or_fail(rec,
                  make_error(errc::worker_lost,
                             "node " + rec.result.node
                               + " was lost before the video of job "
                               + runtime::to_string(id)
                               + " was copied to the head for its upload"),
                  true);
    dispatch();
    return;
  }
  auto copy = ++next_copy;
  staging_copies.emplace(copy, id);
  auto path = staging_dir(settings)
              / ("job-" + runtime::to_string(id) + "-" + std::to_string(copy)
                 + fs::path{rec.video_path}.extension().string());
  chunk_source source{caf::actor_cast<caf::actor>(node->supervisor),
                      caf::make_message(read_file_atom::value, rec.video_path),
                      "node " + node->name};
  copy_options options;
  options.chunk_bytes = copy_chunk_bytes;
  options.cancel = rec.transfer;
  spawn_chunked_copy(self->system(), std::move(source), path.string(), copy,
                     caf::actor_cast<caf::actor>(self), std::move(options));
}

void admission_state::copied(uint64_t copy, std::string path, caf::error err) {
  auto drop = [&path] {
    std::error_code ec;
    if (!path.empty())
      fs::remove(path, ec);
  };
  auto i = staging_copies.find(copy);
  if (i == staging_copies.end()) {
    drop();
    return;
  }
  auto id = i->second;
  staging_copies.erase(i);
  auto rec = jobs->find(id);
  if (rec == nullptr || !rec->uploading
      || rec->result.state != job_state::running) {
    drop();
    return;
  }
  if (!err) {
    spawn_transfer(self, *mover, staged_upload_task, mover,
                   caf::actor_cast<admission_control_actor>(self), id,
                   std::move(path), rec->spec.output_url, rec->transfer);
    return;
  }
  auto node = rec->result.output_node;
  rec->uploading = false;
  rec->transfer = nullptr;
  if (runtime::is(err, errc::node_lost)) {
    // The video went with its node: the job runs again (charged, so a job
    // that takes its node down every time does not loop forever).
    rec->result.output_node.clear();
    rec->video_path.clear();
    retry_or_fail(*rec,
                  make_error(errc::worker_lost,
                             "node " + node
                               + " was lost while the video of job "
                               + runtime::to_string(id)
                               + " was copied to the head for its upload ("
                               + runtime::detail_of(err) + ")"),
                  true);
    dispatch();
    return;
  }
  spdlog::warn("job {}: copying its video from node {} for its upload "
               "failed: {}",
               id.value, node, runtime::describe(err));
  finalize(*rec, job_state::failed,
           make_error(errc::transfer_failed,
                      "copying the video from node " + node
                        + " to the head for the upload to "
                        + rec->spec.output_url + ": " + runtime::describe(err)
                        + "; the video is kept at " + where_kept(*rec)),
           rec->video_path);
}

void admission_state::clear_staging() const {
  std::error_code ec;
  fs::remove_all(staging_dir(settings), ec);
}

} // namespace vidnode::actors
