#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>

#include "http_console.hpp"
#include "http_runpod.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace vidnode;
using runtime::errc;

namespace {

/// The console's routes on a loopback port, against a backend whose
/// answers the test sets; the key is "k1".
struct console_fixture {
  std::mutex mtx;
  std::vector<runtime::job_result> jobs;
  caf::error next_error;
  std::atomic<int> reads{0};
  httplib::Server server;
  std::thread thread;
  int port = 0;

  explicit console_fixture(int max_streams = 8) {
    auto backend = std::make_shared<net::detail::console_backend>();
    backend->max_streams = max_streams;
    backend->authorized = [](const httplib::Request& req) {
      auto value = req.get_header_value("Authorization");
      return value == "Bearer k1" || value == "k1";
    };
    backend->endpoints = {{"sim", "sim", {{"width", "64"}}, false}};
    backend->nodes = [this]() {
      ++reads;
      runtime::device_status device;
      device.node = "head";
      device.device = "sim:0";
      device.state = "idle";
      device.slots = 1;
      device.memory_bytes = 1 << 30;
      return caf::expected<std::vector<runtime::device_status>>{{device}};
    };
    backend->jobs = [this](const runtime::list_query&) {
      std::lock_guard<std::mutex> guard{mtx};
      return caf::expected<std::vector<runtime::job_result>>{jobs};
    };
    auto answer =
      [this](runtime::job_id id) -> caf::expected<runtime::job_result> {
      std::lock_guard<std::mutex> guard{mtx};
      if (next_error)
        return std::exchange(next_error, caf::error{});
      for (const auto& job : jobs)
        if (job.id == id)
          return job;
      return runtime::make_error(errc::unknown_job, "no job");
    };
    backend->cancel = answer;
    backend->retry = answer;
    backend->submit =
      [this](const std::string&,
             const nlohmann::json& input) -> caf::expected<runtime::job_id> {
      std::lock_guard<std::mutex> guard{mtx};
      if (next_error)
        return std::exchange(next_error, caf::error{});
      runtime::job_result job;
      job.id.value = jobs.size() + 1;
      job.model = "sim";
      job.steps = input.value("num_inference_steps", 20);
      jobs.push_back(job);
      return job.id;
    };
    backend->video_url = [](const runtime::job_result& job) {
      return job.state == runtime::job_state::succeeded
               ? "/video/" + std::to_string(job.id.value)
               : std::string{};
    };
    net::detail::add_console_routes(server, backend);
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread{[this] { server.listen_after_bind(); }};
  }

  ~console_fixture() {
    server.stop();
    thread.join();
  }

  httplib::Client client(const std::string& key = "k1") const {
    httplib::Client result{"127.0.0.1", port};
    if (!key.empty())
      result.set_default_headers({{"Authorization", "Bearer " + key}});
    return result;
  }

  void fail_next(caf::error err) {
    std::lock_guard<std::mutex> guard{mtx};
    next_error = std::move(err);
  }

  void set_state(runtime::job_state state, int32_t step) {
    std::lock_guard<std::mutex> guard{mtx};
    jobs.at(0).state = state;
    jobs.at(0).step = step;
  }
};

nlohmann::json json_of(const httplib::Result& res) {
  REQUIRE(res);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  return nlohmann::json::parse(res->body);
}

/// Polls `holds` every 10 ms until it is true or 5 s have passed; whether
/// it became true. The server's threads are real: the test coordinator
/// cannot step their time.
template <class Predicate>
bool eventually(Predicate holds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  while (!holds()) {
    if (std::chrono::steady_clock::now() >= until)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return true;
}

} // namespace

TEST_CASE("the console's page and files are served with their types and no "
          "caching, without a key",
          "[console]") {
  console_fixture fix;
  auto cli = fix.client("");
  for (auto [path, type] :
       {std::pair{"/", "text/html; charset=utf-8"},
        std::pair{"/console/console.js", "text/javascript; charset=utf-8"},
        std::pair{"/console/console.css", "text/css; charset=utf-8"}}) {
    auto res = cli.Get(path);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == type);
    CHECK(res->get_header_value("Cache-Control") == "no-cache");
    CHECK(res->get_header_value("Content-Security-Policy")
            .find("frame-ancestors 'none'")
          != std::string::npos);
    CHECK(res->body.size() > 100);
  }
  CHECK(cli.Get("/")->body.find("/console/console.js") != std::string::npos);
}

TEST_CASE("the console's API answers a request without a valid key with a "
          "JSON 401",
          "[console]") {
  console_fixture fix;
  for (auto key : {"", "k2"}) {
    auto cli = fix.client(key);
    auto check = [](const httplib::Result& res) {
      REQUIRE(res);
      CHECK(res->status == 401);
      CHECK(json_of(res)["code"] == "unauthorized");
    };
    check(cli.Get("/console/api/state"));
    check(cli.Get("/console/api/events"));
    check(cli.Post("/console/api/jobs/1/cancel"));
    check(cli.Post("/console/api/submit", "{}", "application/json"));
  }
  auto raw = fix.client("");
  auto res = raw.Get("/console/api/state", {{"Authorization", "k1"}});
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("the console's state carries the devices, the jobs with their "
          "video URL and the endpoints",
          "[console]") {
  console_fixture fix;
  auto cli = fix.client();
  auto submitted = cli.Post("/console/api/submit",
                            R"({"endpoint": "sim", "input": {"prompt": "a"}})",
                            "application/json");
  REQUIRE(submitted);
  CHECK(submitted->status == 200);
  CHECK(json_of(submitted) == nlohmann::json{{"id", 1}});
  fix.set_state(runtime::job_state::succeeded, 20);
  // The state is a snapshot shared by every reader, taken at most every
  // 250 ms.
  nlohmann::json state;
  CHECK(eventually([&] {
    auto res = cli.Get("/console/api/state");
    if (!res || res->status != 200)
      return false;
    state = json_of(res);
    return state["jobs"].size() == 1
           && state["jobs"][0]["state"] == "succeeded";
  }));
  REQUIRE(state["nodes"].size() == 1);
  CHECK(state["nodes"][0]["device"] == "sim:0");
  REQUIRE(state["jobs"].size() == 1);
  CHECK(state["jobs"][0]["id"] == 1);
  CHECK(state["jobs"][0]["state"] == "succeeded");
  CHECK(state["jobs"][0]["video_url"] == "/video/1");
  CHECK(state["endpoints"]
        == nlohmann::json::parse(
          R"([{"id": "sim", "model": "sim", "defaults": {"width": "64"}}])"));
}

TEST_CASE("cancel and retry answer the job, or the error with its status",
          "[console]") {
  console_fixture fix;
  auto cli = fix.client();
  cli.Post("/console/api/submit", R"({"endpoint": "sim", "input": {}})",
           "application/json");
  auto res = cli.Post("/console/api/jobs/1/cancel");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(json_of(res)["id"] == 1);
  CHECK(json_of(res)["video_url"].is_null());
  res = cli.Post("/console/api/jobs/7/retry");
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(json_of(res)["code"] == "unknown_job");
  for (auto [code, status] :
       {std::pair{errc::invalid_request, 400}, std::pair{errc::queue_full, 429},
        std::pair{errc::shutting_down, 503}, std::pair{errc::node_lost, 502}}) {
    fix.fail_next(runtime::make_error(code, "because"));
    res = cli.Post("/console/api/jobs/1/retry");
    REQUIRE(res);
    CHECK(res->status == status);
    auto body = json_of(res);
    CHECK(body["code"] == runtime::to_string(code));
    CHECK(body["error"].get<std::string>().find("because")
          != std::string::npos);
  }
}

TEST_CASE("submit refuses a malformed body or an unknown endpoint",
          "[console]") {
  console_fixture fix;
  auto cli = fix.client();
  for (auto body :
       {"", "[]", R"({"endpoint": "sim"})", R"({"endpoint": 1, "input": {}})",
        R"({"endpoint": "sim", "input": "x"})"}) {
    auto res = cli.Post("/console/api/submit", body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(json_of(res)["code"] == "invalid_request");
  }
  auto res =
    cli.Post("/console/api/submit", R"({"endpoint": "other", "input": {}})",
             "application/json");
  REQUIRE(res);
  CHECK(res->status == 404);
  fix.fail_next(runtime::make_error(errc::queue_full, "1 jobs are queued"));
  res = cli.Post("/console/api/submit", R"({"endpoint": "sim", "input": {}})",
                 "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);
  CHECK(json_of(res)["code"] == "queue_full");
}

TEST_CASE("the event stream sends the state when it changes, and only then",
          "[console]") {
  console_fixture fix;
  auto cli = fix.client();
  cli.Post("/console/api/submit", R"({"endpoint": "sim", "input": {}})",
           "application/json");
  std::string text;
  std::mutex text_mtx;
  std::atomic<bool> stop{false};
  std::string content_type;
  std::thread reader{[&] {
    auto stream = fix.client();
    stream.Get(
      "/console/api/events",
      [&](const httplib::Response& res) {
        content_type = res.get_header_value("Content-Type");
        return res.status == 200;
      },
      [&](const char* data, size_t size) {
        std::lock_guard<std::mutex> guard{text_mtx};
        text.append(data, size);
        return !stop.load();
      });
  }};
  auto events = [&] {
    std::lock_guard<std::mutex> guard{text_mtx};
    size_t count = 0;
    for (auto at = text.find("event: state\n"); at != std::string::npos;
         at = text.find("event: state\n", at + 1))
      ++count;
    return count;
  };
  // Unchanged state is read from the backend again and again but not sent
  // again: three more reads after the first event, still one event.
  REQUIRE(eventually([&] { return events() >= 1; }));
  auto reads = fix.reads.load();
  REQUIRE(eventually([&] { return fix.reads.load() >= reads + 3; }));
  CHECK(events() == 1);
  fix.set_state(runtime::job_state::running, 3);
  REQUIRE(eventually([&] { return events() >= 2; }));
  reads = fix.reads.load();
  REQUIRE(eventually([&] { return fix.reads.load() >= reads + 3; }));
  CHECK(events() == 2);
  {
    std::lock_guard<std::mutex> guard{text_mtx};
    CHECK(text.find(R"("step":3)") != std::string::npos);
    CHECK(text.find("event: state\ndata: {") != std::string::npos);
  }
  stop = true;
  fix.set_state(runtime::job_state::running, 4);
  reader.join();
  CHECK(content_type == "text/event-stream");
}

TEST_CASE("errors map to HTTP statuses", "[console]") {
  using net::detail::http_status_of;
  CHECK(http_status_of(runtime::make_error(errc::invalid_request)) == 400);
  CHECK(http_status_of(runtime::make_error(errc::unknown_model)) == 400);
  CHECK(http_status_of(runtime::make_error(errc::unknown_job)) == 404);
  CHECK(http_status_of(runtime::make_error(errc::queue_full)) == 429);
  CHECK(http_status_of(runtime::make_error(errc::shutting_down)) == 503);
  CHECK(http_status_of(runtime::make_error(errc::node_lost)) == 502);
  CHECK(http_status_of(runtime::make_error(errc::internal)) == 500);
  CHECK(http_status_of(caf::make_error(caf::sec::request_timeout)) == 504);
}

TEST_CASE("event streams beyond the backend's share get a JSON 503, and a "
          "closed one frees its place",
          "[console]") {
  console_fixture fix{1};
  auto cli = fix.client();
  auto submit = [&] {
    cli.Post("/console/api/submit", R"({"endpoint": "sim", "input": {}})",
             "application/json");
  };
  submit();
  std::atomic<bool> first_event{false};
  std::atomic<bool> stop{false};
  std::thread reader{[&] {
    auto stream = fix.client();
    stream.Get("/console/api/events", [&](const char*, size_t) {
      first_event = true;
      return !stop.load();
    });
  }};
  REQUIRE(eventually([&] { return first_event.load(); }));
  auto refused = cli.Get("/console/api/events");
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(json_of(refused)["code"] == "busy");
  // The reader leaves at its next event; the server notices at the write
  // after that. New jobs make both happen.
  stop = true;
  submit();
  reader.join();
  CHECK(eventually([&] {
    submit();
    int status = 0;
    fix.client().Get(
      "/console/api/events",
      [&](const httplib::Response& res) {
        status = res.status;
        return false;
      },
      [](const char*, size_t) { return false; });
    return status == 200;
  }));
}
