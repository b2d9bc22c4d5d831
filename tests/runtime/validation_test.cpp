#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/model_pattern.hpp"
#include "vidnode/runtime/validation.hpp"

using namespace std::chrono_literals;
using vidnode::runtime::detail_of;
using vidnode::runtime::errc;
using vidnode::runtime::is;
using vidnode::runtime::job_spec;
using vidnode::runtime::validate;

namespace {

using mutation = std::function<void(job_spec&)>;

job_spec with(const mutation& change) {
  job_spec spec;
  change(spec);
  return spec;
}

} // namespace

TEST_CASE("prompts in any language are valid UTF-8", "[validation]") {
  job_spec spec;
  spec.prompt = "un renard roux dans la neige, \u96ea\u306e\u4e2d\u306e\u72d0 "
                "\U0001F98A";
  spec.idempotency_key = "cl\u00e9-1";
  spec.options["caption"] = "\u00a1hola!";
  CHECK(!validate(spec));
}

TEST_CASE("a default job spec is a valid request", "[validation]") {
  CHECK_FALSE(validate(job_spec{}));
}

TEST_CASE("every bound of a job spec is itself accepted", "[validation]") {
  std::vector<mutation> edges = {
    [](job_spec& s) { s.model = "org/name:v1.2_x-y"; },
    [](job_spec& s) { s.model = std::string(128, 'm'); },
    [](job_spec& s) { s.prompt = std::string(16384, 'p'); },
    [](job_spec& s) { s.width = s.height = 16; },
    [](job_spec& s) { s.width = s.height = 4096; },
    [](job_spec& s) { s.frames = 1; },
    [](job_spec& s) { s.frames = 1024; },
    [](job_spec& s) { s.fps = 120; },
    [](job_spec& s) { s.steps = 0; },
    [](job_spec& s) { s.steps = 1000; },
    [](job_spec& s) { s.priority = 0; },
    [](job_spec& s) { s.priority = 9; },
    [](job_spec& s) { s.idempotency_key = std::string(128, 'k'); },
    [](job_spec& s) {
      for (int i = 0; i < 64; ++i)
        s.options["key_" + std::to_string(i)] = std::string(4096, 'v');
    },
  };
  for (size_t i = 0; i < edges.size(); ++i) {
    INFO("bound #" << i);
    auto err = validate(with(edges[i]));
    CHECK_FALSE(err);
    CHECK(detail_of(err).empty());
  }
}

TEST_CASE("an out-of-bounds field is refused as an invalid request naming "
          "that field",
          "[validation]") {
  std::vector<std::pair<std::string, mutation>> cases = {
    {"model", [](job_spec& s) { s.model.clear(); }},
    {"model", [](job_spec& s) { s.model = std::string(129, 'm'); }},
    {"model", [](job_spec& s) { s.model = "sim model"; }},
    {"prompt", [](job_spec& s) { s.prompt = std::string(16385, 'p'); }},
    {"width", [](job_spec& s) { s.width = 8; }},
    {"width", [](job_spec& s) { s.width = 4104; }},
    {"height", [](job_spec& s) { s.height = 20; }},
    {"frames", [](job_spec& s) { s.frames = 0; }},
    {"frames", [](job_spec& s) { s.frames = 1025; }},
    {"fps", [](job_spec& s) { s.fps = 0; }},
    {"fps", [](job_spec& s) { s.fps = 121; }},
    {"steps", [](job_spec& s) { s.steps = -1; }},
    {"steps", [](job_spec& s) { s.steps = 1001; }},
    {"priority", [](job_spec& s) { s.priority = -1; }},
    {"priority", [](job_spec& s) { s.priority = 10; }},
    {"queue_timeout", [](job_spec& s) { s.queue_timeout = -1ms; }},
    {"run_timeout", [](job_spec& s) { s.run_timeout = -1ms; }},
    {"idempotency_key",
     [](job_spec& s) { s.idempotency_key = std::string(129, 'k'); }},
    {"options",
     [](job_spec& s) {
       for (int i = 0; i < 65; ++i)
         s.options["k" + std::to_string(i)] = "v";
     }},
    {"options", [](job_spec& s) { s.options[""] = "v"; }},
    {"options", [](job_spec& s) { s.options[std::string(65, 'k')] = "v"; }},
    {"options", [](job_spec& s) { s.options["a=b"] = "v"; }},
    {"options", [](job_spec& s) { s.options["k"] = std::string(4097, 'v'); }},
    // Bytes that are not UTF-8 (JSON, which clients and webhooks get, holds
    // UTF-8 only): a stray continuation byte, an overlong '/', a UTF-16
    // surrogate, a sequence cut short, a code point above U+10FFFF.
    {"prompt", [](job_spec& s) { s.prompt = "fox \xb2"; }},
    {"prompt", [](job_spec& s) { s.prompt = "\xc0\xaf"; }},
    {"prompt", [](job_spec& s) { s.prompt = "\xed\xa0\x80"; }},
    {"prompt", [](job_spec& s) { s.prompt = "\xe2\x82"; }},
    {"prompt", [](job_spec& s) { s.prompt = "\xf4\x90\x80\x80"; }},
    {"idempotency_key", [](job_spec& s) { s.idempotency_key = "\xb2"; }},
    {"options", [](job_spec& s) { s.options["fault"] = "\xb2"; }},
    {"output_url",
     [](job_spec& s) { s.output_url = "https://h\xb2.example/x"; }},
    {"webhook_url",
     [](job_spec& s) { s.webhook_url = "https://example.com/a b"; }},
  };
  for (auto& [field, change] : cases) {
    auto err = validate(with(change));
    INFO("expected a complaint about " << field << ", got '" << detail_of(err)
                                       << "'");
    CHECK(is(err, errc::invalid_request));
    CHECK(detail_of(err).rfind(field + ": ", 0) == 0);
  }
}

TEST_CASE("a bad dimension is explained with its bounds and its value",
          "[validation]") {
  auto err = validate(with([](job_spec& s) { s.width = 17; }));
  CHECK(detail_of(err)
        == "width: must be a multiple of 8 between 16 and 4096, got 17");
}

TEST_CASE("the first bad field in declaration order is the one reported",
          "[validation]") {
  auto err = validate(with([](job_spec& s) {
    s.priority = 42;
    s.width = 3;
    s.model.clear();
  }));
  CHECK(detail_of(err) == "model: must not be empty");
}

TEST_CASE("an endpoint is empty or 1 to 64 letters, digits, dashes and "
          "underscores",
          "[validation]") {
  for (std::string endpoint :
       {std::string{}, std::string{"a"}, std::string{"my-endpoint_2"},
        std::string{"ABC-xyz_09"}, std::string(64, 'e')}) {
    INFO("endpoint '" << endpoint << "'");
    CHECK_FALSE(validate(with([&](job_spec& s) { s.endpoint = endpoint; })));
    CHECK_FALSE(vidnode::runtime::invalid_endpoint_name(endpoint));
  }
  for (std::string endpoint :
       {std::string(65, 'e'), std::string{"a b"}, std::string{"a/b"},
        std::string{"a.b"}, std::string{"end:point"},
        std::string{"caf\xc3\xa9"}, std::string{"x\n"}, std::string{"../v2"}}) {
    INFO("endpoint '" << endpoint << "'");
    auto err = validate(with([&](job_spec& s) { s.endpoint = endpoint; }));
    CHECK(is(err, errc::invalid_request));
    CHECK(detail_of(err).rfind("endpoint: ", 0) == 0);
    CHECK(vidnode::runtime::invalid_endpoint_name(endpoint));
  }
  CHECK(detail_of(validate(
          with([](job_spec& s) { s.endpoint = std::string(65, 'e'); })))
        == "endpoint: longer than 64 characters");
  CHECK(detail_of(validate(with([](job_spec& s) { s.endpoint = "a.b"; })))
        == "endpoint: may only contain letters, digits and - _");
}

TEST_CASE("a model pattern matches its own name, or with a trailing star "
          "every longer name that starts with its prefix",
          "[validation]") {
  using vidnode::runtime::model_pattern_matches;
  CHECK(model_pattern_matches("sim", "sim"));
  CHECK_FALSE(model_pattern_matches("sim", "sim-large"));
  CHECK(model_pattern_matches("sim-*", "sim-large"));
  CHECK_FALSE(model_pattern_matches("sim-*", "sim-"));
  CHECK_FALSE(model_pattern_matches("sim-*", "sim"));
  CHECK_FALSE(model_pattern_matches("sim-*", "simulator"));
  CHECK(model_pattern_matches("*", "anything"));
  CHECK_FALSE(model_pattern_matches("*", ""));
  CHECK_FALSE(model_pattern_matches("", "sim"));
}

TEST_CASE("a model pattern is a model name, or a prefix of one followed by "
          "a star",
          "[validation]") {
  using vidnode::runtime::invalid_model_pattern;
  for (const auto* ok : {"sim", "sim-*", "*", "org/model:v1.2", "a_b*"})
    CHECK_FALSE(invalid_model_pattern(ok));
  for (const auto* bad : {"", "**", "a*b", "sim *", "*sim"}) {
    INFO("pattern '" << bad << "'");
    CHECK(invalid_model_pattern(bad));
  }
  CHECK(invalid_model_pattern(std::string(129, 'm')));
  CHECK_FALSE(invalid_model_pattern(std::string(128, 'm') + "*"));
}
