/// End-to-end tests of what happens to a job's transfers when the job or
/// the node ends: cancels and timeouts abort them at once, SIGTERM gives
/// uploads and webhooks a grace period, and webhooks are retried on a
/// schedule. Real `vidnode` and `vidctl` processes and the test HTTP server,
/// all on 127.0.0.1.

#include <signal.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/http_server.hpp"
#include "support/node_process.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/video.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::node_process;

namespace {

/// A tiny-t2v job small enough for a cpu device in well under a second.
std::vector<std::string> tiny_job(std::vector<std::string> more) {
  std::vector<std::string> args = {"submit", "--model",  "tiny-t2v", "--width",
                                   "64",     "--height", "32",       "--frames",
                                   "2",      "--steps",  "1"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

bool can_write_videos() {
  return gpu::torch_available() && gpu::video_encoding_available();
}

/// Runs a node with `grace` as its --shutdown-grace and a tiny job whose
/// video goes to `upload_path` on `web` and whose webhook to /hooks/end;
/// once the upload reached `web`, sends SIGTERM, runs `while_stopping`
/// when the node refuses new jobs, requires a clean exit, and returns what
/// the webhook received.
json stop_during_upload(test::http_server& web, const std::string& grace,
                        const std::string& upload_path,
                        const std::function<void()>& while_stopping) {
  auto dir = web.root() / "node-output";
  node_process node{{"--allow-private-urls", "--devices", "cpu:1",
                     "--output-dir", dir.string(), "--shutdown-grace", grace}};
  node.vidctl_json(tiny_job({"--output-url", web.url(upload_path),
                             "--webhook-url", web.url("/hooks/end")}));
  REQUIRE(web.wait_for_requests(upload_path));
  node.process->signal(SIGTERM);
  // The gateway stays up through the grace period and refuses new jobs.
  bool stopping = false;
  for (int i = 0; i < 100 && !stopping; ++i)
    stopping = node.vidctl({"submit", "--steps", "0"}).err.find("shutting_down")
               != std::string::npos;
  CHECK(stopping);
  while_stopping();
  auto status = node.process->wait(30s);
  REQUIRE(status);
  CHECK(*status == 0);
  auto hook = web.read("hooks/end");
  REQUIRE_FALSE(hook.empty());
  return json::parse(hook);
}

} // namespace

TEST_CASE("cancelling jobs whose audio downloads stall closes every "
          "download at once, and none is tried again",
          "[integration][transfers]") {
  test::http_server web;
  node_process node{{"--allow-private-urls", "--devices", "sim:1"}};
  constexpr int rounds = 10;
  for (int i = 1; i <= rounds; ++i) {
    auto path = "/stall/audio-" + std::to_string(i);
    auto id = node.vidctl_json({"submit", "--audio-url", web.url(path)})["id"];
    REQUIRE(web.wait_for_requests(path));
    auto cancelled = node.vidctl_json({"cancel", to_string(id)});
    CHECK(cancelled["state"] == "cancelled");
  }
  for (int i = 1; i <= rounds; ++i) {
    auto path = "/stall/audio-" + std::to_string(i);
    CHECK(web.wait_until_closed(path));
  }
  // A job that runs after them all: by then a retry would have come.
  CHECK(node.vidctl_json({"submit", "--steps", "1", "--wait"})["state"]
        == "succeeded");
  for (int i = 1; i <= rounds; ++i)
    CHECK(web.requests_for("/stall/audio-" + std::to_string(i)) == 1);
}

TEST_CASE("a job that times out in the queue while its audio download stalls "
          "closes the download",
          "[integration][transfers]") {
  test::http_server web;
  node_process node{{"--allow-private-urls", "--devices", "sim:1"}};
  auto r = node.vidctl({"submit", "--audio-url", web.url("/stall/a.wav"),
                        "--queue-timeout", "1s", "--wait", "--json"});
  CHECK(r.status == 1);
  auto result = json::parse(r.out);
  CHECK(result["state"] == "timed_out");
  CHECK(result["error"]["code"] == "queue_timeout");
  CHECK_THAT(result["error"]["message"].get<std::string>(),
             Catch::Contains("while its audio_url was still downloading"));
  CHECK(web.wait_until_closed("/stall/a.wav"));
  CHECK(web.requests_for("/stall/a.wav") == 1);
}

TEST_CASE("cancelling a job during its upload aborts the upload, and the "
          "result says where the video is",
          "[integration][transfers][torch]") {
  if (!can_write_videos()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  test::http_server web;
  auto dir = web.root() / "node-output";
  node_process node{{"--allow-private-urls", "--devices", "cpu:1",
                     "--output-dir", dir.string()}};
  node.vidctl_json(tiny_job({"--output-url", web.url("/stall/clip.mp4")}));
  REQUIRE(web.wait_for_requests("/stall/clip.mp4"));
  auto result = node.vidctl_json({"cancel", "1"});
  CHECK(result["state"] == "cancelled");
  auto video = (dir / "job-1.mp4").string();
  CHECK(result["output"] == video);
  CHECK_THAT(result["error"]["message"].get<std::string>(),
             Catch::Contains("kept at " + video));
  CHECK(std::filesystem::file_size(video) > 100);
  CHECK(web.wait_until_closed("/stall/clip.mp4"));
}

TEST_CASE("on SIGTERM an upload in flight finishes within the grace period "
          "and its webhook is delivered",
          "[integration][transfers][torch]") {
  if (!can_write_videos()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  test::http_server web;
  auto upload = "/hold/upload/uploads/clip.mp4";
  // The upload goes on only once the node is stopping.
  auto result =
    stop_during_upload(web, "20s", upload, [&] { web.release("upload"); });
  CHECK(result["state"] == "succeeded");
  CHECK(result["output"] == web.url(upload));
  CHECK(web.read("uploads/clip.mp4").size() > 100);
}

TEST_CASE("on SIGTERM an upload that outlasts the grace period is aborted, "
          "and the webhook says where the video is",
          "[integration][transfers][torch]") {
  if (!can_write_videos()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  test::http_server web;
  auto result = stop_during_upload(web, "1s", "/stall/clip.mp4", [] {});
  CHECK(web.wait_until_closed("/stall/clip.mp4"));
  CHECK(result["state"] == "cancelled");
  auto video = (web.root() / "node-output" / "job-1.mp4").string();
  CHECK(result["output"] == video);
  CHECK_THAT(result["error"]["message"].get<std::string>(),
             Catch::Contains("grace period") && Catch::Contains(video));
  CHECK(std::filesystem::file_size(video) > 100);
}

TEST_CASE("a webhook whose receiver fails is tried again on the schedule "
          "until it answers",
          "[integration][transfers]") {
  test::http_server web;
  node_process node{{"--allow-private-urls", "--devices", "sim:1",
                     "--webhook-retry-delay", "300ms", "--webhook-attempts",
                     "4"}};
  auto hook = "/flaky/2/hooks/end";
  CHECK(node.vidctl_json({"submit", "--steps", "1", "--webhook-url",
                          web.url(hook), "--wait"})["state"]
        == "succeeded");
  auto posted = web.wait_for_file("hooks/end");
  REQUIRE_FALSE(posted.empty());
  CHECK(json::parse(posted)["state"] == "succeeded");
  CHECK(web.requests_for(hook) == 3);
}
