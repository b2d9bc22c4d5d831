/// net::download_file: the temporary file a download writes is vidctl's
/// own (created exclusively beside the target), is renamed over the target
/// only when complete and as the policy allows, and is never left behind.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/temp_directory.hpp"
#include "vidnode/net/download_file.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace vidnode;
using net::download_file;

namespace {

namespace fs = std::filesystem;
using test::entries;
using test::read_file;
using test::write_file;

caf::error write_text(download_file& file, const std::string& text) {
  return file.write(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

/// The context of `err`, which must be invalid_request.
std::string why(const caf::error& err) {
  REQUIRE(err);
  CHECK(runtime::is(err, runtime::errc::invalid_request));
  return runtime::detail_of(err);
}

} // namespace

TEST_CASE("a download file is a fresh file beside its target, renamed over "
          "it on commit with the mode of a new file",
          "[download_file]") {
  test::temp_directory dir{"download-file"};
  auto target = fs::path{dir.path()} / "video.mp4";
  auto file =
    download_file::create(target.string(), download_file::existing::refuse);
  REQUIRE(file);
  auto temporary = fs::path{file->temporary_path()};
  CHECK(temporary.parent_path() == target.parent_path());
  CHECK_THAT(temporary.filename().string(),
             Catch::StartsWith("video.mp4.") && Catch::EndsWith(".part"));
  CHECK_FALSE(fs::exists(target));
  CHECK_FALSE(write_text(*file, "the "));
  CHECK_FALSE(write_text(*file, "video"));
  CHECK_FALSE(file->commit());
  CHECK(read_file(target) == "the video");
  CHECK(entries(dir.path()) == std::vector<std::string>{"video.mp4"});
  auto mask = ::umask(022);
  ::umask(mask);
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == (0666 & ~mask));
}

TEST_CASE("a download file dropped before its commit, or whose commit "
          "failed, leaves nothing and the target as it was",
          "[download_file]") {
  test::temp_directory dir{"download-file"};
  auto target = fs::path{dir.path()} / "video.mp4";
  {
    auto file =
      download_file::create(target.string(), download_file::existing::replace);
    REQUIRE(file);
    CHECK_FALSE(write_text(*file, "half"));
  }
  CHECK(entries(dir.path()).empty());
  {
    auto file =
      download_file::create(target.string(), download_file::existing::refuse);
    REQUIRE(file);
    CHECK_FALSE(write_text(*file, "new"));
    write_file(target, "came meanwhile");
    CHECK_THAT(why(file->commit()),
               Catch::Contains("appeared during the download and was kept"));
  }
  CHECK(read_file(target) == "came meanwhile");
  CHECK(entries(dir.path()) == std::vector<std::string>{"video.mp4"});
}

TEST_CASE("a download file never writes through a link or into a file that "
          "was there, and replaces a file or link only when told",
          "[download_file]") {
  test::temp_directory dir{"download-file"};
  fs::path root{dir.path()};
  write_file(root / "victim", "victim");
  fs::create_symlink(root / "victim", root / "video.mp4.part");
  fs::create_symlink(root / "victim", root / "link.mp4");
  for (auto name : {"video.mp4", "link.mp4"}) {
    INFO(name);
    auto file = download_file::create((root / name).string(),
                                      download_file::existing::replace);
    REQUIRE(file);
    CHECK_FALSE(write_text(*file, "the video"));
    CHECK_FALSE(file->commit());
    CHECK(read_file(root / name) == "the video");
  }
  CHECK(fs::is_symlink(root / "video.mp4.part"));
  CHECK_FALSE(fs::is_symlink(root / "link.mp4"));
  CHECK(read_file(root / "victim") == "victim");
  CHECK_THAT(why(download_file::check((root / "video.mp4").string(),
                                      download_file::existing::refuse)),
             Catch::Contains("exists"));
}

TEST_CASE("a download target that cannot be written is refused by check, "
          "which leaves nothing behind",
          "[download_file]") {
  test::temp_directory dir{"download-file"};
  fs::path root{dir.path()};
  fs::create_directory(root / "dir");
  write_file(root / "file", "a file");
  fs::create_symlink(root / "dir", root / "dir-link");
  for (const auto& [target, reason] :
       std::vector<std::pair<std::string, std::string>>{
         {"", "an empty path names no file"},
         {(root / "none" / "x").string(), "does not exist"},
         {(root / "file" / "x").string(), "is not a directory"},
         {(root / "dir").string(), "is a directory"},
         {(root / "dir-link").string(), "is a directory"},
         {(root / "dir").string() + "/", "names a directory"},
         {(root / "dir" / "..").string(), "names a directory"},
         {"/dev/null", "is not a regular file"},
       }) {
    INFO(target);
    CHECK_THAT(
      why(download_file::check(target, download_file::existing::replace)),
      Catch::Contains(reason));
  }
  CHECK_FALSE(download_file::check((root / "dir" / "new").string(),
                                   download_file::existing::refuse));
  CHECK_FALSE(download_file::check((root / "file").string(),
                                   download_file::existing::replace));
  CHECK(entries(root) == std::vector<std::string>{"dir", "dir-link", "file"});
  CHECK(entries(root / "dir").empty());
}
