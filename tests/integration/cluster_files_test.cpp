/// Files across nodes, end to end: a head with no devices of its own and
/// worker nodes with their own --output-dir, as real processes on
/// 127.0.0.1. Videos written on a worker reach vidctl through the head,
/// uploads leave from the head, fetched inputs reach the worker, and a
/// worker serves nothing outside its output directory.

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/media.hpp"
#include "support/http_server.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"
#include "vidnode/actors/cluster.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::child_process;
using test::command_result;
using test::run_command;

namespace {

namespace fs = std::filesystem;

/// A fresh directory, removed with everything in it at the end.
struct scratch_dir {
  test::temp_directory dir{"vidnode-files"};
  fs::path path{dir.path()};
};

/// Replaces `path` with `size` random bytes (from `seed`) and returns them.
std::string write_noise(const fs::path& path, size_t size, uint32_t seed) {
  std::string noise(size, '\0');
  std::mt19937 gen{seed};
  for (auto& c : noise)
    c = static_cast<char>(gen() & 0xff);
  std::ofstream{path, std::ios::binary | std::ios::trunc} << noise;
  return noise;
}

/// True if a download to `file` left a temporary file beside it
/// (`FILE.XXXXXX.part`).
bool partial_file_left(const fs::path& file) {
  auto prefix = file.filename().string() + ".";
  for (const auto& name : test::entries(file.parent_path()))
    if (name.rfind(prefix, 0) == 0)
      return true;
  return false;
}

/// The value after `prefix` on `line`, which must start with it.
std::string after(const std::optional<std::string>& line,
                  const std::string& prefix) {
  REQUIRE(line);
  REQUIRE(line->rfind(prefix, 0) == 0);
  return line->substr(prefix.size());
}

/// A head process named "head" with `devices` (none: worker nodes run every
/// job), its client and cluster ports on free loopback ports.
class head_node {
public:
  head_node(const fs::path& output_dir, std::vector<std::string> args = {},
            const std::string& devices = "none") {
    std::vector<std::string> argv = {VIDNODE_BIN,
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--cluster-listen",
                                     "127.0.0.1:0",
                                     "--devices",
                                     devices,
                                     "--node-name",
                                     "head",
                                     "--log-level",
                                     "warn",
                                     "--output-dir",
                                     output_dir.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    process = std::make_unique<child_process>(argv);
    INFO(process->stderr_text());
    address = after(process->read_line(10s), "vidnode listening on ");
    cluster_address =
      after(process->read_line(10s), "vidnode accepting worker nodes on ");
  }

  /// Runs vidctl against the head.
  command_result vidctl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {VIDCTL_BIN, "--connect", address};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 60s);
  }

  /// Runs vidctl with --json; requires exit 0 and returns the document.
  json vidctl_json(std::vector<std::string> args) const {
    args.push_back("--json");
    auto result = vidctl(args);
    INFO(result.err);
    REQUIRE(result.status == 0);
    return json::parse(result.out);
  }

  std::unique_ptr<child_process> process;
  std::string address;
  std::string cluster_address;
};

/// Starts a worker node named `name` that joins `cluster_address`; returns
/// once it has joined.
std::unique_ptr<child_process>
start_worker(const std::string& cluster_address, const std::string& name,
             const fs::path& output_dir, const std::string& devices,
             std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {
    VIDNODE_BIN,   "--join",       cluster_address,
    "--devices",   devices,        "--node-name",
    name,          "--output-dir", output_dir.string(),
    "--log-level", "warn"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto worker = std::make_unique<child_process>(argv);
  auto line = worker->read_line(20s);
  INFO(worker->stderr_text());
  REQUIRE(line);
  REQUIRE(*line == "vidnode joined " + cluster_address + " as " + name);
  return worker;
}

/// A sim job that writes a small video (64x48).
std::vector<std::string> sim_video_job(const std::string& frames = "12",
                                       const std::string& fps = "6") {
  return {"submit",   "--steps",  "2",       "--option", "step_ms=1",
          "--option", "video=1",  "--width", "64",       "--height",
          "48",       "--frames", frames,    "--fps",    fps};
}

/// The code of the error vidctl --json printed on stderr.
std::string error_code(const command_result& r) {
  INFO(r.err);
  return json::parse(r.err)["error"]["code"].get<std::string>();
}

std::string error_message(const command_result& r) {
  return json::parse(r.err)["error"]["message"].get<std::string>();
}

} // namespace

TEST_CASE("a video written on a worker node is downloaded through the head "
          "byte for byte with vidctl wait --download, and its result names "
          "the node that holds it",
          "[integration][cluster]") {
  scratch_dir dir;
  head_node head{dir.path / "head"};
  auto worker =
    start_worker(head.cluster_address, "w1", dir.path / "w1", "sim:2");
  auto id =
    std::to_string(head.vidctl_json(sim_video_job())["id"].get<uint64_t>());
  auto file = dir.path / "video.mp4";
  auto result = head.vidctl_json({"wait", id, "--download", file.string()});
  REQUIRE(result["state"] == "succeeded");
  CHECK(result["node"] == "w1");
  CHECK(result["output_node"] == "w1");
  auto on_worker = fs::path{result["output"].get<std::string>()};
  CHECK(on_worker.parent_path() == dir.path / "w1");
  CHECK(result["download"]["bytes"] == fs::file_size(on_worker));
  CHECK(test::read_file(file) == test::read_file(on_worker));
  CHECK_FALSE(partial_file_left(file));
  if (gpu::video_encoding_available()) {
    std::string error;
    auto info = gpu::probe_video(file.string(), error);
    INFO(error);
    REQUIRE(info);
    CHECK(info->width == 64);
    CHECK(info->height == 48);
    CHECK(info->frames == 12);
  }
  auto status = head.vidctl({"status", id});
  CHECK_THAT(status.out, Catch::Contains(on_worker.string() + " on node w1"));

  SECTION("vidctl fetch streams a file of several chunks, two in flight") {
    // The node serves whatever file is at the output path: 5 MiB and a bit
    // of noise make six reads of 1 MiB.
    auto noise = write_noise(on_worker, 5 * (1 << 20) + 12345, 7);
    auto copy = dir.path / "copy.mp4";
    auto fetched = head.vidctl_json({"fetch", id, copy.string()});
    CHECK(fetched["bytes"] == noise.size());
    CHECK(test::read_file(copy) == noise);
  }
}

TEST_CASE("a video made on a device of the head itself is downloaded the "
          "same way",
          "[integration][cluster]") {
  scratch_dir dir;
  head_node head{dir.path / "head", {}, "sim:1"};
  auto id =
    std::to_string(head.vidctl_json(sim_video_job())["id"].get<uint64_t>());
  auto file = dir.path / "video.mp4";
  auto result = head.vidctl_json({"wait", id, "--download", file.string()});
  REQUIRE(result["state"] == "succeeded");
  CHECK(result["output_node"] == "head");
  CHECK(test::read_file(file)
        == test::read_file(result["output"].get<std::string>()));
}

TEST_CASE("fetching a job that is unknown, queued, running, failed or has no "
          "file gives the typed error and writes nothing",
          "[integration][cluster]") {
  scratch_dir dir;
  head_node head{dir.path / "head", {"--max-attempts", "1"}};
  auto worker =
    start_worker(head.cluster_address, "w1", dir.path / "w1", "sim:1");
  auto file = (dir.path / "out.mp4").string();
  auto fetch = [&](const std::string& id) {
    auto r = head.vidctl({"--json", "fetch", id, file});
    CHECK(r.status == 4);
    CHECK_FALSE(fs::exists(file));
    CHECK_FALSE(partial_file_left(file));
    return r;
  };
  auto unknown = fetch("99");
  CHECK(error_code(unknown) == "unknown_job");
  auto submitted = head.vidctl({"--json", "submit", "--steps", "2", "--option",
                                "fault=crash@1", "--wait"});
  REQUIRE(submitted.status == 1);
  auto failed = json::parse(submitted.out);
  REQUIRE(failed["state"] == "failed");
  auto crashed = fetch(std::to_string(failed["id"].get<uint64_t>()));
  CHECK(error_code(crashed) == "no_output");
  CHECK_THAT(error_message(crashed), Catch::Contains("failed without a video"));
  auto plain = head.vidctl_json({"submit", "--steps", "1", "--wait"});
  REQUIRE(plain["state"] == "succeeded");
  auto no_file = fetch(std::to_string(plain["id"].get<uint64_t>()));
  CHECK(error_code(no_file) == "no_output");
  CHECK_THAT(error_message(no_file), Catch::Contains("is not a file"));
  // One job hangs on the only device; the next waits behind it.
  auto running =
    head.vidctl_json({"submit", "--steps", "2", "--option", "fault=hang@1"});
  auto queued = head.vidctl_json({"submit", "--steps", "1"});
  auto running_id = std::to_string(running["id"].get<uint64_t>());
  auto queued_id = std::to_string(queued["id"].get<uint64_t>());
  auto early = fetch(running_id);
  CHECK(error_code(early) == "no_output");
  CHECK_THAT(error_message(early), Catch::Contains("is running"));
  auto waiting = fetch(queued_id);
  CHECK(error_code(waiting) == "no_output");
  CHECK_THAT(error_message(waiting), Catch::Contains("is queued"));
  head.vidctl({"cancel", running_id});
  head.vidctl({"cancel", queued_id});
}

TEST_CASE("a worker node reads only regular files inside its --output-dir, "
          "whatever the head asks",
          "[integration][cluster]") {
  scratch_dir dir;
  auto output = dir.path / "w1";
  fs::create_directories(output);
  std::ofstream{output / "job-1.mp4"} << "the video";
  std::ofstream{dir.path / "secret"} << "not for the head";
  fs::create_symlink(dir.path / "secret", output / "job-2.mp4");
  // This process plays the head: a real registry in front of an admission
  // actor that accepts the registration and keeps the node's supervisor.
  net::process_config cfg;
  caf::actor_system sys{cfg};
  auto joined = std::make_shared<std::promise<actors::node_supervisor_actor>>();
  auto admission = sys.spawn([joined](caf::event_based_actor* self) {
    // Everything else (attach, reports) is swallowed without an answer: an
    // error sent back for a message sent without request would end its
    // sender.
    self->set_default_handler(
      [](caf::scheduled_actor*,
         caf::message_view&) -> caf::result<caf::message> {
        return caf::delegated<caf::message>{};
      });
    return caf::behavior{
      [=](actors::join_atom, actors::node_registration& reg) {
        joined->set_value(reg.supervisor);
        actors::join_answer answer;
        answer.head = "fake-head";
        return answer;
      },
    };
  });
  auto registry = actors::spawn_cluster_registry(
    sys, caf::actor_cast<actors::admission_control_actor>(admission));
  auto port = sys.middleman().publish(registry, 0, "127.0.0.1", true);
  REQUIRE(port);
  auto address = "127.0.0.1:" + std::to_string(*port);
  {
    auto worker = start_worker(address, "w1", output, "sim:1");
    auto found = joined->get_future();
    REQUIRE(found.wait_for(10s) == std::future_status::ready);
    auto supervisor = found.get();
    auto read = [&](const std::string& path) {
      auto answer =
        std::make_shared<std::promise<caf::expected<runtime::output_chunk>>>();
      sys.spawn([=](caf::event_based_actor* self) {
        self
          ->request(supervisor, 10s, actors::read_file_atom::value, path,
                    uint64_t{0}, uint32_t{1000})
          .then([=](runtime::output_chunk& chunk) { answer->set_value(chunk); },
                [=](caf::error& err) { answer->set_value(err); });
      });
      return answer->get_future().get();
    };
    auto served = read((output / "job-1.mp4").string());
    REQUIRE(served);
    CHECK(std::string(served->bytes.begin(), served->bytes.end())
          == "the video");
    for (auto path :
         {std::string{"/etc/passwd"}, (output / ".." / "secret").string(),
          (output / "job-2.mp4").string(), output.string(),
          std::string{"job-1.mp4"}}) {
      INFO(path);
      auto refused = read(path);
      REQUIRE_FALSE(refused);
      INFO(runtime::describe(refused.error()));
      CHECK(runtime::is(refused.error(), runtime::errc::unauthorized));
    }
    auto gone = read((output / "job-3.mp4").string());
    REQUIRE_FALSE(gone);
    CHECK(runtime::is(gone.error(), runtime::errc::output_unavailable));
  }
  caf::anon_send_exit(registry, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(admission, caf::exit_reason::user_shutdown);
  sys.middleman().stop();
}

TEST_CASE("a video whose worker node was killed cannot be fetched: the error "
          "names the lost node at once, also for a download in flight",
          "[integration][cluster]") {
  scratch_dir dir;
  head_node head{dir.path / "head"};
  auto worker =
    start_worker(head.cluster_address, "w1", dir.path / "w1", "sim:1");
  auto done = head.vidctl_json(sim_video_job());
  auto id = std::to_string(done["id"].get<uint64_t>());
  REQUIRE(head.vidctl_json({"wait", id})["state"] == "succeeded");
  auto file = (dir.path / "out.mp4").string();
  SECTION("fetched after the kill") {
    worker->signal(SIGKILL);
    REQUIRE(worker->wait(10s));
  }
  SECTION("killed while a read waits on the stopped node") {
    worker->signal(SIGSTOP);
    auto fetching = std::make_unique<child_process>(std::vector<std::string>{
      VIDCTL_BIN, "--connect", head.address, "--json", "fetch", id, file});
    worker->signal(SIGKILL);
    REQUIRE(worker->wait(10s));
    auto status = fetching->wait(10s);
    REQUIRE(status);
    CHECK(*status == 4);
    CHECK_THAT(fetching->stderr_text(),
               Catch::Contains("node w1 that holds the video"));
  }
  auto started = std::chrono::steady_clock::now();
  auto r = head.vidctl({"--json", "fetch", id, file});
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(r.status == 4);
  CHECK(error_code(r) == "output_unavailable");
  CHECK_THAT(error_message(r),
             Catch::Contains("node w1 that holds the video of job " + id
                             + " was lost at"));
  CHECK_FALSE(fs::exists(file));
  CHECK_FALSE(partial_file_left(file));
}

TEST_CASE("an --output-url upload of a video made on a worker node leaves "
          "from the head and reaches the server, and no staged copy is left",
          "[integration][cluster][transfers]") {
  scratch_dir dir;
  test::http_server web;
  head_node head{dir.path / "head", {"--allow-private-urls"}};
  auto worker =
    start_worker(head.cluster_address, "w1", dir.path / "w1", "sim:1");
  auto job = sim_video_job();
  job.insert(job.end(), {"--output-url", web.url("/uploads/up.mp4"), "--wait"});
  auto result = head.vidctl_json(job);
  REQUIRE(result["state"] == "succeeded");
  CHECK(result["output"] == web.url("/uploads/up.mp4"));
  CHECK(result["output_node"].is_null());
  auto id = result["id"].get<uint64_t>();
  auto on_worker = dir.path / "w1" / ("job-" + std::to_string(id) + ".mp4");
  REQUIRE(fs::exists(on_worker));
  CHECK(web.read("uploads/up.mp4") == test::read_file(on_worker));
  CHECK(test::entries(dir.path / "head" / "staging").empty());
  // An uploaded video is fetched from its URL, not through the head.
  auto r = head.vidctl(
    {"--json", "fetch", std::to_string(id), (dir.path / "x.mp4").string()});
  CHECK(r.status == 4);
  CHECK(error_code(r) == "no_output");
  CHECK_THAT(error_message(r), Catch::Contains("was uploaded to"));
}

TEST_CASE("an --audio-url fetched by the head reaches the worker node that "
          "runs the job, which keeps no copy",
          "[integration][cluster][transfers]") {
  if (!gpu::video_encoding_available()) {
    WARN("skipped: this build lacks FFmpeg (audio cannot be muxed)");
    return;
  }
  scratch_dir dir;
  auto wav = test::silent_wav_second();
  auto inputs = dir.path / "inputs";
  fs::create_directories(inputs);
  std::ofstream{inputs / "voice.wav", std::ios::binary} << wav;
  head_node head{dir.path / "head", {"--allow-file-urls", inputs.string()}};
  auto worker =
    start_worker(head.cluster_address, "w1", dir.path / "w1", "sim:1");
  auto job = sim_video_job("16", "8");
  job.insert(job.end(),
             {"--audio-url", "file://" + (inputs / "voice.wav").string()});
  auto id = std::to_string(head.vidctl_json(job)["id"].get<uint64_t>());
  auto file = dir.path / "with-audio.mp4";
  auto result = head.vidctl_json({"wait", id, "--download", file.string()});
  REQUIRE(result["state"] == "succeeded");
  CHECK(result["output_node"] == "w1");
  std::string error;
  auto info = gpu::probe_video(file.string(), error);
  INFO(error);
  REQUIRE(info);
  CHECK(info->has_audio);
  CHECK(info->audio_seconds == Approx(2.0).margin(0.05)); // 16 frames at 8
  CHECK(test::entries(dir.path / "w1" / "copies").empty());
  CHECK(test::entries(dir.path / "head" / "inputs").empty());
}

TEST_CASE("at the smallest --max-message-size a video of several chunks is "
          "fetched from a worker node through the head while another job "
          "runs there, which stays on its first attempt, and an input longer "
          "than the worker's limit reaches it",
          "[integration][cluster][transfers]") {
  scratch_dir dir;
  const std::string limit = "512KiB";
  auto inputs = dir.path / "inputs";
  fs::create_directories(inputs);
  // 36 s at 48 kHz: about 1.7 MB, more than three chunks of the limit.
  auto wav = test::silent_wav(36, 48000);
  REQUIRE(wav.size() > 3 * (512u << 10));
  std::ofstream{inputs / "voice.wav", std::ios::binary} << wav;
  head_node head{
    dir.path / "head",
    {"--max-message-size", limit, "--allow-file-urls", inputs.string()}};
  auto worker = start_worker(head.cluster_address, "w1", dir.path / "w1",
                             "sim:2", {"--max-message-size", limit});
  auto long_job =
    head.vidctl_json({"submit", "--steps", "1000", "--option", "step_ms=100"});
  auto long_id = std::to_string(long_job["id"].get<uint64_t>());
  auto job = sim_video_job("16", "8");
  if (gpu::video_encoding_available())
    job.insert(job.end(),
               {"--audio-url", "file://" + (inputs / "voice.wav").string()});
  auto id = std::to_string(head.vidctl_json(job)["id"].get<uint64_t>());
  auto file = dir.path / "video.mp4";
  auto result = head.vidctl_json({"wait", id, "--download", file.string()});
  REQUIRE(result["state"] == "succeeded");
  CHECK(result["output_node"] == "w1");
  CHECK(result["attempts"] == 1);
  auto on_worker = fs::path{result["output"].get<std::string>()};
  CHECK(test::read_file(file) == test::read_file(on_worker));
  if (gpu::video_encoding_available()) {
    std::string error;
    auto info = gpu::probe_video(file.string(), error);
    INFO(error);
    REQUIRE(info);
    CHECK(info->has_audio);
    CHECK(test::entries(dir.path / "w1" / "copies").empty());
  }
  // The node serves whatever file is at the output path: 3 MiB and a bit
  // of noise make chunks of 1 MiB that the head reads in pieces.
  auto noise = write_noise(on_worker, 3 * (1 << 20) + 12345, 5);
  auto copy = dir.path / "copy.mp4";
  auto fetched = head.vidctl_json({"fetch", id, copy.string()});
  CHECK(fetched["bytes"] == noise.size());
  CHECK(test::read_file(copy) == noise);
  auto beside = head.vidctl_json({"status", long_id});
  CHECK(beside["state"] == "running");
  CHECK(beside["node"] == "w1");
  CHECK(beside["attempts"] == 1);
  head.vidctl({"cancel", long_id});
  auto log = head.process->stderr_text();
  CHECK_THAT(log, !Catch::Contains("closing the connection"));
  CHECK_THAT(log, !Catch::Contains("is lost"));
  CHECK_THAT(worker->stderr_text(), !Catch::Contains("closing the connection"));
}

TEST_CASE("tiny-t2v on a cpu worker node: the video downloaded with vidctl "
          "wait --download decodes to the asked frames and size",
          "[integration][cluster][torch]") {
  if (!gpu::torch_available() || !gpu::video_encoding_available()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  scratch_dir dir;
  head_node head{dir.path / "head"};
  auto worker =
    start_worker(head.cluster_address, "w1", dir.path / "w1", "cpu:1");
  auto id = std::to_string(
    head
      .vidctl_json({"submit", "--model", "tiny-t2v", "--prompt", "a red fox",
                    "--width", "64", "--height", "32", "--frames", "8", "--fps",
                    "8", "--steps", "2"})["id"]
      .get<uint64_t>());
  auto file = dir.path / "fox.mp4";
  auto result = head.vidctl_json({"wait", id, "--download", file.string()});
  REQUIRE(result["state"] == "succeeded");
  CHECK(result["output_node"] == "w1");
  std::string error;
  auto info = gpu::probe_video(file.string(), error);
  INFO(error);
  REQUIRE(info);
  CHECK(info->codec == "h264");
  CHECK(info->width == 64);
  CHECK(info->height == 32);
  CHECK(info->frames == 8);
}
