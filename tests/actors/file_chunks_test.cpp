/// Files read and copied in chunks (actors/file_chunks.hpp): what a node
/// serves from its output directory, and copies that survive neither a lost
/// source nor an abort without cleaning up.

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <catch2/catch.hpp>

#include "vidnode/actors/file_chunks.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;

namespace {

namespace fs = std::filesystem;

/// A fresh directory, removed with everything in it at the end.
struct scratch_dir {
  fs::path path;

  scratch_dir() {
    std::string pattern =
      (fs::temp_directory_path() / "vidnode-chunks-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }

  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out{path, std::ios::binary};
  out << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

std::string random_bytes(size_t n) {
  std::mt19937 gen{42};
  std::string result(n, '\0');
  for (auto& c : result)
    c = static_cast<char>(gen() & 0xff);
  return result;
}

std::string as_string(const runtime::output_chunk& chunk) {
  return {chunk.bytes.begin(), chunk.bytes.end()};
}

struct system_config : caf::actor_system_config {
  system_config() {
    actors::add_types(*this);
  }
};

/// A source that serves `read_file, path, offset, max` from `root`, the
/// way a node's supervisor does.
caf::behavior file_source(caf::event_based_actor* self, std::string root) {
  return {
    [=](actors::read_file_atom, const std::string& path, uint64_t offset,
        uint32_t max_bytes) -> caf::result<runtime::output_chunk> {
      auto chunk = actors::read_file_chunk(root, path, offset, max_bytes);
      if (!chunk)
        return std::move(chunk.error());
      return std::move(*chunk);
    },
  };
}

/// A source that never answers (its promises are dropped undelivered).
caf::behavior silent_source(caf::event_based_actor* self) {
  return {
    [=](actors::read_file_atom, const std::string&, uint64_t,
        uint32_t) -> caf::result<runtime::output_chunk> {
      return self->make_response_promise<runtime::output_chunk>();
    },
  };
}

} // namespace

TEST_CASE("a chunk of a file inside the output directory is read from its "
          "offset, the last one short and the end empty",
          "[file_chunks]") {
  scratch_dir dir;
  auto content = random_bytes(2500);
  write_file(dir.path / "job-1.mp4", content);
  auto path = (dir.path / "job-1.mp4").string();
  auto first = actors::read_file_chunk(dir.path.string(), path, 0, 1000);
  REQUIRE(first);
  CHECK(first->size == 2500);
  CHECK(as_string(*first) == content.substr(0, 1000));
  auto last = actors::read_file_chunk(dir.path.string(), path, 2000, 1000);
  REQUIRE(last);
  CHECK(as_string(*last) == content.substr(2000));
  auto end = actors::read_file_chunk(dir.path.string(), path, 2500, 1000);
  REQUIRE(end);
  CHECK(end->bytes.empty());
  CHECK(end->size == 2500);
}

TEST_CASE("a path outside the output directory is refused, also through .. "
          "and symbolic links",
          "[file_chunks]") {
  scratch_dir dir;
  auto root = dir.path / "out";
  fs::create_directories(root);
  write_file(dir.path / "secret", "secret");
  fs::create_symlink(dir.path / "secret", root / "job-1.mp4");
  fs::create_symlink(dir.path, root / "up");
  for (auto path :
       {std::string{"/etc/passwd"}, (root / ".." / "secret").string(),
        (root / "job-1.mp4").string(), (root / "up" / "secret").string(),
        root.string(), std::string{"job-1.mp4"}}) {
    INFO(path);
    auto chunk = actors::read_file_chunk(root.string(), path, 0, 100);
    REQUIRE_FALSE(chunk);
    CHECK(runtime::is(chunk.error(), errc::unauthorized));
  }
}

TEST_CASE("a FIFO or a directory inside the output directory is refused "
          "without blocking",
          "[file_chunks]") {
  scratch_dir dir;
  REQUIRE(::mkfifo((dir.path / "job-1.mp4").c_str(), 0600) == 0);
  fs::create_directories(dir.path / "job-2.mp4");
  for (auto name : {"job-1.mp4", "job-2.mp4"}) {
    auto chunk = actors::read_file_chunk(dir.path.string(),
                                         (dir.path / name).string(), 0, 100);
    REQUIRE_FALSE(chunk);
    CHECK(runtime::is(chunk.error(), errc::unauthorized));
    CHECK_THAT(runtime::describe(chunk.error()),
               Catch::Contains("not a regular file"));
  }
}

TEST_CASE("a missing file, an offset beyond the end and an empty ask are "
          "typed errors",
          "[file_chunks]") {
  scratch_dir dir;
  write_file(dir.path / "job-1.mp4", "0123456789");
  auto path = (dir.path / "job-1.mp4").string();
  auto gone = actors::read_file_chunk(dir.path.string(),
                                      (dir.path / "job-2.mp4").string(), 0, 10);
  REQUIRE_FALSE(gone);
  CHECK(runtime::is(gone.error(), errc::output_unavailable));
  CHECK_THAT(runtime::describe(gone.error()), Catch::Contains("is gone"));
  auto beyond = actors::read_file_chunk(dir.path.string(), path, 11, 10);
  REQUIRE_FALSE(beyond);
  CHECK(runtime::is(beyond.error(), errc::invalid_request));
  auto empty = actors::read_file_chunk(dir.path.string(), path, 0, 0);
  REQUIRE_FALSE(empty);
  CHECK(runtime::is(empty.error(), errc::invalid_request));
  auto no_root =
    actors::read_file_chunk((dir.path / "none").string(), path, 0, 10);
  REQUIRE_FALSE(no_root);
  CHECK(runtime::is(no_root.error(), errc::output_unavailable));
}

TEST_CASE("a file reader answers one request on its own thread and ends",
          "[file_chunks]") {
  scratch_dir dir;
  write_file(dir.path / "job-1.mp4", "0123456789");
  system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto reader = actors::spawn_file_reader(sys, dir.path.string());
    self->monitor(reader);
    self
      ->request(reader, 10s, actors::read_file_atom::value,
                (dir.path / "job-1.mp4").string(), uint64_t{3}, uint32_t{4})
      .receive(
        [](runtime::output_chunk& chunk) {
          CHECK(chunk.size == 10);
          CHECK(as_string(chunk) == "3456");
        },
        [](caf::error& err) { FAIL(runtime::describe(err)); });
    auto ended = false;
    self->receive([&](caf::down_msg&) { ended = true; },
                  caf::after(10s) >> [] {});
    CHECK(ended);
    // A refusal is answered too.
    self
      ->request(actors::spawn_file_reader(sys, dir.path.string()), 10s,
                actors::read_file_atom::value, std::string{"/etc/passwd"},
                uint64_t{0}, uint32_t{4})
      .receive(
        [](runtime::output_chunk&) { FAIL("/etc/passwd was read"); },
        [](caf::error& err) { CHECK(runtime::is(err, errc::unauthorized)); });
  }
}

TEST_CASE("a chunked copy reproduces the file byte for byte with two chunks "
          "in flight",
          "[file_chunks]") {
  scratch_dir dir;
  auto content = random_bytes(100 * 1000 + 17);
  write_file(dir.path / "job-1.mp4", content);
  system_config cfg;
  caf::actor_system sys{cfg};
  {
    caf::scoped_actor self{sys};
    auto source = sys.spawn(file_source, dir.path.string());
    actors::copy_options options;
    options.chunk_bytes = 1000;
    auto target = (dir.path / "copies" / "job-1.mp4").string();
    actors::spawn_chunked_copy(
      sys,
      {source,
       caf::make_message(actors::read_file_atom::value,
                         (dir.path / "job-1.mp4").string()),
       "the source"},
      target, 7, caf::actor{self}, options);
    self->receive(
      [&](actors::copied_atom, uint64_t tag, const std::string& path,
          const caf::error& err) {
        CHECK(tag == 7);
        CHECK_FALSE(err);
        CHECK(path == target);
      },
      caf::after(30s) >> [] { FAIL("no answer from the copy"); });
    CHECK(read_file(target) == content);
    self->send_exit(source, caf::exit_reason::user_shutdown);
  }
}

TEST_CASE("a chunked copy whose source is lost, or that is aborted, or "
          "whose source refuses, removes what it wrote and says why",
          "[file_chunks]") {
  scratch_dir dir;
  write_file(dir.path / "job-1.mp4", random_bytes(5000));
  system_config cfg;
  caf::actor_system sys{cfg};
  auto target = (dir.path / "copies" / "job-1.mp4").string();
  caf::scoped_actor self{sys};
  auto expect_failure = [&](errc code, const std::string& words) {
    self->receive(
      [&](actors::copied_atom, uint64_t, const std::string& path,
          const caf::error& err) {
        CHECK(path.empty());
        CHECK(runtime::is(err, code));
        CHECK_THAT(runtime::describe(err), Catch::Contains(words));
      },
      caf::after(30s) >> [] { FAIL("no answer from the copy"); });
    CHECK_FALSE(fs::exists(target));
  };
  SECTION("lost source") {
    auto source = sys.spawn(silent_source);
    actors::spawn_chunked_copy(
      sys,
      {source, caf::make_message(actors::read_file_atom::value, "/x"),
       "node w1"},
      target, 1, caf::actor{self});
    self->send_exit(source, caf::exit_reason::kill);
    expect_failure(errc::node_lost, "node w1 was lost");
  }
  SECTION("aborted while a chunk is awaited") {
    auto source = sys.spawn(silent_source);
    actors::copy_options options;
    options.cancel = std::make_shared<actors::abort_signal>();
    actors::spawn_chunked_copy(
      sys,
      {source, caf::make_message(actors::read_file_atom::value, "/x"),
       "node w1"},
      target, 1, caf::actor{self}, options);
    options.cancel->abort();
    expect_failure(errc::transfer_failed, "aborted");
    self->send_exit(source, caf::exit_reason::user_shutdown);
  }
  SECTION("refused by the source") {
    auto source = sys.spawn(file_source, dir.path.string());
    actors::spawn_chunked_copy(
      sys,
      {source, caf::make_message(actors::read_file_atom::value, "/etc/passwd"),
       "node w1"},
      target, 1, caf::actor{self});
    expect_failure(errc::unauthorized, "node w1: /etc/passwd is not inside");
    self->send_exit(source, caf::exit_reason::user_shutdown);
  }
}
