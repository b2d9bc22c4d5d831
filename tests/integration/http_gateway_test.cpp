/// The HTTP gateway (Runpod's serverless API) of a real `vidnode` on
/// 127.0.0.1, spoken to with cpp-httplib's client: API keys (both header
/// forms, refusals), 400s that name the field, 404s, 429 on a full queue,
/// and a run of malformed bodies.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "integration/http_gateway_fixture.hpp"

namespace {

/// Sends `bytes` as they are on a new connection to `port` and returns the
/// first line of the answer ("HTTP/1.1 400 Bad Request") and its body, read
/// for at most 10 s.
std::pair<std::string, std::string> raw_exchange(int port,
                                                 const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address))
          == 0);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), 0)
          == static_cast<ssize_t>(bytes.size()));
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string text;
  char buffer[4096];
  for (;;) {
    auto end = text.find("\r\n\r\n");
    auto length = text.find("Content-Length: ");
    if (end != std::string::npos && length != std::string::npos
        && text.size() >= end + 4 + std::stoul(text.substr(length + 16)))
      break;
    auto got = ::recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0)
      break;
    text.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  auto end = text.find("\r\n\r\n");
  return {text.substr(0, text.find("\r\n")),
          end == std::string::npos ? "" : text.substr(end + 4)};
}

} // namespace

using namespace vidnode::test::http_gateway;

TEST_CASE("HTTP gateway: both Authorization forms are accepted, and a "
          "missing, wrong or malformed key gets 401 and creates nothing",
          "[http]") {
  gateway_node node;
  const json body = {{"input", {{"prompt", "auth"}}}};
  auto bearer = node.post("/v2/sim/run", body.dump(), "Bearer " + node.key);
  INFO(bearer.body);
  REQUIRE(bearer.status == 200);
  auto bare = node.post("/v2/sim/run", body.dump(), node.key);
  INFO(bare.body);
  REQUIRE(bare.status == 200);
  auto id = bare.parsed().at("id").get<std::string>();
  CHECK(node.get("/v2/sim/status/" + id, node.key).status == 200);
  CHECK(node.get("/v2/sim/status/" + id, "Bearer " + node.key).status == 200);

  const std::vector<std::optional<std::string>> refused = {
    std::nullopt,
    "",
    "Bearer",
    "Bearer ",
    "Bearer wrong-key",
    "wrong-key",
    "Basic " + node.key,
    "Bearer " + node.key + "x",
    "Bearer " + node.key.substr(1),
    "Bearer " + node.key + " " + node.key,
    "Token " + node.key,
  };
  for (const auto& authorization : refused) {
    INFO("Authorization: " << authorization.value_or("(none)"));
    require_error(node.post("/v2/sim/run", body.dump(), authorization), 401,
                  "");
    require_error(
      node.post("/v2/sim/runsync?wait=1000", body.dump(), authorization), 401,
      "");
    require_error(node.get("/v2/sim/status/" + id, authorization), 401, "");
    require_error(node.get("/v2/sim/health", authorization), 401, "");
    require_error(node.post("/v2/sim/purge-queue", "", authorization), 401, "");
  }
  CHECK(node.jobs_counted() == 2);
  CHECK(node.get("/v2/sim/status/" + id).status == 200);
}

TEST_CASE("HTTP gateway: a bad request gets 400 naming the field and creates "
          "nothing",
          "[http]") {
  gateway_node node;
  auto with_input = [](json input, json extra = json::object()) {
    extra["input"] = std::move(input);
    return extra.dump();
  };
  const json ok = {{"prompt", "fine"}};
  struct bad_case {
    std::string path;
    std::string body;
    std::string field;
  };
  const std::vector<bad_case> cases = {
    {"/v2/sim/run", "{}", "input"},
    {"/v2/sim/run", R"({"webhook":"http://example.com/"})", "input"},
    {"/v2/sim/run", R"({"input":5})", "input"},
    {"/v2/sim/run", R"({"input":"a cat"})", "input"},
    {"/v2/sim/run", R"({"input":null})", "input"},
    {"/v2/sim/run", R"([{"input":{}}])", "body"},
    {"/v2/sim/run", with_input({{"prompt", 5}}), "input.prompt"},
    {"/v2/sim/run", with_input({{"width", "wide"}}), "input.width"},
    {"/v2/sim/run", with_input({{"width", 64.5}}), "input.width"},
    {"/v2/sim/run", with_input({{"width", -64}}), "input.width"},
    {"/v2/sim/run", with_input({{"width", 1LL << 40}}), "input.width"},
    {"/v2/sim/run", with_input({{"height", 0}}), "input.height"},
    {"/v2/sim/run", with_input({{"num_frames", -1}}), "input.num_frames"},
    {"/v2/sim/run", with_input({{"num_inference_steps", -1}}),
     "input.num_inference_steps"},
    {"/v2/sim/run", with_input({{"num_inference_steps", "5"}}),
     "input.num_inference_steps"},
    {"/v2/sim/run", with_input({{"seed", -2}}), "input.seed"},
    {"/v2/sim/run", with_input({{"seed", "x"}}), "input.seed"},
    {"/v2/sim/run", with_input({{"frobnicate", 1}}), "input.frobnicate"},
    {"/v2/sim/run", with_input({{"step_ms", json::array()}}), "input.step_ms"},
    {"/v2/sim/run", with_input(ok, {{"policy", 5}}), "policy"},
    {"/v2/sim/run", with_input(ok, {{"policy", {{"executionTimeout", 100}}}}),
     "policy.executionTimeout"},
    {"/v2/sim/run",
     with_input(ok, {{"policy", {{"executionTimeout", "600000"}}}}),
     "policy.executionTimeout"},
    {"/v2/sim/run", with_input(ok, {{"policy", {{"ttl", 5}}}}), "policy.ttl"},
    {"/v2/sim/run", with_input(ok, {{"policy", {{"ttl", 1LL << 50}}}}),
     "policy.ttl"},
    {"/v2/sim/run", with_input(ok, {{"policy", {{"lowPriority", "yes"}}}}),
     "policy.lowPriority"},
    {"/v2/sim/run", with_input(ok, {{"webhook", 5}}), "webhook"},
    {"/v2/sim/run", with_input(ok, {{"webhook", "not a url"}}), "webhook"},
    {"/v2/sim/runsync?wait=999", with_input(ok), "wait"},
    {"/v2/sim/runsync?wait=300001", with_input(ok), "wait"},
    {"/v2/sim/runsync?wait=abc", with_input(ok), "wait"},
    {"/v2/sim/runsync?wait=-5", with_input(ok), "wait"},
    {"/v2/sim/runsync", with_input({{"width", "wide"}}), "input.width"},
  };
  for (const auto& c : cases) {
    INFO("POST " << c.path << " " << c.body);
    require_error(node.post(c.path, c.body, "Bearer " + node.key), 400,
                  c.field);
  }
  CHECK(node.jobs_counted() == 0);

  auto id = node.run(ok);
  for (auto wait : {"0", "999", "300001", "x"}) {
    INFO("wait=" << wait);
    require_error(node.get("/v2/sim/status-sync/" + id + "?wait=" + wait), 400,
                  "wait");
  }
  CHECK(node.jobs_counted() == 1);
}

TEST_CASE("HTTP gateway: unknown endpoints and unknown or other endpoints' "
          "jobs get 404",
          "[http]") {
  gateway_node node{{"--endpoint", "other=sim,num_inference_steps=5"}};
  auto id = node.run({{"prompt", "mine"}});
  node.wait_for_state(id, "COMPLETED");
  const json body = {{"input", {{"prompt", "x"}}}};
  require_error(node.post("/v2/nope/run", body), 404, "nope");
  require_error(node.post("/v2/nope/runsync", body), 404, "nope");
  require_error(node.get("/v2/nope/status/" + id), 404, "nope");
  require_error(node.get("/v2/nope/health"), 404, "nope");
  require_error(node.post("/v2/nope/purge-queue", json::object()), 404, "nope");
  for (const auto& unknown :
       {std::string{"999999999"}, std::string{"0"}, std::string{"abc"},
        std::string{"-1"}, std::string{"0"} + id}) {
    INFO("job " << unknown);
    require_error(node.get("/v2/sim/status/" + unknown), 404, "");
    require_error(node.get("/v2/sim/status-sync/" + unknown + "?wait=1000"),
                  404, "");
    require_error(node.get("/v2/sim/stream/" + unknown), 404, "");
    require_error(node.post("/v2/sim/cancel/" + unknown, json::object()), 404,
                  "");
    require_error(node.post("/v2/sim/retry/" + unknown, json::object()), 404,
                  "");
  }
  require_error(node.get("/v2/other/status/" + id), 404, "");
  require_error(node.get("/v2/other/status-sync/" + id + "?wait=1000"), 404,
                "");
  require_error(node.get("/v2/other/stream/" + id), 404, "");
  require_error(node.post("/v2/other/cancel/" + id, json::object()), 404, "");
  require_error(node.post("/v2/other/retry/" + id, json::object()), 404, "");
  CHECK(node.status(id).at("status") == "COMPLETED");
}

TEST_CASE("HTTP gateway: a full queue gets 429", "[http]") {
  gateway_node node{{"--queue-size", "2"}, "sim:1"};
  std::vector<std::string> accepted;
  answer refused;
  const json body = {{"input", slow_input}};
  for (int i = 0; i < 8 && refused.status == 0; ++i) {
    auto reply = node.post("/v2/sim/run", body);
    INFO(reply.body);
    if (reply.status == 200)
      accepted.push_back(reply.parsed().at("id").get<std::string>());
    else
      refused = reply;
  }
  require_error(refused, 429, "");
  CHECK(accepted.size() >= 2);
  CHECK(accepted.size() <= 3);
  CHECK(node.jobs_counted() == static_cast<int64_t>(accepted.size()));
  for (const auto& id : accepted)
    CHECK(node.post("/v2/sim/cancel/" + id, json::object()).status == 200);
  CHECK(node.post("/v2/sim/run", body).status == 200);
}

TEST_CASE("HTTP gateway: malformed bodies get a 4xx with a JSON body, and "
          "the node still runs a job afterwards",
          "[http][malformed]") {
  gateway_node node;
  std::mt19937 random{20261202};
  auto random_bytes = [&](size_t n) {
    std::string bytes(n, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(random() & 0xff);
    return bytes;
  };
  auto nested = [](const std::string& open, const std::string& close,
                   size_t depth, const std::string& inner) {
    std::string text;
    for (size_t i = 0; i < depth; ++i)
      text += open;
    text += inner;
    for (size_t i = 0; i < depth; ++i)
      text += close;
    return text;
  };
  const std::string mb(1 << 20, 'a');
  struct malformed {
    std::string name;
    std::string path;
    std::string body;
  };
  std::vector<malformed> bodies = {
    {"empty", "/v2/sim/run", ""},
    {"random bytes", "/v2/sim/run", random_bytes(4096)},
    {"random bytes after a brace", "/v2/sim/run", "{" + random_bytes(4096)},
    {"10,000-deep arrays", "/v2/sim/run", nested("[", "]", 10000, "")},
    {"10,000-deep objects", "/v2/sim/run", nested("{\"a\":", "}", 10000, "1")},
    {"10,000-deep input", "/v2/sim/run",
     "{\"input\":" + nested("{\"a\":", "}", 10000, "{}") + "}"},
    {"unclosed 10,000-deep arrays", "/v2/sim/run", std::string(10000, '[')},
    {"1 MB prompt", "/v2/sim/run", json{{"input", {{"prompt", mb}}}}.dump()},
    {"1 MB key", "/v2/sim/run", json{{"input", {{mb, 1}}}}.dump()},
    {"1 MB option value", "/v2/sim/run",
     json{{"input", {{"prompt", "p"}, {"step_ms", mb}}}}.dump()},
    {"1 MB webhook", "/v2/sim/run",
     json{{"input", {{"prompt", "p"}}}, {"webhook", "http://x/" + mb}}.dump()},
    {"a number as body", "/v2/sim/run", "5"},
    {"a string as body", "/v2/sim/run", "\"input\""},
    {"null body", "/v2/sim/run", "null"},
    {"input an array", "/v2/sim/run", R"({"input":[1,2]})"},
    {"width an object", "/v2/sim/run", R"({"input":{"width":{}}})"},
    {"policy an array", "/v2/sim/run",
     R"({"input":{"prompt":"p"},"policy":[]})"},
    {"duplicate input", "/v2/sim/run",
     R"({"input":{"prompt":"a"},"input":{"prompt":"b"}})"},
    {"duplicate prompt", "/v2/sim/run",
     R"({"input":{"prompt":"a","prompt":"b"}})"},
    {"duplicate nested key", "/v2/sim/run",
     R"({"input":{"prompt":"a"},"policy":{"ttl":20000,"ttl":30000}})"},
    {"truncated", "/v2/sim/run", R"({"input":{"prompt":"a")"},
    {"truncated string", "/v2/sim/run", R"({"input":{"prompt":"a)"},
    {"trailing garbage", "/v2/sim/run", R"({"input":{"prompt":"a"}} x)"},
    {"two documents", "/v2/sim/run",
     R"({"input":{"prompt":"a"}}{"input":{"prompt":"a"}})"},
    {"invalid UTF-8 in a string", "/v2/sim/run",
     "{\"input\":{\"prompt\":\"a\xff\xfe\"}}"},
    {"overlong UTF-8", "/v2/sim/run", "{\"input\":{\"prompt\":\"\xc0\xaf\"}}"},
    {"lone surrogate escape", "/v2/sim/run",
     R"({"input":{"prompt":"\ud800"}})"},
    {"NUL in a string", "/v2/sim/run",
     std::string{"{\"input\":{\"prompt\":\"a\0b\"}}", 26}},
    {"huge integer", "/v2/sim/run",
     R"({"input":{"prompt":"p","width":1)" + std::string(400, '0') + "}}"},
    {"huge exponent", "/v2/sim/run",
     R"({"input":{"prompt":"p","num_frames":1e999}})"},
    {"huge negative seed", "/v2/sim/run",
     R"({"input":{"prompt":"p","seed":-99999999999999999999999}})"},
    {"uint64 max + 1 seed", "/v2/sim/run",
     R"({"input":{"prompt":"p","seed":18446744073709551616}})"},
    {"NaN", "/v2/sim/run", R"({"input":{"prompt":"p","width":NaN}})"},
    {"comments", "/v2/sim/run", R"({"input":{"prompt":"p"} /* c */})"},
    {"over 10 MB to run", "/v2/sim/run",
     json{{"input", {{"prompt", "p"}}},
          {"padding", std::string((10 << 20) + 1024, 'x')}}
       .dump()},
    {"over 20 MB to runsync", "/v2/sim/runsync",
     json{{"input", {{"prompt", "p"}}},
          {"padding", std::string((20 << 20) + 1024, 'x')}}
       .dump()},
  };
  for (const auto& b : bodies) {
    INFO(b.name << " (" << b.body.size() << " bytes) to " << b.path);
    auto reply = node.post(b.path, b.body, "Bearer " + node.key);
    INFO("status " << reply.status << ": " << reply.body.substr(0, 300));
    CHECK(reply.status >= 400);
    CHECK(reply.status < 500);
    auto parsed = reply.parsed();
    CHECK(parsed.is_object());
    CHECK((parsed.is_object() && parsed.contains("error")));
    REQUIRE_FALSE(node.node->process->wait(0ms));
  }
  CHECK(node.jobs_counted() == 0);

  auto id = node.run({{"prompt", "after the garbage"}});
  auto done = node.wait_for_state(id, "COMPLETED");
  CHECK(done.at("output").contains("video_url"));
}

TEST_CASE("HTTP gateway: a form-encoded body over 8 KiB (curl -d) is read as "
          "JSON, and Runpod's default ttl runs with the node's limit",
          "[http]") {
  gateway_node node;
  json body{{"input", {{"prompt", std::string(9000, 'a')}}},
            {"policy", {{"ttl", 86400000}, {"executionTimeout", 600000000}}}};
  auto reply = answer_of(node.client()->Post(
    "/v2/sim/run", body.dump(), "application/x-www-form-urlencoded"));
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  auto id = reply.parsed().at("id").get<std::string>();
  node.wait_for_state(id, "COMPLETED");
}

TEST_CASE("HTTP gateway: a second vidnode cannot take the gateway's port, and "
          "long polls leave threads for short requests",
          "[http]") {
  gateway_node node{{"--http-threads", "4"}};
  vidnode::test::child_process second{
    {VIDNODE_BIN, "--devices", "sim:1", "--state-dir", "none", "--listen",
     "127.0.0.1:0", "--http-listen",
     "127.0.0.1:" + std::to_string(node.http_port), "--endpoint", "sim=sim"}};
  CHECK(second.wait(10s) == 2);
  CHECK_THAT(second.stderr_text(),
             Catch::Contains("cannot listen on 127.0.0.1:"
                             + std::to_string(node.http_port)));

  // Two slow jobs on the four devices; four pollers wait on them, more than
  // the half of --http-threads long polls may hold.
  auto slow = node.run(slow_input);
  std::vector<std::thread> pollers;
  for (int i = 0; i < 4; ++i)
    pollers.emplace_back(
      [&] { node.get("/v2/sim/status-sync/" + slow + "?wait=20000"); });
  auto start = clock_type::now();
  auto health = node.get("/v2/sim/health");
  auto took = clock_type::now() - start;
  CHECK(health.status == 200);
  CHECK(took < 3s);
  node.post("/v2/sim/cancel/" + slow, json::object());
  for (auto& poller : pollers)
    poller.join();
}

TEST_CASE("HTTP gateway: a body cut short and ambiguous framing get 400 and "
          "run nothing",
          "[http]") {
  gateway_node node;
  const std::string head = "POST /v2/sim/run HTTP/1.1\r\nHost: x\r\n"
                           "Authorization: Bearer "
                           + node.key + "\r\n";
  const std::string body = R"({"input":{}})";
  const std::vector<std::pair<std::string, std::string>> requests = {
    {"Content-Length: 100\r\n\r\n" + body, "ended before"},
    {"Content-Length: 12\r\nContent-Length: 5\r\n\r\n" + body,
     "Content-Length is given more than once"},
    {"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n" + body
       + "\r\n0\r\n\r\n",
     "both Content-Length and Transfer-Encoding"},
    {"Content-Length: +12\r\n\r\n" + body, "is not a number of bytes"},
    {"Transfer-Encoding : chunked\r\n\r\nc\r\n" + body + "\r\n0\r\n\r\n",
     "a header name with blanks"},
    {"Authorization: Bearer other\r\nContent-Length: 12\r\n\r\n" + body,
     "Authorization is given more than once"},
  };
  for (const auto& [rest, names] : requests) {
    INFO(rest);
    auto [status, answer] = raw_exchange(node.http_port, head + rest);
    CHECK(status == "HTTP/1.1 400 Bad Request");
    CHECK_THAT(answer, Catch::Contains(names));
  }
  CHECK(node.jobs_counted() == 0);
  auto [status, answer] =
    raw_exchange(node.http_port, head + "Content-Length: 12\r\n\r\n" + body);
  CHECK(status == "HTTP/1.1 200 OK");
  CHECK(node.jobs_counted() == 1);
}
