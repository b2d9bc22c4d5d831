/// The HTTP gateway's jobs end to end on a real `vidnode` on 127.0.0.1:
/// Range requests on video links, retry of a failed job, webhooks and
/// their retries, and the API key file read again.

#include <catch2/catch.hpp>

#include "integration/http_gateway_fixture.hpp"

using namespace vidnode::test::http_gateway;

TEST_CASE("HTTP gateway: Range requests on a video_url answer 206 with the "
          "file's slice, and a bad signature gets 401",
          "[http]") {
  gateway_node node;
  auto id = node.run({{"prompt", "range"}});
  auto done = node.wait_for_state(id, "COMPLETED");
  INFO(done.dump());
  auto url = done.at("output").at("video_url").get<std::string>();
  auto path = path_of(url);
  auto anonymous = node.client(std::nullopt);

  auto full = answer_of(anonymous->Get(path.c_str()));
  REQUIRE(full.status == 200);
  REQUIRE(full.body.size() > 200);
  CHECK(full.body.substr(4, 4) == "ftyp");
  auto size = std::to_string(full.body.size());

  struct range_case {
    std::string range;
    size_t first;
    size_t last;
  };
  const auto n = full.body.size();
  const std::vector<range_case> ranges = {
    {"bytes=0-0", 0, 0},
    {"bytes=10-99", 10, 99},
    {"bytes=100-", 100, n - 1},
    {"bytes=-16", n - 16, n - 1},
    {"bytes=" + std::to_string(n - 1) + "-" + std::to_string(n + 100), n - 1,
     n - 1},
  };
  for (const auto& r : ranges) {
    INFO("Range: " << r.range);
    auto part = answer_of(
      anonymous->Get(path.c_str(), httplib::Headers{{"Range", r.range}}));
    CHECK(part.status == 206);
    CHECK(part.header("Content-Range")
          == "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last)
               + "/" + size);
    CHECK(part.body == full.body.substr(r.first, r.last - r.first + 1));
  }
  auto beyond = answer_of(anonymous->Get(
    path.c_str(), httplib::Headers{{"Range", "bytes=" + size + "-"}}));
  CHECK(beyond.status == 416);
  CHECK(beyond.header("Content-Range") == "bytes */" + size);
  CHECK(beyond.parsed().at("code") == "range_not_satisfiable");
  auto far = answer_of(
    anonymous->Get(path.c_str(), httplib::Headers{{"Range", "bytes=999999-"}}));
  CHECK(far.status == 416);
  auto empty_suffix = answer_of(
    anonymous->Get(path.c_str(), httplib::Headers{{"Range", "bytes=-0"}}));
  CHECK(empty_suffix.status == 416);
  auto several = answer_of(
    anonymous->Get(path.c_str(), httplib::Headers{{"Range", "bytes=0-0,5-9"}}));
  CHECK(several.status == 200);
  CHECK(several.body == full.body);
  CHECK(full.header("Accept-Ranges") == "bytes");

  auto sig = path.find("sig=");
  REQUIRE(sig != std::string::npos);
  auto tampered = path;
  auto& flipped = tampered[sig + 4];
  flipped = flipped == 'A' ? 'B' : 'A';
  require_error(answer_of(anonymous->Get(tampered.c_str())), 401, "");
  require_error(answer_of(anonymous->Get(path.substr(0, sig - 1).c_str())), 401,
                "");
  require_error(answer_of(anonymous->Get(
                  tampered.c_str(), httplib::Headers{{"Range", "bytes=0-99"}})),
                401, "");
}

TEST_CASE("HTTP gateway: retry of a FAILED job queues the same id again, "
          "which then completes",
          "[http][retry]") {
  // A long job takes sim:0, the first of two idle devices, so the job whose
  // fault fires on sim:1 runs there and fails. Once the long job is
  // cancelled, the retry goes to sim:0, which has the model loaded.
  gateway_node node{{"--max-attempts", "1"}, "sim:2"};
  auto blocker = node.run({{"num_inference_steps", 600}, {"step_ms", 100}});
  node.wait_for_state(blocker, "IN_PROGRESS");
  REQUIRE(node.status(blocker).at("workerId").get<std::string>().find("sim:0")
          != std::string::npos);
  auto id = node.run({{"prompt", "flaky"}, {"fault", "crash-on-sim:1@1"}});
  auto failed = node.wait_for_state(id, "FAILED");
  INFO(failed.dump());
  CHECK(failed.contains("error"));
  REQUIRE(node.post("/v2/sim/cancel/" + blocker, json::object()).status == 200);
  auto reply = node.post("/v2/sim/retry/" + id, json::object());
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  CHECK(reply.parsed().value("id", "") == id);
  CHECK(reply.parsed().value("status", "") == "IN_QUEUE");
  auto done = node.wait_for(id, [](const json& s) {
    return s.at("status") != "IN_QUEUE" && s.at("status") != "IN_PROGRESS";
  });
  INFO(done.dump());
  CHECK(done.at("status") == "COMPLETED");
  CHECK_FALSE(done.contains("error"));
  CHECK(done.at("output").value("video_url", "").rfind("http://", 0) == 0);
  auto health = node.get("/v2/sim/health").parsed();
  CHECK(health.at("jobs").at("retried") == 1);
  CHECK(health.at("jobs").at("failed") == 0);

  auto completed = node.post("/v2/sim/retry/" + id, json::object());
  CHECK(completed.status >= 400);
  CHECK(completed.status < 500);
}

TEST_CASE("HTTP gateway: a webhook gets the status body once the job ends, "
          "and a non-2xx answer is retried",
          "[http][webhook]") {
  webhook_receiver receiver;
  receiver.answer_with("/flaky", {500, 500});
  gateway_node node{{"--allow-private-urls", "--webhook-attempts", "3",
                     "--webhook-retry-delay", "200ms"}};

  auto id = node.run({{"prompt", "hook"}}, {{"webhook", receiver.url("/ok")}});
  auto bodies = receiver.wait_for("/ok", 1, 30s);
  REQUIRE(bodies.size() == 1);
  check_webhook_shape(bodies.front(), id);
  auto status = node.status(id);
  auto hook = json::parse(bodies.front(), nullptr, false);
  CHECK((hook.is_object() && hook.contains("output")
         && hook.at("output") == status.at("output")));

  auto flaky =
    node.run({{"prompt", "hook"}}, {{"webhook", receiver.url("/flaky")}});
  bodies = receiver.wait_for("/flaky", 3, 30s);
  REQUIRE(bodies.size() == 3);
  for (const auto& body : bodies)
    check_webhook_shape(body, flaky);
  CHECK(receiver.wait_for("/flaky", 4, 1s).size() == 3);
  CHECK(receiver.wait_for("/ok", 2, 10ms).size() == 1);
}

TEST_CASE("HTTP gateway: the API key file is read again when it changes, and "
          "at once on SIGHUP",
          "[http][keys]") {
  gateway_node node;
  auto old_key = node.key;
  REQUIRE(node.get("/v2/sim/health", old_key).status == 200);

  std::string new_key = "rotated-key-1";
  vidnode::test::write_file(node.keys_path(), "# rotated\n" + new_key + "\n");
  auto until = clock_type::now() + 3s;
  while (node.get("/v2/sim/health", new_key).status != 200) {
    REQUIRE(clock_type::now() < until);
    std::this_thread::sleep_for(50ms);
  }
  require_error(node.get("/v2/sim/health", old_key), 401, "");
  require_error(node.get("/v2/sim/health", "Bearer " + old_key), 401, "");
  CHECK(node.get("/v2/sim/health", "Bearer " + new_key).status == 200);

  // A change the file's own check cannot see (same inode, same size, the
  // modification time put back) is only read on SIGHUP.
  std::string third_key = "rotated-key-2";
  auto written = std::filesystem::last_write_time(node.keys_path());
  vidnode::test::write_file(node.keys_path(), "# rotated\n" + third_key + "\n");
  std::filesystem::last_write_time(node.keys_path(), written);
  // Three of the file's checks pass by, and the old key still works.
  until = clock_type::now() + 3s;
  while (clock_type::now() < until) {
    REQUIRE(node.get("/v2/sim/health", new_key).status == 200);
    std::this_thread::sleep_for(20ms);
  }
  node.node->process->signal(SIGHUP);
  until = clock_type::now() + 5s;
  while (node.get("/v2/sim/health", third_key).status != 200) {
    REQUIRE(clock_type::now() < until);
    std::this_thread::sleep_for(10ms);
  }
  require_error(node.get("/v2/sim/health", new_key), 401, "");
  CHECK_FALSE(node.node->process->wait(0ms));
}
