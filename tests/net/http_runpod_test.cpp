#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "http_api_keys.hpp"
#include "http_runpod.hpp"
#include "vidnode/net/http_gateway.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace vidnode;
using json = nlohmann::json;
using net::detail::job_spec_from_request;
using net::detail::parse_body;

namespace {

net::http_endpoint endpoint_of(const std::string& text) {
  auto endpoint = net::parse_http_endpoint(text);
  INFO(text);
  REQUIRE(endpoint);
  return *endpoint;
}

/// The context of the error a request gets at `endpoint`.
std::string refusal(const net::http_endpoint& endpoint, const json& body) {
  auto spec = job_spec_from_request(endpoint, body);
  INFO(body.dump());
  REQUIRE_FALSE(spec);
  CHECK(runtime::is(spec.error(), runtime::errc::invalid_request));
  return runtime::detail_of(spec.error());
}

} // namespace

TEST_CASE("every row of the input mapping table lands in its job_spec field",
          "[http][mapping]") {
  auto endpoint = endpoint_of("t2v=tiny-t2v");
  auto spec = job_spec_from_request(
    endpoint, {{"input",
                {{"prompt", "a red fox"},
                 {"negative_prompt", "blurry"},
                 {"width", 256},
                 {"height", 128},
                 {"num_frames", 24},
                 {"fps", 12},
                 {"num_inference_steps", 30},
                 {"guidance_scale", 7.5},
                 {"seed", 42},
                 {"audio_url", "https://example.com/a.wav"},
                 {"output_url", "https://bucket.example.com/v.mp4?X=1"},
                 {"ranks", 2}}}});
  INFO((spec ? "" : runtime::describe(spec.error())));
  REQUIRE(spec);
  CHECK(spec->model == "tiny-t2v");
  CHECK(spec->endpoint == "t2v");
  CHECK(spec->prompt == "a red fox");
  CHECK(spec->options.at("negative_prompt") == "blurry");
  CHECK(spec->width == 256);
  CHECK(spec->height == 128);
  CHECK(spec->frames == 24);
  CHECK(spec->fps == 12);
  CHECK(spec->steps == 30);
  CHECK(spec->options.at("guidance_scale") == "7.5");
  CHECK(spec->seed == 42);
  CHECK(spec->audio_url == "https://example.com/a.wav");
  CHECK(spec->output_url == "https://bucket.example.com/v.mp4?X=1");
  CHECK(spec->ranks == 2);
  CHECK(net::detail::input_fields().size() == 12);
}

TEST_CASE("endpoint defaults apply, the request's own fields win, and other "
          "fields become model options unless the endpoint ignores them",
          "[http][mapping]") {
  auto endpoint =
    endpoint_of("sim=sim,width=64,height=64,num_inference_steps=5,"
                "priority=7,step_ms=20");
  auto spec = job_spec_from_request(
    endpoint, {{"input", {{"width", 128}, {"video", true}, {"mem_mb", 10}}}});
  REQUIRE(spec);
  CHECK(spec->width == 128);
  CHECK(spec->height == 64);
  CHECK(spec->steps == 5);
  CHECK(spec->priority == 7);
  CHECK(spec->options.at("step_ms") == "20");
  CHECK(spec->options.at("video") == "true");
  CHECK(spec->options.at("mem_mb") == "10");
  auto ignoring = endpoint_of("sim=sim,extra_fields=ignore");
  spec = job_spec_from_request(
    ignoring, {{"input", {{"prompt", "x"}, {"style", {{"a", 1}}}}}});
  REQUIRE(spec);
  CHECK(spec->options.empty());
  CHECK(refusal(endpoint, {{"input", {{"style", {{"a", 1}}}}}})
        == "input.style: must be a string, number or boolean to be a model "
           "option, got {\"a\":1}");
}

TEST_CASE("policy maps to timeouts and priority, webhook to webhook_url",
          "[http][mapping]") {
  auto endpoint = endpoint_of("sim=sim");
  auto spec = job_spec_from_request(
    endpoint, {{"input", json::object()},
               {"policy",
                {{"executionTimeout", 60000},
                 {"ttl", 20000},
                 {"lowPriority", true},
                 {"somethingNew", 1}}},
               {"webhook", "https://hooks.example.com/done"},
               {"unknownTopLevel", true}});
  REQUIRE(spec);
  CHECK(spec->run_timeout == std::chrono::milliseconds{60000});
  CHECK(spec->queue_timeout == std::chrono::milliseconds{20000});
  CHECK(spec->priority == 0);
  CHECK(spec->webhook_url == "https://hooks.example.com/done");
  CHECK(refusal(endpoint, {{"input", json::object()},
                           {"policy", {{"executionTimeout", 5000}}}})
          .rfind("policy.executionTimeout: must be whole milliseconds above "
                 "5000",
                 0)
        == 0);
  CHECK(
    refusal(endpoint, {{"input", json::object()}, {"policy", {{"ttl", "1h"}}}})
      .rfind("policy.ttl:", 0)
    == 0);
  CHECK(refusal(endpoint,
                {{"input", json::object()}, {"policy", {{"lowPriority", 1}}}})
          .rfind("policy.lowPriority: must be true or false", 0)
        == 0);
  CHECK(refusal(endpoint, {{"input", json::object()}, {"policy", 3}})
        == "policy: must be an object, got 3");
  CHECK(refusal(endpoint, {{"input", json::object()}, {"webhook", 3}})
        == "webhook: must be a URL string, got 3");
}

TEST_CASE("bad requests are refused naming the field as the request names it",
          "[http][mapping]") {
  auto endpoint = endpoint_of("sim=sim");
  CHECK(refusal(endpoint, json::array())
        == "body: must be a JSON object, got []");
  CHECK(refusal(endpoint, json::object())
        == "input: missing: every request needs an input object");
  CHECK(refusal(endpoint, {{"input", "x"}})
        == "input: must be an object, got \"x\"");
  CHECK(refusal(endpoint, {{"input", {{"width", "wide"}}}})
        == "input.width: must be an integer, got \"wide\"");
  CHECK(refusal(endpoint, {{"input", {{"num_frames", 1.5}}}})
        == "input.num_frames: must be an integer, got 1.5");
  CHECK(refusal(endpoint, {{"input", {{"guidance_scale", "high"}}}})
        == "input.guidance_scale: must be a number, got \"high\"");
  CHECK(refusal(endpoint, {{"input", {{"prompt", 3}}}})
        == "input.prompt: must be a string, got 3");
  CHECK(refusal(endpoint, {{"input", {{"width", 17}}}})
          .rfind("input.width: must be a multiple of 8", 0)
        == 0);
  CHECK(refusal(endpoint, {{"input", {{"num_frames", 0}}}})
          .rfind("input.num_frames:", 0)
        == 0);
  CHECK(refusal(endpoint, {{"input", {{"num_inference_steps", 100000}}}})
          .rfind("input.num_inference_steps:", 0)
        == 0);
  CHECK(refusal(endpoint, {{"input", {{"width", 1ll << 40}}}})
        == "input.width: out of range, got 1099511627776");
  CHECK(refusal(endpoint, {{"input", {{"seed", -2}}}})
          .rfind("input.seed: must be from 0 to 2^64-1, or -1", 0)
        == 0);
  auto random = job_spec_from_request(endpoint, {{"input", {{"seed", -1}}}});
  REQUIRE(random);
  auto model_refusal = net::detail::in_request_terms(runtime::make_error(
    runtime::errc::invalid_request,
    "options: 'style' is not an option of model sim (known: step_ms)"));
  CHECK(runtime::detail_of(model_refusal)
        == "input.style: not a field of the input mapping table (README, "
           "\"HTTP gateway\") nor an option of model sim (known: step_ms)");
}

TEST_CASE("s3Config becomes a presigned output URL and never the secret",
          "[http][mapping]") {
  auto endpoint = endpoint_of("sim=sim");
  json s3{{"accessId", "AKIDEXAMPLE"},
          {"accessSecret", "very-secret-value"},
          {"bucketName", "videos"},
          {"endpointUrl", "https://s3.eu-west-1.amazonaws.com"}};
  auto spec = job_spec_from_request(
    endpoint, {{"input", json::object()}, {"s3Config", s3}});
  REQUIRE(spec);
  CHECK(
    spec->output_url.rfind("https://s3.eu-west-1.amazonaws.com/videos/sim/", 0)
    == 0);
  CHECK(spec->output_url.find("X-Amz-Signature=") != std::string::npos);
  CHECK(spec->output_url.find("very-secret-value") == std::string::npos);
  CHECK(refusal(endpoint, {{"input", {{"output_url", "https://x.example/v"}}},
                           {"s3Config", s3}})
        == "s3Config: give either s3Config or input.output_url, not both");
  s3.erase("bucketName");
  CHECK(refusal(endpoint, {{"input", json::object()}, {"s3Config", s3}})
        == "s3Config.bucketName: missing");
}

TEST_CASE("bodies with duplicate keys, deep nesting or bad JSON are refused",
          "[http][mapping]") {
  auto detail_of = [](const std::string& text) {
    auto doc = parse_body(text);
    INFO(text.substr(0, 80));
    REQUIRE_FALSE(doc);
    return runtime::detail_of(doc.error());
  };
  CHECK(detail_of(R"({"input": {"a": 1, "a": 2}})")
        == "body: the key \"a\" appears twice in one object");
  CHECK(detail_of(R"({"input": {}, "input": {}})")
        == "body: the key \"input\" appears twice in one object");
  CHECK(parse_body(R"({"a": {"x": 1}, "b": {"x": 2}})"));
  CHECK(detail_of(std::string(10000, '[') + std::string(10000, ']'))
        == "body: nested deeper than 64 levels");
  CHECK(detail_of("{\"input\": ").rfind("body: not valid JSON: ", 0) == 0);
  CHECK(detail_of("\xff\xfe").rfind("body: not valid JSON: ", 0) == 0);
  CHECK(detail_of("").rfind("body: not valid JSON: ", 0) == 0);
}

TEST_CASE("endpoint values are parsed and bad ones refused by name",
          "[http][mapping]") {
  auto endpoint = endpoint_of("t2v=tiny-t2v,width=256,extra_fields=ignore");
  CHECK(endpoint.id == "t2v");
  CHECK(endpoint.model == "tiny-t2v");
  CHECK(endpoint.defaults
        == std::map<std::string, std::string>{{"width", "256"}});
  CHECK(endpoint.ignore_extra_fields);
  auto refused = [](const std::string& text) {
    auto endpoint = net::parse_http_endpoint(text);
    INFO(text);
    REQUIRE_FALSE(endpoint);
    return runtime::detail_of(endpoint.error());
  };
  CHECK(refused("sim") == "endpoint 'sim': must be ID=MODEL[,key=value...]");
  CHECK(refused("=sim")
        == "endpoint '=sim': the id must be 1 to 64 letters, digits, '-' or "
           "'_'");
  CHECK(refused("a/b=sim").find("the id must be") != std::string::npos);
  CHECK(refused("x=").find("model ''") != std::string::npos);
  CHECK(refused("x=sim,width")
        == "endpoint 'x=sim,width': 'width' is not "
           "key=value");
  CHECK(refused("x=sim,width=wide")
        == "endpoint 'x=sim,width=wide': width must be an integer, got "
           "'wide'");
  CHECK(refused("x=sim,priority=12").find("priority must be a whole number")
        != std::string::npos);
  CHECK(refused("x=sim,width=8,width=16")
        == "endpoint 'x=sim,width=8,width=16': 'width' is given twice");
  CHECK(refused("s=sim,width=13")
        == "endpoint 's=sim,width=13': its defaults: input.width: must be a "
           "multiple of 8 between 16 and 4096, got 13");
  CHECK(refused("x=sim,extra_fields=maybe")
          .find("extra_fields must be options or ignore")
        != std::string::npos);
}

TEST_CASE("status bodies have Runpod's shape for every state",
          "[http][status]") {
  net::http_links links{"0123456789abcdef0123456789abcdef"};
  links.set_base_url("https://gw.example.com:8447/");
  runtime::job_result r;
  r.id = runtime::job_id{17};
  r.queue_time = std::chrono::microseconds{1500700};
  r.run_time = std::chrono::seconds{2};
  r.node = "host-a";
  r.device = "sim:0";
  r.state = runtime::job_state::queued;
  r.device.clear();
  CHECK_FALSE(net::runpod_status_body(r, links).contains("workerId"));
  r.state = runtime::job_state::running;
  r.device = "sim:0";
  auto body = net::runpod_status_body(r, links);
  CHECK(body
        == json{{"id", "17"},
                {"status", "IN_PROGRESS"},
                {"delayTime", 1500},
                {"executionTime", 2000},
                {"workerId", "host-a/sim:0"}});
  r.state = runtime::job_state::succeeded;
  r.output = "/var/out/job-17.mp4";
  r.output_node = "host-a";
  body = net::runpod_status_body(r, links);
  CHECK(body["status"] == "COMPLETED");
  auto url = body["output"]["video_url"].get<std::string>();
  CHECK(url.rfind("https://gw.example.com:8447/output/17.mp4?sig=", 0) == 0);
  auto sig = url.substr(url.find("sig=") + 4);
  CHECK(sig.size() == 32);
  CHECK(links.valid_signature(runtime::job_id{17}, sig));
  CHECK_FALSE(links.valid_signature(runtime::job_id{18}, sig));
  CHECK_FALSE(links.valid_signature(runtime::job_id{17}, sig.substr(1)));
  CHECK_FALSE(
    net::http_links{"another secret, another signature"}.valid_signature(
      runtime::job_id{17}, sig));
  r.output = "https://bucket.example.com/sim/x.mp4?X-Amz-Signature=abc";
  r.output_node.clear();
  CHECK(net::runpod_status_body(r, links)["output"]["video_url"]
        == "https://bucket.example.com/sim/x.mp4");
  r.output = "sim://sim/0-64x64x8";
  CHECK(net::runpod_status_body(r, links)["output"] == json::object());
  r.state = runtime::job_state::failed;
  r.error = runtime::make_error(runtime::errc::worker_lost, "crashed");
  body = net::runpod_status_body(r, links);
  CHECK(body["status"] == "FAILED");
  CHECK(body["error"] == runtime::describe(r.error));
  CHECK_FALSE(body.contains("output"));
  CHECK(std::string{net::runpod_status_name(runtime::job_state::queued)}
        == "IN_QUEUE");
  CHECK(std::string{net::runpod_status_name(runtime::job_state::cancelled)}
        == "CANCELLED");
  CHECK(std::string{net::runpod_status_name(runtime::job_state::timed_out)}
        == "TIMED_OUT");
  CHECK(net::detail::parse_job_id("17").value == 17);
  CHECK(net::detail::parse_job_id("017").value == 0);
  CHECK(net::detail::parse_job_id("+17").value == 0);
  CHECK(net::detail::parse_job_id("17x").value == 0);
  CHECK(net::detail::parse_job_id("").value == 0);
  CHECK(net::detail::parse_job_id("99999999999999999999999").value == 0);
}

TEST_CASE("API keys: both header forms, comments, reloads that keep the old "
          "keys when the file goes bad",
          "[http][keys]") {
  auto dir = std::filesystem::temp_directory_path()
             / ("vidnode-keys-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "keys").string();
  std::ofstream{path} << "# operators\nkey-one\n\n  key-two  \n";
  net::detail::api_keys keys{path};
  REQUIRE_FALSE(keys.reload());
  CHECK(keys.admits("Bearer key-one"));
  CHECK(keys.admits("key-two"));
  CHECK(keys.admits("bearer key-two"));
  CHECK(keys.admits("BEARER key-two"));
  CHECK_FALSE(keys.admits(""));
  CHECK_FALSE(keys.admits("Bearer "));
  CHECK_FALSE(keys.admits("Bearer key-three"));
  CHECK_FALSE(keys.admits("Basic a2V5LW9uZQ=="));
  CHECK_FALSE(keys.admits("# operators"));
  std::ofstream{path, std::ios::trunc} << "key-three\n";
  REQUIRE_FALSE(keys.reload());
  CHECK(keys.admits("Bearer key-three"));
  CHECK_FALSE(keys.admits("Bearer key-one"));
  std::ofstream{path, std::ios::trunc} << "# nothing\n";
  auto err = keys.reload();
  CHECK(runtime::detail_of(err).find("holds no key") != std::string::npos);
  CHECK(keys.admits("Bearer key-three"));
  std::filesystem::remove(path);
  CHECK(runtime::detail_of(keys.reload()).find("cannot be read")
        != std::string::npos);
  CHECK(keys.admits("key-three"));
  net::detail::api_keys open{""};
  CHECK_FALSE(open.required());
  CHECK(open.admits(""));
  std::filesystem::remove_all(dir);
}
