/// vidctl against real vidnode processes on 127.0.0.1: where downloads go
/// (a temporary file of vidctl's own, a destination checked before anything
/// is sent, a file replaced only with --force, local errors told apart from
/// the node's), and a submit --wait cut off after the job was accepted.

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/node_process.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::child_process;
using test::command_result;
using test::node_process;
using test::run_command;

namespace {

namespace fs = std::filesystem;
using test::entries;
using test::read_file;
using test::write_file;

/// A fresh directory, removed with everything in it at the end.
struct scratch_dir {
  test::temp_directory dir{"vidctl-test"};
  fs::path path{dir.path()};

  /// Creates `name` inside, as a directory.
  fs::path make_dir(const std::string& name) const {
    fs::create_directories(path / name);
    return path / name;
  }
};

/// A sim job that writes a small video (64x48, 12 frames).
std::vector<std::string> video_job() {
  return {"submit",   "--steps",  "1",       "--option", "step_ms=1",
          "--option", "video=1",  "--width", "64",       "--height",
          "48",       "--frames", "12"};
}

/// A node with one sim device writing into `output`.
std::vector<std::string> node_args(const fs::path& output) {
  return {"--devices", "sim:1", "--output-dir", output.string()};
}

/// Runs a video job to its end on `node`; its id and where its video is.
std::pair<std::string, fs::path> finished_video(const node_process& node) {
  auto job = video_job();
  job.push_back("--wait");
  auto result = node.vidctl_json(job);
  REQUIRE(result["state"] == "succeeded");
  return {std::to_string(result["id"].get<uint64_t>()),
          result["output"].get<std::string>()};
}

/// Runs vidctl against a port where nothing listens: any answer but a usage
/// error shows that it tried to connect.
command_result vidctl_unconnected(std::vector<std::string> args) {
  std::vector<std::string> argv = {VIDCTL_BIN, "--connect", "127.0.0.1:1",
                                   "--timeout", "2s"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 10s);
}

/// The jobs `node` knows.
size_t job_count(const node_process& node) {
  return node.vidctl_json({"list"}).size();
}

} // namespace

TEST_CASE("vidctl downloads through a temporary file of its own: a link or a "
          "file at FILE.part is left alone",
          "[integration][downloads]") {
  scratch_dir dir;
  node_process node{node_args(dir.path / "out")};
  auto [id, video] = finished_video(node);
  auto dl = dir.make_dir("dl");
  write_file(dir.path / "victim.txt", "victim");
  fs::create_symlink(dir.path / "victim.txt", dl / "x.mp4.part");
  fs::create_symlink(dir.path / "victim.txt", dl / "y.mp4.part");
  write_file(dl / "z.mp4.part", "the user's own file");
  auto fetched = node.vidctl({"fetch", id, (dl / "x.mp4").string()});
  INFO(fetched.err);
  CHECK(fetched.status == 0);
  auto waited =
    node.vidctl({"wait", id, "--download", (dl / "y.mp4").string()});
  INFO(waited.err);
  CHECK(waited.status == 0);
  auto job = video_job();
  job.insert(job.end(), {"--wait", "--download", (dl / "z.mp4").string()});
  auto submitted = node.vidctl(job);
  INFO(submitted.err);
  CHECK(submitted.status == 0);
  CHECK(read_file(dir.path / "victim.txt") == "victim");
  CHECK(read_file(dl / "z.mp4.part") == "the user's own file");
  CHECK(read_file(dl / "x.mp4") == read_file(video));
  CHECK(read_file(dl / "y.mp4") == read_file(video));
  CHECK(fs::file_size(dl / "z.mp4") > 0);
  CHECK(entries(dl)
        == std::vector<std::string>{"x.mp4", "x.mp4.part", "y.mp4",
                                    "y.mp4.part", "z.mp4", "z.mp4.part"});
}

TEST_CASE("a download destination that cannot be written is a usage error "
          "naming the argument and why, found before anything is sent",
          "[integration][downloads]") {
  scratch_dir dir;
  dir.make_dir("dl");
  write_file(dir.path / "file", "a file");
  struct bad_destination {
    std::string path;
    std::string why;
  };
  auto under = [&](const std::string& name) {
    return (dir.path / name).string();
  };
  std::vector<bad_destination> bad = {
    {under("nodir/x.mp4"),
     "its directory '" + under("nodir") + "' does not exist"},
    {under("file/x.mp4"), "'" + under("file") + "' is not a directory"},
    {under("dl"), "'" + under("dl") + "' is a directory"},
    {under("dl") + "/", "names a directory, not a file"},
    {under("file"), "'" + under("file") + "' exists; --force replaces it"},
    {"/dev/null", "'/dev/null' exists and is not a regular file"},
  };
  for (const auto& [path, why] : bad) {
    for (const auto& args : std::vector<std::vector<std::string>>{
           {"fetch", "1", path},
           {"wait", "1", "--download", path},
           {"submit", "--wait", "--download", path},
         }) {
      auto r = vidctl_unconnected(args);
      INFO(args[0] << " " << path << ": " << r.err);
      CHECK(r.status == 2);
      auto argument = args[0] == "fetch" ? "fetch FILE" : "--download";
      CHECK_THAT(r.err,
                 Catch::StartsWith(std::string{"vidctl: "} + argument + ": ")
                   && Catch::Contains(why));
    }
  }
  CHECK(read_file(dir.path / "file") == "a file");
  CHECK(entries(dir.path) == std::vector<std::string>{"dl", "file"});
  CHECK(entries(dir.path / "dl").empty());

  SECTION("submit --wait --download submits nothing when the destination "
          "is bad") {
    node_process node{node_args(dir.path / "out")};
    auto job = video_job();
    job.insert(job.end(), {"--wait", "--download", under("nodir/x.mp4")});
    auto r = node.vidctl(job);
    INFO(r.err);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK(job_count(node) == 0);
  }
}

TEST_CASE("a file already at the destination is replaced only with --force",
          "[integration][downloads]") {
  scratch_dir dir;
  node_process node{node_args(dir.path / "out")};
  auto [id, video] = finished_video(node);
  auto file = dir.path / "video.mp4";
  write_file(file, "older");
  auto refused = node.vidctl({"fetch", id, file.string()});
  CHECK(refused.status == 2);
  CHECK(read_file(file) == "older");
  auto job = video_job();
  job.insert(job.end(), {"--wait", "--download", file.string()});
  CHECK(node.vidctl(job).status == 2);
  CHECK(job_count(node) == 1);
  CHECK(read_file(file) == "older");

  auto fetched = node.vidctl({"fetch", id, file.string(), "--force"});
  INFO(fetched.err);
  CHECK(fetched.status == 0);
  CHECK(read_file(file) == read_file(video));
  write_file(file, "older");
  auto waited =
    node.vidctl({"wait", id, "--download", file.string(), "--force"});
  CHECK(waited.status == 0);
  CHECK(read_file(file) == read_file(video));
  job.push_back("--force");
  CHECK(node.vidctl(job).status == 0);
  CHECK(entries(dir.path) == std::vector<std::string>{"out", "video.mp4"});
  auto alone = node.vidctl({"wait", id, "--force"});
  CHECK(alone.status == 2);
  CHECK_THAT(alone.err, Catch::Contains("--force requires --download"));
}

TEST_CASE("a video that cannot be written here is a local error with exit "
          "status 5, not a refusal of the node, and nothing is left of it",
          "[integration][downloads]") {
  scratch_dir dir;
  node_process node{node_args(dir.path / "out")};
  auto [id, video] = finished_video(node);
  REQUIRE(fs::file_size(video) > 1024);
  auto dl = dir.make_dir("dl");
  // Files may grow to 512 bytes; a longer write fails with EFBIG.
  auto limited = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {
      "/bin/sh",  "-c",        "trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\"",
      VIDCTL_BIN, "--connect", node.address};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 30s);
  };
  auto r = limited({"fetch", id, (dl / "x.mp4").string()});
  INFO(r.err);
  CHECK(r.status == 5);
  CHECK_THAT(r.err, Catch::StartsWith("vidctl: fetch FILE: writing '")
                      && Catch::Contains("File too large"));
  r = limited({"--json", "wait", id, "--download", (dl / "x.mp4").string()});
  INFO(r.err);
  CHECK(r.status == 5);
  auto error = json::parse(r.err)["error"];
  CHECK(error["code"] == "local_file");
  CHECK_THAT(error["message"].get<std::string>(),
             Catch::Contains("--download: writing '"));
  CHECK(entries(dl).empty());
}

TEST_CASE("SIGINT during a download removes vidctl's temporary file and "
          "leaves FILE alone",
          "[integration][downloads]") {
  scratch_dir dir;
  test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};
  test::head_process::options head_options;
  head_options.args = {"--output-dir", (dir.path / "head").string()};
  test::head_process head{programs, head_options};
  test::worker_process::options worker_options;
  worker_options.join = head.cluster_address();
  worker_options.name = "w1";
  worker_options.devices = "sim:1";
  worker_options.args = {"--output-dir", (dir.path / "w1").string()};
  test::worker_process worker{programs, worker_options};
  REQUIRE(worker.await_joins(1, 20s));
  auto job = video_job();
  job.push_back("--wait");
  auto id = std::to_string(head.vidctl_json(job)["id"].get<uint64_t>());
  auto dl = dir.make_dir("dl");
  write_file(dl / "x.mp4", "older");
  // A read from the stopped worker waits: the download stays in flight.
  worker.process().signal(SIGSTOP);
  child_process fetching{{VIDCTL_BIN, "--connect", head.address(), "fetch", id,
                          (dl / "x.mp4").string(), "--force"}};
  REQUIRE(test::poll_until([&] { return entries(dl).size() == 2; }, 20s,
                           [&] { fetching.poll_output(20ms); }));
  auto temporary = entries(dl)[1];
  CHECK_THAT(temporary,
             Catch::StartsWith("x.mp4.") && Catch::EndsWith(".part"));
  fetching.signal(SIGINT);
  auto status = fetching.wait(10s);
  REQUIRE(status);
  CHECK(*status == 128 + SIGINT);
  CHECK(entries(dl) == std::vector<std::string>{"x.mp4"});
  CHECK(read_file(dl / "x.mp4") == "older");
  worker.process().signal(SIGCONT);
}

TEST_CASE("a submit --wait cut off after the node accepted the job says "
          "which job it was",
          "[integration]") {
  scratch_dir dir;
  auto node = std::make_unique<node_process>(node_args(dir.path / "out"));
  auto json_output = GENERATE(false, true);
  std::vector<std::string> args = {"submit",   "--steps",      "2",
                                   "--option", "fault=hang@1", "--wait"};
  if (json_output)
    args.push_back("--json");
  auto waiting = node->start_vidctl(args);
  REQUIRE(test::poll_until([&] { return job_count(*node) == 1; }, 20s));
  auto id = node->vidctl_json({"list"})[0]["id"].get<uint64_t>();
  auto note = "job " + std::to_string(id) + " was accepted; `vidctl status "
              + std::to_string(id) + "` shows it";

  SECTION("the node is killed") {
    node->process->signal(SIGKILL);
    auto status = waiting->wait(15s);
    REQUIRE(status);
    CHECK(*status == 3);
    auto err = waiting->stderr_text();
    INFO(err);
    if (json_output) {
      auto doc = json::parse(err);
      CHECK(doc["error"]["code"] == "node_lost");
      CHECK(doc["id"] == id);
      CHECK_THAT(doc["idempotency_key"].get<std::string>(),
                 Catch::StartsWith("auto-"));
    } else {
      CHECK_THAT(err, Catch::Contains("node_lost") && Catch::Contains(note));
    }
  }
  SECTION("vidctl is interrupted") {
    waiting->signal(SIGINT);
    auto status = waiting->wait(10s);
    REQUIRE(status);
    CHECK(*status == 128 + SIGINT);
    CHECK_THAT(waiting->stderr_text(), Catch::Contains(note));
    node->vidctl({"cancel", std::to_string(id)});
  }
}
