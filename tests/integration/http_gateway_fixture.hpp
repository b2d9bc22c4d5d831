#pragma once

/// @file
/// What the HTTP gateway's integration tests share: a real `vidnode` with
/// sim devices and its gateway on 127.0.0.1 (gateway_node), answers read
/// with cpp-httplib's client, and a local webhook receiver.

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/node_process.hpp"
#include "support/temp_directory.hpp"

namespace vidnode::test::http_gateway {

using namespace std::chrono_literals;
using nlohmann::json;

using clock_type = std::chrono::steady_clock;

inline constexpr const char* sim_endpoint =
  "sim=sim,width=64,height=64,num_frames=8,num_inference_steps=5,video=1";

/// A slow job: 100 steps of 200 ms (20 s), cancelled by the tests that
/// start one.
inline const json slow_input = {
  {"prompt", "slow"}, {"num_inference_steps", 100}, {"step_ms", 200}};

/// An answer of the gateway: status 0 when none came.
struct answer {
  int status = 0;
  std::string body;
  httplib::Headers headers;

  json parsed() const {
    return json::parse(body, nullptr, false);
  }

  std::string header(const std::string& name) const {
    auto i = headers.find(name);
    return i == headers.end() ? std::string{} : i->second;
  }
};

inline answer answer_of(const httplib::Result& result) {
  if (!result)
    return {};
  return {result->status, result->body, result->headers};
}

/// A vidnode with sim devices and its HTTP gateway on 127.0.0.1, an API key
/// file and an output directory of its own.
class gateway_node {
public:
  explicit gateway_node(std::vector<std::string> extra = {},
                        std::string devices = "sim:4")
    : dir_("vidnode-http-test") {
    test::write_file(keys_path(), key + "\n");
    std::filesystem::create_directory(dir_.path() + "/output");
    std::vector<std::string> args = {
      "--devices",      devices,       "--state-dir",  "none",
      "--http-listen",  "127.0.0.1:0", "--endpoint",   sim_endpoint,
      "--api-key-file", keys_path(),   "--output-dir", dir_.path() + "/output"};
    args.insert(args.end(), extra.begin(), extra.end());
    node = std::make_unique<node_process>(args);
    static const std::string prefix = "vidnode HTTP gateway on http://"
                                      "127.0.0.1:";
    auto until = clock_type::now() + 10s;
    while (http_port == 0 && clock_type::now() < until) {
      auto line = node->process->read_line(1s);
      if (line && line->rfind(prefix, 0) == 0)
        http_port = std::stoi(line->substr(prefix.size()));
    }
    INFO(node->process->stderr_text());
    REQUIRE(http_port != 0);
  }

  std::string keys_path() const {
    return dir_.path() + "/keys";
  }

  /// A client of the gateway sending `authorization` (none when empty).
  std::unique_ptr<httplib::Client>
  client(const std::optional<std::string>& authorization) const {
    auto result = std::make_unique<httplib::Client>("127.0.0.1", http_port);
    result->set_keep_alive(true);
    result->set_read_timeout(30, 0);
    if (authorization)
      result->set_default_headers({{"Authorization", *authorization}});
    return result;
  }

  std::unique_ptr<httplib::Client> client() const {
    return client("Bearer " + key);
  }

  answer post(const std::string& path, const std::string& body,
              const std::optional<std::string>& authorization) const {
    return answer_of(
      client(authorization)->Post(path.c_str(), body, "application/json"));
  }

  answer post(const std::string& path, const json& body) const {
    return post(path, body.dump(), "Bearer " + key);
  }

  answer get(const std::string& path,
             const std::optional<std::string>& authorization) const {
    return answer_of(client(authorization)->Get(path.c_str()));
  }

  answer get(const std::string& path) const {
    return get(path, "Bearer " + key);
  }

  /// Runs `input` on endpoint sim; the job's id.
  std::string run(const json& input, json extra = json::object()) const {
    extra["input"] = input;
    auto reply = post("/v2/sim/run", extra);
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    REQUIRE(reply.parsed().at("status") == "IN_QUEUE");
    return reply.parsed().at("id").get<std::string>();
  }

  json status(const std::string& id) const {
    auto reply = get("/v2/sim/status/" + id);
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    return reply.parsed();
  }

  /// Polls job `id`'s status until `done` holds, for at most `limit`.
  json wait_for(const std::string& id,
                const std::function<bool(const json&)>& done,
                std::chrono::milliseconds limit = 30s) const {
    auto until = clock_type::now() + limit;
    for (;;) {
      auto current = status(id);
      if (done(current))
        return current;
      INFO(current.dump());
      REQUIRE(clock_type::now() < until);
      std::this_thread::sleep_for(20ms);
    }
  }

  json wait_for_state(const std::string& id, const std::string& state,
                      std::chrono::milliseconds limit = 30s) const {
    return wait_for(
      id, [&](const json& s) { return s.at("status") == state; }, limit);
  }

  /// Every job the endpoint counts in health (cancelled ones are not).
  int64_t jobs_counted() const {
    auto reply = get("/v2/sim/health");
    REQUIRE(reply.status == 200);
    auto health = reply.parsed();
    int64_t total = 0;
    for (const auto& [name, count] : health.at("jobs").items())
      if (name != "retried")
        total += count.get<int64_t>();
    return total;
  }

  std::string key = "test-key-0123456789abcdef";
  std::unique_ptr<node_process> node;
  int http_port = 0;

private:
  temp_directory dir_;
};

/// An error answer: the status, a JSON object with an "error" string that
/// contains `names`.
inline void require_error(const answer& reply, int status,
                          const std::string& names) {
  INFO("status " << reply.status << ", body: " << reply.body.substr(0, 400));
  REQUIRE(reply.status == status);
  auto body = reply.parsed();
  REQUIRE(body.is_object());
  REQUIRE(body.contains("error"));
  REQUIRE(body.at("error").is_string());
  CHECK(body.at("error").get<std::string>().find(names) != std::string::npos);
}

/// The path and query of an http://host:port URL.
inline std::string path_of(const std::string& url) {
  auto scheme = url.find("://");
  REQUIRE(scheme != std::string::npos);
  auto slash = url.find('/', scheme + 3);
  REQUIRE(slash != std::string::npos);
  return url.substr(slash);
}

/// A local HTTP server that records the webhooks POSTed to it and answers
/// each path with the statuses queued for it (200 once none is left).
class webhook_receiver {
public:
  webhook_receiver() {
    server_.Post(".*",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   std::lock_guard<std::mutex> guard{mutex_};
                   auto& queued = statuses_[req.path];
                   res.status = queued.empty() ? 200 : queued.front();
                   if (!queued.empty())
                     queued.erase(queued.begin());
                   received_.emplace_back(req.path, req.body);
                   changed_.notify_all();
                 });
    port = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread_ = std::thread{[this] { server_.listen_after_bind(); }};
  }

  ~webhook_receiver() {
    server_.stop();
    thread_.join();
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }

  void answer_with(const std::string& path, std::vector<int> statuses) {
    std::lock_guard<std::mutex> guard{mutex_};
    statuses_[path] = std::move(statuses);
  }

  /// The bodies POSTed to `path` once there are `count` of them, or all
  /// there are after `limit`.
  std::vector<std::string> wait_for(const std::string& path, size_t count,
                                    std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> guard{mutex_};
    auto bodies = [&] {
      std::vector<std::string> result;
      for (const auto& [p, body] : received_)
        if (p == path)
          result.push_back(body);
      return result;
    };
    changed_.wait_for(guard, limit, [&] { return bodies().size() >= count; });
    return bodies();
  }

  int port = 0;

private:
  httplib::Server server_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::vector<int>> statuses_;
  std::vector<std::pair<std::string, std::string>> received_;
};

/// Checks that a webhook's body is the job's Runpod status body (CHECKs
/// only: the test goes on to count the retries).
inline void check_webhook_shape(const std::string& body,
                                const std::string& id) {
  INFO("webhook body: " << body);
  auto hook = json::parse(body, nullptr, false);
  CHECK(hook.is_object());
  if (!hook.is_object())
    return;
  CHECK((hook.contains("id") && hook.at("id") == id));
  CHECK((hook.contains("status") && hook.at("status") == "COMPLETED"));
  CHECK(
    (hook.contains("delayTime") && hook.at("delayTime").is_number_integer()));
  CHECK((hook.contains("executionTime")
         && hook.at("executionTime").is_number_integer()));
  CHECK((hook.contains("output") && hook.at("output").is_object()
         && hook.at("output").value("video_url", "").rfind("http://", 0) == 0));
}

} // namespace vidnode::test::http_gateway
