/// End-to-end tests: real `vidnode` processes on 127.0.0.1 driven by real
/// `vidctl` processes (and by a raw CAF client). Every process is killed
/// and reaped when its test ends.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "gpu/torch_allocations.hpp"
#include "support/media.hpp"
#include "support/http_server.hpp"
#include "support/node_process.hpp"
#include "support/process.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/video.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::child_process;
using test::command_result;
using test::node_process;
using test::run_command;

namespace {

/// Milliseconds between two ISO 8601 timestamps vidctl printed.
double ms_between(const std::string& from, const std::string& to) {
  auto parse = [](const std::string& t) {
    // "2026-11-26T21:48:30.123Z": compare within a day is enough here.
    auto h = std::stoi(t.substr(11, 2));
    auto m = std::stoi(t.substr(14, 2));
    auto s = std::stod(t.substr(17, 6));
    return ((h * 60 + m) * 60 + s) * 1000.0;
  };
  return parse(to) - parse(from);
}

} // namespace

TEST_CASE("twenty simultaneous vidctl submissions on five sim devices all "
          "succeed, one job at a time per device, one model load each",
          "[integration]") {
  node_process node{{"--devices", "sim:5"}};
  // Each job: 10 steps of 100 ms (1 s), no load time.
  std::vector<std::unique_ptr<child_process>> clients;
  for (int i = 0; i < 20; ++i)
    clients.push_back(node.start_vidctl(
      {"submit", "--steps", "10", "--option", "step_ms=100", "--option",
       "load_ms=0", "--seed", std::to_string(i), "--wait", "--json"}));
  std::map<std::string, std::vector<json>> by_device;
  std::string first_accepted = "9";
  std::string last_finished = "0";
  for (auto& client : clients) {
    auto status = client->wait(30s);
    INFO(client->stderr_text());
    REQUIRE(status);
    CHECK(*status == 0);
    auto result = json::parse(client->rest_of_stdout());
    CHECK(result["state"] == "succeeded");
    by_device[result["device"]].push_back(result);
    first_accepted =
      std::min(first_accepted, result["accepted_at"].get<std::string>());
    last_finished =
      std::max(last_finished, result["finished_at"].get<std::string>());
  }
  CHECK(by_device.size() == 5);
  for (auto& [device, jobs] : by_device) {
    INFO(device);
    CHECK(jobs.size() == 4);
    std::sort(jobs.begin(), jobs.end(), [](auto& x, auto& y) {
      return x["started_at"] < y["started_at"];
    });
    for (size_t i = 1; i < jobs.size(); ++i)
      CHECK(jobs[i]["started_at"] >= jobs[i - 1]["finished_at"]);
  }
  for (auto& device : node.vidctl_json({"nodes"})) {
    REQUIRE(device["models"].size() == 1);
    CHECK(device["models"][0]["loads"] == 1);
  }
  // Four waves of 1 s jobs; the clients' own start-up is not counted.
  auto makespan_ms = ms_between(first_accepted, last_finished);
  CHECK(makespan_ms >= 4000);
  CHECK(makespan_ms <= 4400);
}

TEST_CASE("vidnode stops cleanly on SIGTERM with jobs queued and running, "
          "and its waiting clients learn that their jobs were cancelled",
          "[integration]") {
  node_process node{{"--devices", "sim:1"}};
  auto running = node.vidctl({"submit", "--steps", "100", "--option",
                              "step_ms=100", "--option", "load_ms=0"});
  auto queued =
    node.vidctl({"submit", "--steps", "100", "--option", "step_ms=100"});
  REQUIRE(running.status == 0);
  REQUIRE(queued.status == 0);
  auto watch_running = node.start_vidctl({"watch", "1"});
  auto watch_queued = node.start_vidctl({"watch", "2"});
  // The first line of a watch is the job's state when it subscribed.
  auto line1 = watch_running->read_line(10s);
  auto line2 = watch_queued->read_line(10s);
  REQUIRE(line1);
  REQUIRE(line2);
  CHECK_THAT(*line1, Catch::Contains("running"));
  CHECK_THAT(*line2, Catch::Contains("queued"));
  auto stopping = std::chrono::steady_clock::now();
  node.process->signal(SIGTERM);
  auto status = node.process->wait(5s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(std::chrono::steady_clock::now() - stopping < 3s);
  for (auto* watcher : {watch_running.get(), watch_queued.get()}) {
    auto exit = watcher->wait(10s);
    REQUIRE(exit);
    INFO("vidctl watch said: " << watcher->stderr_text());
    INFO("vidnode said: " << node.process->stderr_text());
    CHECK(*exit == 1);
    CHECK_THAT(watcher->rest_of_stdout(), Catch::Contains("cancelled")
                                            && Catch::Contains("shutting "
                                                               "down"));
  }
}

TEST_CASE("a vidctl watching a node that is killed reports node_lost once "
          "its --timeout has passed without the node coming back",
          "[integration]") {
  node_process node{{"--devices", "sim:1"}};
  auto submitted =
    node.vidctl({"submit", "--steps", "100", "--option", "step_ms=100"});
  REQUIRE(submitted.status == 0);
  auto watcher = node.start_vidctl({"--timeout", "1s", "watch", "1"});
  REQUIRE(watcher->read_line(10s));
  auto killed = std::chrono::steady_clock::now();
  node.process->signal(SIGKILL);
  auto exit = watcher->wait(10s);
  REQUIRE(exit);
  CHECK(*exit == 3);
  // Noticed at once, then 1 s of attempts to connect again.
  CHECK(std::chrono::steady_clock::now() - killed < 3s);
  CHECK_THAT(watcher->stderr_text(), Catch::Contains("node_lost"));
}

TEST_CASE("a raw CAF client gets typed errors for malformed requests, "
          "cannot send the node's internal messages, and the node keeps "
          "serving",
          "[integration]") {
  node_process node{{"--devices", "sim:1"}};
  net::process_config cfg;
  caf::actor_system sys{cfg};
  {
    auto typed = sys.middleman().remote_actor<runtime::admission_actor>(
      "127.0.0.1", node.port);
    REQUIRE(typed);
    // Untyped, so that messages outside the protocol can be sent too.
    auto remote = caf::actor_cast<caf::actor>(*typed);
    caf::scoped_actor self{sys};
    runtime::job_spec bad;
    bad.width = 17;
    self->request(remote, 10s, runtime::submit_atom::value, bad)
      .receive([](runtime::job_id) { FAIL("a bad width was accepted"); },
               [](caf::error& err) {
                 CHECK(runtime::is(err, runtime::errc::invalid_request));
                 CHECK_THAT(runtime::describe(err), Catch::Contains("width"));
               });
    // A message the protocol does not have.
    self
      ->request(remote, 10s, runtime::submit_atom::value,
                std::string{"not a job"})
      .receive(
        [](runtime::job_id) { FAIL("a string was accepted"); },
        [](caf::error& err) { CHECK(err == caf::sec::unexpected_message); });
    // Only the client protocol is published, not the node's own messages.
    self->request(remote, 10s, caf::atom("shutdown"))
      .receive(
        [](caf::ok_atom) { FAIL("a remote client shut the node down"); },
        [](caf::error& err) { CHECK(err == caf::sec::unexpected_message); });
    self->send(remote, caf::atom("detach"), int32_t{0},
               runtime::make_error(runtime::errc::worker_lost, "spoofed"),
               true);
    runtime::job_spec good;
    good.steps = 1;
    good.options["step_ms"] = "1";
    self->request(remote, 10s, runtime::execute_atom::value, good)
      .receive(
        [](runtime::job_result& result) {
          CHECK(result.state == runtime::job_state::succeeded);
          CHECK(result.device == "sim:0");
        },
        [](caf::error& err) { FAIL(runtime::describe(err)); });
    self->request(remote, 10s, runtime::nodes_atom::value)
      .receive(
        [](std::vector<runtime::device_status>& devices) {
          REQUIRE(devices.size() == 1);
          CHECK(devices[0].state == "idle");
        },
        [](caf::error& err) { FAIL(runtime::describe(err)); });
  }
  sys.middleman().stop();
}

TEST_CASE("a remote client cannot end the node with exit messages",
          "[integration]") {
  node_process node{{"--devices", "sim:1"}};
  auto submitted =
    node.vidctl({"submit", "--steps", "50", "--option", "step_ms=100"});
  REQUIRE(submitted.status == 0);
  {
    net::process_config cfg;
    caf::actor_system sys{cfg};
    auto remote = sys.middleman().remote_actor<runtime::admission_actor>(
      "127.0.0.1", node.port);
    REQUIRE(remote);
    caf::scoped_actor self{sys};
    // A trappable exit is ignored by the gateway.
    self->send_exit(*remote, caf::exit_reason::user_shutdown);
    self->request(*remote, 10s, runtime::status_atom::value, runtime::job_id{1})
      .receive(
        [](runtime::job_result& r) {
          CHECK(r.state == runtime::job_state::running);
        },
        [](caf::error& err) { FAIL(runtime::describe(err)); });
    // A kill ends the gateway, which is replaced at once.
    self->send_exit(*remote, caf::exit_reason::kill);
    sys.middleman().stop();
  }
  // The replacement gateway is published within moments; the job kept
  // running meanwhile.
  command_result status;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  do {
    status = node.vidctl({"status", "1", "--json"});
  } while (status.status != 0 && std::chrono::steady_clock::now() < deadline);
  INFO(status.err);
  REQUIRE(status.status == 0);
  CHECK(json::parse(status.out)["state"] == "running");
  CHECK(node.vidctl({"submit", "--steps", "1"}).status == 0);
}

TEST_CASE("vidctl reports errors on stderr with documented exit statuses",
          "[integration]") {
  node_process node{{"--devices", "sim:1"}};
  SECTION("an unknown job is refused with status 4") {
    auto r = node.vidctl({"status", "12345"});
    CHECK(r.status == 4);
    CHECK_THAT(r.err, Catch::Contains("unknown_job"));
  }
  SECTION("a malformed request is refused with status 4, as JSON with "
          "--json") {
    auto r = node.vidctl({"submit", "--width", "17", "--json"});
    CHECK(r.status == 4);
    auto error = json::parse(r.err)["error"];
    CHECK(error["code"] == "invalid_request");
    CHECK_THAT(error["message"].get<std::string>(), Catch::Contains("width"));
  }
  SECTION("bad usage exits with status 2 before connecting") {
    CHECK(node.vidctl({"submit", "--option", "novalue"}).status == 2);
    CHECK(node.vidctl({"status", "abc"}).status == 2);
    CHECK(node.vidctl({"frobnicate"}).status == 2);
    CHECK(node.vidctl({"submit", "--queue-timeout", "soon"}).status == 2);
  }
  SECTION("a job that fails makes wait exit with status 1") {
    auto id = node.vidctl({"submit", "--steps", "2", "--option",
                           "fault=crash-always@1", "--option", "step_ms=1"});
    REQUIRE(id.status == 0);
    auto r =
      node.vidctl({"wait", id.out.substr(0, id.out.size() - 1), "--json"});
    CHECK(r.status == 1);
    CHECK(json::parse(r.out)["state"] == "failed");
  }
  SECTION("a node that is not there exits with status 3") {
    node.process->signal(SIGTERM);
    REQUIRE(node.process->wait(5s));
    auto r = node.vidctl({"list"});
    CHECK(r.status == 3);
    CHECK_THAT(r.err, Catch::Contains("cannot connect"));
  }
}

TEST_CASE("an out-of-memory failure through vidnode is retried on a "
          "restarted worker and shown in nodes",
          "[integration]") {
  node_process node{{"--devices", "sim:1"}};
  auto result =
    node.vidctl_json({"submit", "--steps", "4", "--option", "step_ms=10",
                      "--option", "fault=oom@2", "--wait"});
  CHECK(result["state"] == "succeeded");
  CHECK(result["attempts"] == 2);
  auto devices = node.vidctl_json({"nodes"});
  REQUIRE(devices.size() == 1);
  CHECK(devices[0]["restarts"] == 1);
  CHECK_THAT(devices[0]["last_error"].get<std::string>(),
             Catch::Contains("out_of_memory"));
}

TEST_CASE("vidnode refuses bad settings with a clear error", "[integration]") {
  auto start = [](std::vector<std::string> args) {
    std::vector<std::string> argv = {VIDNODE_BIN, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 10s);
  };
  auto r = start({"--devices", "gpu:2"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("devices"));
  r = start({"--max-concurrency", "0"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("max-concurrency"));
  r = start({"--queue-timeout", "forever"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("queue-timeout"));
  char config_path[] = "/tmp/vidnode-test-config-XXXXXX";
  auto fd = mkstemp(config_path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out{config_path};
    out << "max-concurency = 2\n";
  }
  r = start({"--config", config_path});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Catch::Contains("max-concurency"));
  std::remove(config_path);
}

TEST_CASE("vidnode reads its settings from a config file", "[integration]") {
  char config_path[] = "/tmp/vidnode-test-config-XXXXXX";
  auto fd = mkstemp(config_path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out{config_path};
    out << "devices = \"sim:2:8GiB\"\nmax-concurrency = 3\n";
  }
  node_process node{{"--config", config_path}};
  std::remove(config_path);
  auto devices = node.vidctl_json({"nodes"});
  REQUIRE(devices.size() == 2);
  CHECK(devices[0]["slots"] == 3);
  CHECK(devices[0]["memory_bytes"] == 8ull << 30);
}

TEST_CASE("a second vidnode on a port in use fails with a clear error",
          "[integration]") {
  node_process first{{"--devices", "sim:1"}};
  auto r = run_command(
    {VIDNODE_BIN, "--listen", first.address, "--devices", "sim:1"}, 10s);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Catch::Contains("cannot listen on " + first.address));
}

TEST_CASE("tiny-t2v runs end to end on a cpu device: the MP4 has the "
          "requested frames, size and rate, and the same seed gives the same "
          "video",
          "[integration][torch]") {
  if (!gpu::torch_available() || !gpu::video_encoding_available()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  auto dir = std::filesystem::temp_directory_path()
             / ("vidnode-e2e-" + std::to_string(getpid()));
  node_process node{{"--devices", "cpu:1", "--output-dir", dir.string()}};
  auto submit = [&](const std::string& seed) {
    return node.vidctl_json({"submit", "--model", "tiny-t2v", "--prompt",
                             "a red fox in the snow", "--width", "128",
                             "--height", "96", "--frames", "8", "--steps", "4",
                             "--fps", "8", "--seed", seed, "--wait"});
  };
  auto first = submit("42");
  REQUIRE(first["state"] == "succeeded");
  auto path = first["output"].get<std::string>();
  CHECK(path == (dir / "job-1.mp4").string());
  std::string error;
  auto info = gpu::probe_video(path, error);
  INFO(error);
  REQUIRE(info);
  CHECK(info->codec == "h264");
  CHECK(info->width == 128);
  CHECK(info->height == 96);
  CHECK(info->frames == 8);
  CHECK(info->fps == Approx(8.0));
  auto bytes = [](const std::string& file) {
    std::ifstream in{file, std::ios::binary};
    return std::string{std::istreambuf_iterator<char>{in}, {}};
  };
  auto again = submit("42");
  REQUIRE(again["state"] == "succeeded");
  CHECK(bytes(again["output"]) == bytes(path));
  auto other = submit("43");
  REQUIRE(other["state"] == "succeeded");
  CHECK(bytes(other["output"]) != bytes(path));
  // A device's next job starts while the previous job's video is written.
  // The first job computes long enough (60 steps) for the second to be
  // queued behind it, even under sanitizers or a loaded machine (20 steps
  // were not enough with a load of 4 on 2 cores).
  std::vector<std::string> ids;
  for (auto steps : {"60", "2"}) {
    auto submitted =
      node.vidctl({"submit", "--model", "tiny-t2v", "--width", "128",
                   "--height", "96", "--frames", "8", "--steps", steps});
    REQUIRE(submitted.status == 0);
    ids.push_back(submitted.out.substr(0, submitted.out.size() - 1));
  }
  auto earlier = node.vidctl_json({"wait", ids[0]});
  auto later = node.vidctl_json({"wait", ids[1]});
  REQUIRE(earlier["state"] == "succeeded");
  REQUIRE(later["state"] == "succeeded");
  REQUIRE(later["accepted_at"].get<std::string>()
          < earlier["computed_at"].get<std::string>());
  CHECK(later["started_at"].get<std::string>()
        >= earlier["computed_at"].get<std::string>());
  CHECK(later["started_at"].get<std::string>()
        < earlier["finished_at"].get<std::string>());
  // The model was loaded once on the device.
  auto devices = node.vidctl_json({"nodes"});
  REQUIRE(devices.size() == 1);
  REQUIRE(devices[0]["models"].size() == 1);
  CHECK(devices[0]["models"][0]["loads"] == 1);
  std::filesystem::remove_all(dir);
}

#ifdef TOY_TORCHSCRIPT_BIN
TEST_CASE("vidnode serves a user's TorchScript model by name and refuses to "
          "start with one that breaks the contract",
          "[integration][torch]") {
  auto dir = std::filesystem::temp_directory_path()
             / ("vidnode-ts-e2e-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto good = (dir / "toy.pt").string();
  auto broken = (dir / "broken.pt").string();
  REQUIRE(run_command({TOY_TORCHSCRIPT_BIN, good}).status == 0);
  REQUIRE(run_command({TOY_TORCHSCRIPT_BIN, broken, "--broken"}).status == 0);
  {
    node_process node{{"--devices", "cpu:1", "--torchscript", "toy=" + good,
                       "--output-dir", dir.string()}};
    auto result = node.vidctl_json({"submit", "--model", "toy", "--width", "64",
                                    "--height", "32", "--frames", "6",
                                    "--steps", "3", "--fps", "6", "--wait"});
    REQUIRE(result["state"] == "succeeded");
    std::string error;
    auto info = gpu::probe_video(result["output"], error);
    INFO(error);
    REQUIRE(info);
    CHECK(info->frames == 6);
    CHECK(info->width == 64);
    CHECK(info->height == 32);
    // Its estimate_bytes: 6 * 32 * 64 * 64 + 64 MiB.
    CHECK(result["reserved_bytes"] == 6 * 32 * 64 * 64 + (64 << 20));
  }
  auto refused =
    run_command({VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices", "cpu:1",
                 "--torchscript", "bad=" + broken},
                10s);
  CHECK(refused.status == 2);
  CHECK_THAT(refused.err, Catch::Contains("lacks the method decode"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a job larger than the host can allocate on a cpu device fails with "
          "out_of_memory, retried with a raised estimate where a device is "
          "large enough",
          "[integration][torch]") {
  auto path = (std::filesystem::temp_directory_path()
               / ("vidnode-greedy-" + std::to_string(getpid()) + ".pt"))
                .string();
  test::write_greedy_model(path, test::unmappable_bytes);
  auto needs = std::to_string(test::unmappable_bytes);
  std::vector<std::string> submit = {
    "submit",   "--model", "greedy",  "--width", "64",     "--height", "32",
    "--frames", "4",       "--steps", "2",       "--wait", "--json"};
  {
    node_process node{
      {"--devices", "cpu:1:2048TiB", "--torchscript", "greedy=" + path}};
    auto r = node.vidctl(submit);
    INFO(r.err);
    CHECK(r.status == 1);
    auto result = json::parse(r.out);
    CHECK(result["state"] == "failed");
    CHECK(result["attempts"] == 2);
    CHECK(result["error"]["code"] == "out_of_memory");
    CHECK_THAT(result["error"]["message"].get<std::string>(),
               Catch::Contains("you tried to allocate " + needs + " bytes"));
    CHECK(result["reserved_bytes"].get<uint64_t>()
          > static_cast<uint64_t>(test::unmappable_bytes));
  }
  {
    node_process node{
      {"--devices", "cpu:1:64GiB", "--torchscript", "greedy=" + path}};
    auto r = node.vidctl(submit);
    INFO(r.err);
    CHECK(r.status == 1);
    auto result = json::parse(r.out);
    CHECK(result["attempts"] == 1);
    CHECK(result["error"]["code"] == "out_of_memory");
    CHECK_THAT(result["error"]["message"].get<std::string>(),
               Catch::Contains("more than any device has"));
  }
  std::filesystem::remove(path);
}
#endif

TEST_CASE("a job's video is uploaded to its output URL and its webhook "
          "receives the result",
          "[integration][transfers][torch]") {
  if (!gpu::torch_available() || !gpu::video_encoding_available()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  test::http_server web;
  auto dir = web.root() / "node-output";
  node_process node{{"--allow-private-urls", "--devices", "cpu:1",
                     "--output-dir", dir.string()}};
  auto result =
    node.vidctl_json({"submit", "--model", "tiny-t2v", "--width", "64",
                      "--height", "32", "--frames", "4", "--steps", "1",
                      "--output-url", web.url("/flaky/1/uploads/clip.mp4"),
                      "--webhook-url", web.url("/hooks/ended"), "--wait"});
  CHECK(result["state"] == "succeeded");
  CHECK(result["output"] == web.url("/flaky/1/uploads/clip.mp4"));
  auto uploaded = web.read("uploads/clip.mp4");
  std::ifstream local{dir / "job-1.mp4", std::ios::binary};
  CHECK(uploaded.size() > 100);
  CHECK(uploaded == std::string{std::istreambuf_iterator<char>{local}, {}});
  // The webhook is posted after the job ended; wait for it briefly.
  std::string posted;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((posted = web.read("hooks/ended")).empty()
         && std::chrono::steady_clock::now() < deadline)
    node.vidctl({"status", "1"});
  REQUIRE_FALSE(posted.empty());
  auto hook = json::parse(posted);
  CHECK(hook["id"] == 1);
  CHECK(hook["state"] == "succeeded");
  CHECK(hook["output"] == result["output"]);
}

TEST_CASE("an audio track fetched from a URL is muxed into the video",
          "[integration][transfers][torch]") {
  if (!gpu::torch_available() || !gpu::video_encoding_available()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  test::http_server web;
  auto wav = test::silent_wav_second();
  web.serve("voice.wav", wav);
  auto dir = web.root() / "node-output";
  node_process node{{"--allow-private-urls", "--devices", "cpu:1",
                     "--output-dir", dir.string()}};
  auto result = node.vidctl_json({"submit", "--model", "tiny-t2v", "--width",
                                  "64", "--height", "32", "--frames", "16",
                                  "--fps", "8", "--steps", "1", "--audio-url",
                                  web.url("/files/voice.wav"), "--wait"});
  REQUIRE(result["state"] == "succeeded");
  std::string error;
  auto info = gpu::probe_video(result["output"], error);
  INFO(error);
  REQUIRE(info);
  CHECK(info->has_audio);
  CHECK(info->frames == 16);
  CHECK(info->audio_seconds == Approx(2.0).margin(0.05)); // 16 frames at 8
  // The fetched input is removed when the job ends.
  CHECK_FALSE(std::filesystem::exists(dir / "inputs" / "job-1-audio"));
}

TEST_CASE("an audio URL that cannot be fetched fails the job with a typed "
          "error naming the URL, before any device time is spent",
          "[integration][transfers]") {
  test::http_server web;
  node_process node{{"--allow-private-urls", "--devices", "sim:1"}};
  auto url = web.url("/files/missing.wav");
  auto r =
    node.vidctl({"submit", "--steps", "2", "--audio-url", url, "--webhook-url",
                 web.url("/hooks/failed"), "--wait", "--json"});
  CHECK(r.status == 1);
  auto result = json::parse(r.out);
  CHECK(result["state"] == "failed");
  CHECK(result["attempts"] == 0);
  CHECK(result["error"]["code"] == "transfer_failed");
  CHECK_THAT(result["error"]["message"].get<std::string>(),
             Catch::Contains(url) && Catch::Contains("HTTP 404"));
}

TEST_CASE("an audio URL that serves HTML or nothing fails the job as an "
          "invalid request naming audio_url, before it reaches a device",
          "[integration][transfers]") {
  test::http_server web;
  web.serve("login.html", "<!DOCTYPE html>\n<html><body><p>Please sign "
                          "in.</p></body></html>\n");
  web.serve("empty.wav", "");
  auto dir = web.root() / "node-output";
  node_process node{{"--allow-private-urls", "--devices", "sim:1",
                     "--output-dir", dir.string()}};
  for (auto [name, reason] :
       {std::pair{"login.html", "not audio FFmpeg can decode"},
        std::pair{"empty.wav", "it is empty"}}) {
    auto url = web.url("/files/" + std::string{name});
    auto r = node.vidctl(
      {"submit", "--steps", "2", "--audio-url", url, "--wait", "--json"});
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    auto result = json::parse(r.out);
    CHECK(result["state"] == "failed");
    CHECK(result["error"]["code"] == "invalid_request");
    auto message = result["error"]["message"].get<std::string>();
    CHECK_THAT(message, Catch::Contains("audio_url: " + url + ": "));
    CHECK_THAT(message, Catch::Contains(gpu::video_encoding_available()
                                          ? reason
                                          : "without FFmpeg"));
    CHECK(result["attempts"] == 0);
    CHECK(result["device"].is_null());
    CHECK(result["started_at"].is_null());
    CHECK(result["run_time_s"] == 0);
  }
  // The fetched files are removed.
  CHECK_FALSE(std::filesystem::exists(dir / "inputs" / "job-1-audio"));
  CHECK_FALSE(std::filesystem::exists(dir / "inputs" / "job-2-audio"));
}

TEST_CASE("vidnode stops within seconds even while a download stalls",
          "[integration][transfers]") {
  test::http_server web;
  node_process node{{"--allow-private-urls", "--devices", "sim:1"}};
  auto watcher = node.start_vidctl(
    {"submit", "--audio-url", web.url("/stall/a.wav"), "--wait", "--json"});
  // The job is accepted (its download under way) once it is listed.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (node.vidctl({"status", "1"}).status != 0
         && std::chrono::steady_clock::now() < deadline)
    ;
  REQUIRE(node.vidctl({"status", "1"}).status == 0);
  auto stopping = std::chrono::steady_clock::now();
  node.process->signal(SIGTERM);
  auto status = node.process->wait(10s);
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(std::chrono::steady_clock::now() - stopping < 5s);
  auto exit = watcher->wait(10s);
  REQUIRE(exit);
  CHECK(*exit == 1);
  CHECK(json::parse(watcher->rest_of_stdout())["state"] == "cancelled");
}

TEST_CASE("a failed upload fails the job and says where the video is kept",
          "[integration][transfers][torch]") {
  if (!gpu::torch_available() || !gpu::video_encoding_available()) {
    WARN("skipped: this build lacks libtorch or FFmpeg");
    return;
  }
  test::http_server web;
  auto dir = web.root() / "node-output";
  node_process node{{"--allow-private-urls", "--devices", "cpu:1",
                     "--output-dir", dir.string()}};
  auto r =
    node.vidctl({"submit", "--model", "tiny-t2v", "--width", "64", "--height",
                 "32", "--frames", "2", "--steps", "1", "--output-url",
                 web.url("/status/403/clip.mp4"), "--wait", "--json"});
  CHECK(r.status == 1);
  auto result = json::parse(r.out);
  CHECK(result["state"] == "failed");
  CHECK(result["error"]["code"] == "transfer_failed");
  CHECK_THAT(result["error"]["message"].get<std::string>(),
             Catch::Contains("HTTP 403")
               && Catch::Contains((dir / "job-1.mp4").string()));
}

TEST_CASE("a node without transfers refuses jobs that name URLs",
          "[transfers]") {
  // Embedded nodes get no transfers unless the application passes some.
  net::process_config cfg;
  caf::actor_system sys{cfg};
  runtime::node_settings settings;
  settings.devices = "sim:1";
  auto node = actors::local_node::start(sys, settings);
  REQUIRE(node);
  caf::scoped_actor self{sys};
  runtime::job_spec spec;
  spec.webhook_url = "http://127.0.0.1:1/hook";
  self->request((*node)->admission(), 10s, runtime::submit_atom::value, spec)
    .receive([](runtime::job_id) { FAIL("accepted"); },
             [](caf::error& err) {
               CHECK(runtime::is(err, runtime::errc::invalid_request));
               CHECK_THAT(runtime::describe(err),
                          Catch::Contains("cannot fetch or send files"));
             });
  (*node)->stop();
}

TEST_CASE("a default vidnode refuses file URLs and loopback or private "
          "targets at submission, naming the field and the setting that "
          "allows them",
          "[integration][transfers]") {
  node_process node{{"--devices", "sim:1"}};
  auto refusal = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "submit");
    args.push_back("--json");
    auto r = node.vidctl(args);
    INFO(r.err);
    CHECK(r.status == 4);
    auto error = json::parse(r.err)["error"];
    CHECK(error["code"] == "invalid_request");
    return error["message"].get<std::string>();
  };
  CHECK(refusal({"--audio-url", "file:///etc/passwd"})
        == "invalid_request: audio_url: refused: file URLs are not allowed "
           "(vidnode "
           "--allow-file-urls DIR allows those of files inside DIR)");
  CHECK(refusal({"--webhook-url", "http://127.0.0.1:9/hook"})
        == "invalid_request: webhook_url: refused: 127.0.0.1 is a loopback "
           "address (vidnode "
           "--allow-private-urls allows it)");
  CHECK_THAT(refusal({"--output-url", "http://[fd00::1]/x.mp4"}),
             Catch::StartsWith(
               "invalid_request: output_url: refused: fd00::1 is a private "
               "address"));
  CHECK_THAT(
    refusal({"--audio-url", "http://localhost:9/a.wav"}),
    Catch::StartsWith("invalid_request: audio_url: refused: localhost is the "
                      "loopback interface"));
  // Nothing was accepted.
  CHECK(node.vidctl_json({"list"}).empty());
}

TEST_CASE("vidnode --allow-file-urls DIR accepts file URLs of files inside "
          "DIR only",
          "[integration][transfers]") {
  auto top = std::filesystem::temp_directory_path()
             / ("vidnode-file-urls-" + std::to_string(getpid()));
  std::filesystem::create_directories(top / "audio");
  std::ofstream{top / "audio" / "a.wav"} << "not really audio";
  std::ofstream{top / "secret"} << "secret";
  std::filesystem::create_symlink(top / "secret", top / "audio" / "link");
  node_process node{
    {"--devices", "sim:1", "--allow-file-urls", (top / "audio").string()}};
  auto inside = node.vidctl(
    {"submit", "--audio-url", "file://" + (top / "audio" / "a.wav").string()});
  INFO(inside.err);
  CHECK(inside.status == 0);
  for (auto outside : {top / "secret", top / "audio" / "link",
                       top / "audio" / ".." / "secret"}) {
    auto r =
      node.vidctl({"submit", "--audio-url", "file://" + outside.string()});
    INFO(r.err);
    CHECK(r.status == 4);
    CHECK_THAT(r.err, Catch::Contains("audio_url: refused:")
                        && Catch::Contains("is not inside"));
  }
  // Still no loopback targets: the two settings are separate.
  auto hook = node.vidctl({"submit", "--webhook-url", "http://127.0.0.1:9/"});
  CHECK(hook.status == 4);
  std::filesystem::remove_all(top);
}

TEST_CASE("a node opens no cluster port unless --cluster-listen asks, so two "
          "nodes run side by side on one machine",
          "[integration][cluster]") {
  auto start = [] {
    return std::make_unique<test::child_process>(std::vector<std::string>{
      VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices", "sim:1",
      "--log-level", "warn"});
  };
  auto first = start();
  auto second = start();
  for (auto* node : {first.get(), second.get()}) {
    auto line = node->read_line(20s);
    INFO(node->stderr_text());
    REQUIRE(line);
    CHECK(line->rfind("vidnode listening on 127.0.0.1:", 0) == 0);
    node->signal(SIGTERM);
    REQUIRE(node->wait(30s) == 0);
    CHECK(node->rest_of_stdout().find("accepting worker nodes")
          == std::string::npos);
  }
}
