#include "vidnode/actors/file_chunks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

namespace {

namespace fs = std::filesystem;

using runtime::errc;
using runtime::make_error;
using runtime::output_chunk;

/// Closes a descriptor when it goes out of scope.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Whether `path` lies strictly inside `dir` (both canonical).
bool inside(const fs::path& dir, const fs::path& path) {
  auto prefix = dir.native();
  if (prefix.empty() || prefix.back() != '/')
    prefix += '/';
  const auto& p = path.native();
  return p.size() > prefix.size() && p.compare(0, prefix.size(), prefix) == 0;
}

file_reader_actor::behavior_type file_reader(file_reader_actor::pointer self,
                                             std::string root) {
  return {
    [=](read_file_atom, const std::string& path, uint64_t offset,
        uint32_t max_bytes) -> caf::result<output_chunk> {
      // Answered before the reader quits, success or error alike.
      auto promise = self->make_response_promise<output_chunk>();
      auto chunk = read_file_chunk(root, path, offset, max_bytes);
      if (chunk)
        promise.deliver(std::move(*chunk));
      else
        promise.deliver(std::move(chunk.error()));
      self->quit();
      return promise;
    },
  };
}

/// The ticks of a copy while it awaits a chunk: has `cancel` been raised?
using check_atom = caf::atom_constant<caf::atom("check")>;

/// How often a copy looks at its abort signal while it waits.
constexpr auto cancel_poll = std::chrono::milliseconds{200};

struct copy_state {
  static inline const char* name = "vidnode.chunked_copy";

  chunk_source source;
  std::string path;
  uint64_t tag = 0;
  caf::actor notify;
  copy_options options;
  /// The file being written (null once closed).
  std::FILE* file = nullptr;
  /// The source's size of the file, once the first chunk told it.
  uint64_t size = 0;
  bool size_known = false;
  /// Offset of the next request, and of the next byte to write.
  uint64_t requested = 0;
  uint64_t written = 0;
  uint32_t in_flight = 0;
  /// Chunks that arrived ahead of the next one to write, by offset.
  std::map<uint64_t, std::vector<uint8_t>> early;
  bool finished = false;

  ~copy_state() {
    // Killed, or ended without finishing: nothing half-written stays.
    if (file != nullptr)
      std::fclose(file);
    if (!finished && !path.empty()) {
      std::error_code ec;
      fs::remove(path, ec);
    }
  }
};

using copy_pointer = caf::stateful_actor<copy_state>*;

/// Ends the copy: reports `err` (none: success) to its owner and quits.
void finish_copy(copy_pointer self, caf::error err) {
  auto& st = self->state;
  if (st.finished)
    return;
  if (st.file != nullptr) {
    if (std::fclose(st.file) != 0 && !err)
      err = make_error(errc::transfer_failed,
                       "writing " + st.path + ": " + std::strerror(errno));
    st.file = nullptr;
  }
  if (err) {
    std::error_code ec;
    fs::remove(st.path, ec);
  }
  st.finished = true;
  self->send(st.notify, copied_atom::value, st.tag,
             err ? std::string{} : st.path, std::move(err));
  self->quit();
}

/// `err` from the source, as the copy reports it.
caf::error source_error(const copy_state& st, const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return make_error(errc::output_unavailable,
                      st.source.name + " sent no chunk within "
                        + runtime::format_duration(st.options.chunk_timeout));
  if (err.category() == runtime::error_category())
    return make_error(static_cast<errc>(err.code()),
                      st.source.name + ": " + runtime::detail_of(err));
  return make_error(errc::output_unavailable,
                    st.source.name + ": " + runtime::describe(err));
}

void request_more(copy_pointer self);

void on_chunk(copy_pointer self, uint64_t offset, output_chunk& chunk) {
  auto& st = self->state;
  st.in_flight -= 1;
  if (st.finished)
    return;
  if (st.options.cancel && st.options.cancel->aborted()) {
    finish_copy(self,
                make_error(errc::transfer_failed,
                           "copying from " + st.source.name + ": aborted"));
    return;
  }
  if (!st.size_known) {
    st.size = chunk.size;
    st.size_known = true;
  } else if (chunk.size != st.size) {
    finish_copy(self, make_error(errc::output_unavailable,
                                 st.source.name
                                   + ": the file changed size "
                                     "during the copy ("
                                   + std::to_string(st.size) + " -> "
                                   + std::to_string(chunk.size) + " bytes)"));
    return;
  }
  if (offset > st.size
      || chunk.bytes.size()
           != std::min<uint64_t>(st.options.chunk_bytes, st.size - offset)) {
    finish_copy(self,
                make_error(errc::output_unavailable,
                           st.source.name + ": the file ended early, at "
                             + std::to_string(offset + chunk.bytes.size())
                             + " of " + std::to_string(st.size) + " bytes"));
    return;
  }
  st.early.emplace(offset, std::move(chunk.bytes));
  for (auto i = st.early.begin(); i != st.early.end() && i->first == st.written;
       i = st.early.erase(i)) {
    const auto& bytes = i->second;
    if (!bytes.empty()
        && std::fwrite(bytes.data(), 1, bytes.size(), st.file)
             != bytes.size()) {
      finish_copy(self,
                  make_error(errc::transfer_failed, "writing " + st.path + ": "
                                                      + std::strerror(errno)));
      return;
    }
    st.written += bytes.size();
  }
  if (st.written >= st.size) {
    finish_copy(self, caf::none);
    return;
  }
  request_more(self);
}

void request_more(copy_pointer self) {
  auto& st = self->state;
  // Until the size is known only the first chunk is asked for.
  auto window = st.size_known ? std::max<uint32_t>(1, st.options.window) : 1;
  while (!st.finished && st.in_flight < window
         && (!st.size_known || st.requested < st.size)) {
    auto offset = st.requested;
    st.requested += st.options.chunk_bytes;
    st.in_flight += 1;
    auto msg =
      st.source.request + caf::make_message(offset, st.options.chunk_bytes);
    self->request(st.source.actor, st.options.chunk_timeout, std::move(msg))
      .then([=](output_chunk& chunk) { on_chunk(self, offset, chunk); },
            [=](caf::error& err) {
              auto& st = self->state;
              st.in_flight -= 1;
              // The source's death may reach the request before the down
              // message does: the same loss either way.
              if (err == caf::sec::request_receiver_down)
                finish_copy(self, make_error(errc::node_lost,
                                             st.source.name
                                               + " was lost during the copy"));
              else
                finish_copy(self, source_error(st, err));
            });
    if (!st.size_known)
      break;
  }
}

caf::behavior chunked_copy(copy_pointer self, chunk_source source,
                           std::string path, uint64_t tag, caf::actor notify,
                           copy_options options) {
  auto& st = self->state;
  st.source = std::move(source);
  st.path = std::move(path);
  st.tag = tag;
  st.notify = std::move(notify);
  st.options = std::move(options);
  if (st.options.chunk_bytes == 0)
    st.options.chunk_bytes = runtime::default_chunk_bytes;
  st.options.chunk_bytes =
    std::min(st.options.chunk_bytes, runtime::max_chunk_bytes);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source == st.notify.address()) {
      // Nobody is left to tell: the destructor removes the file.
      self->quit();
      return;
    }
    if (msg.source == st.source.actor.address())
      finish_copy(self,
                  make_error(errc::node_lost,
                             st.source.name + " was lost during the copy ("
                               + runtime::describe(msg.reason) + ")"));
  });
  self->monitor(st.notify);
  self->monitor(st.source.actor);
  std::error_code ec;
  fs::create_directories(fs::path{st.path}.parent_path(), ec);
  st.file = std::fopen(st.path.c_str(), "wb");
  if (st.file == nullptr) {
    finish_copy(
      self, make_error(errc::transfer_failed, "cannot write " + st.path + ": "
                                                + std::strerror(errno)));
    return {};
  }
  request_more(self);
  if (st.options.cancel)
    self->delayed_send(self, cancel_poll, check_atom::value);
  return {
    [=](check_atom) {
      auto& st = self->state;
      if (st.finished)
        return;
      if (st.options.cancel->aborted()) {
        finish_copy(self,
                    make_error(errc::transfer_failed,
                               "copying from " + st.source.name + ": aborted"));
        return;
      }
      self->delayed_send(self, cancel_poll, check_atom::value);
    },
  };
}

} // namespace

caf::expected<output_chunk> read_file_chunk(const std::string& root,
                                            const std::string& path,
                                            uint64_t offset,
                                            uint32_t max_bytes) {
  if (max_bytes == 0)
    return make_error(errc::invalid_request, "max_bytes: must be positive");
  max_bytes = std::min(max_bytes, runtime::max_chunk_bytes);
  fs::path requested{path};
  if (!requested.is_absolute())
    return make_error(errc::unauthorized,
                      "'" + path + "' is not an absolute path");
  std::error_code ec;
  auto base = fs::canonical(root, ec);
  if (ec)
    return make_error(errc::output_unavailable,
                      "the output directory " + root + ": " + ec.message());
  auto real = fs::canonical(requested, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory)
      return make_error(errc::output_unavailable,
                        path + " is gone (" + ec.message() + ")");
    return make_error(errc::output_unavailable, path + ": " + ec.message());
  }
  if (!inside(base, real))
    return make_error(errc::unauthorized,
                      path + " is not inside the output directory " + root);
  fd_guard file;
  file.fd =
    ::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (file.fd < 0) {
    if (errno == ENOENT)
      return make_error(errc::output_unavailable,
                        path + " is gone (" + std::strerror(errno) + ")");
    if (errno == ELOOP)
      return make_error(errc::unauthorized,
                        path + " became a symbolic link while it was opened");
    return make_error(errc::output_unavailable,
                      "opening " + path + ": " + std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(file.fd, &info) != 0)
    return make_error(errc::output_unavailable,
                      "reading " + path + ": " + std::strerror(errno));
  if (!S_ISREG(info.st_mode))
    return make_error(errc::unauthorized, path + " is not a regular file");
  output_chunk chunk;
  chunk.size = static_cast<uint64_t>(info.st_size);
  if (offset > chunk.size)
    return make_error(errc::invalid_request,
                      "offset: " + std::to_string(offset)
                        + " is beyond the end of " + path + " ("
                        + std::to_string(chunk.size) + " bytes)");
  auto length = std::min<uint64_t>(max_bytes, chunk.size - offset);
  chunk.bytes.resize(length);
  uint64_t done = 0;
  while (done < length) {
    auto n = ::pread(file.fd, chunk.bytes.data() + done, length - done,
                     static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(errc::output_unavailable,
                        "reading " + path + ": " + std::strerror(errno));
    if (n == 0)
      break; // The file shrank: the reader sees fewer bytes than the size.
    done += static_cast<uint64_t>(n);
  }
  chunk.bytes.resize(done);
  return chunk;
}

file_reader_actor spawn_file_reader(caf::actor_system& sys, std::string root,
                                    bool detached) {
  if (detached)
    return sys.spawn<caf::detached>(file_reader, std::move(root));
  return sys.spawn(file_reader, std::move(root));
}

caf::actor spawn_chunked_copy(caf::actor_system& sys, chunk_source source,
                              std::string path, uint64_t tag, caf::actor notify,
                              copy_options options) {
  return sys.spawn<caf::detached>(chunked_copy, std::move(source),
                                  std::move(path), tag, std::move(notify),
                                  std::move(options));
}

} // namespace vidnode::actors
