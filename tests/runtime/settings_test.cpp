#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/settings.hpp"

using namespace std::chrono_literals;
using vidnode::runtime::detail_of;
using vidnode::runtime::errc;
using vidnode::runtime::is;
using vidnode::runtime::node_settings;
using vidnode::runtime::validate;

namespace {

using mutation = std::function<void(node_settings&)>;

node_settings with(const mutation& change) {
  node_settings settings;
  change(settings);
  return settings;
}

} // namespace

TEST_CASE("the documented default settings are valid", "[settings]") {
  CHECK_FALSE(validate(node_settings{}));
}

TEST_CASE("every bound of the settings is itself accepted", "[settings]") {
  std::vector<mutation> edges = {
    [](node_settings& s) { s.listen_port = 0; },
    [](node_settings& s) { s.max_concurrency = 64; },
    [](node_settings& s) { s.queue_size = 1; },
    [](node_settings& s) { s.queue_size = 10000000; },
    [](node_settings& s) { s.max_attempts = 1; },
    [](node_settings& s) { s.max_attempts = 100; },
    [](node_settings& s) { s.restarts.max_restarts = 0; },
    [](node_settings& s) { s.restarts.backoff = s.restarts.backoff_max = 0s; },
    [](node_settings& s) { s.restarts.backoff = s.restarts.backoff_max; },
    [](node_settings& s) { s.max_results = 1; },
    [](node_settings& s) { s.max_bypass = 0; },
    [](node_settings& s) { s.max_bypass = 100000; },
    [](node_settings& s) { s.cuda_reserve_bytes = 0; },
    [](node_settings& s) { s.cuda_reserve_bytes = 1ull << 40; },
    [](node_settings& s) { s.max_message_size = 512u << 10; },
    [](node_settings& s) { s.max_message_size = (4ull << 30) - 1; },
  };
  for (size_t i = 0; i < edges.size(); ++i) {
    INFO("bound #" << i);
    CHECK_FALSE(validate(with(edges[i])));
  }
}

TEST_CASE("a bad setting is refused as an invalid request naming that "
          "setting",
          "[settings]") {
  std::vector<std::pair<std::string, mutation>> cases = {
    {"listen", [](node_settings& s) { s.listen_host.clear(); }},
    {"devices", [](node_settings& s) { s.devices.clear(); }},
    {"max-concurrency", [](node_settings& s) { s.max_concurrency = 0; }},
    {"max-concurrency", [](node_settings& s) { s.max_concurrency = 65; }},
    {"queue-size", [](node_settings& s) { s.queue_size = 0; }},
    {"queue-size", [](node_settings& s) { s.queue_size = 10000001; }},
    {"queue-timeout", [](node_settings& s) { s.queue_timeout = 0s; }},
    {"run-timeout", [](node_settings& s) { s.run_timeout = -1s; }},
    {"max-attempts", [](node_settings& s) { s.max_attempts = 0; }},
    {"max-attempts", [](node_settings& s) { s.max_attempts = 101; }},
    {"max-restarts", [](node_settings& s) { s.restarts.max_restarts = -1; }},
    {"restart-window", [](node_settings& s) { s.restarts.window = 0s; }},
    {"restart-backoff", [](node_settings& s) { s.restarts.backoff = -1ms; }},
    {"restart-backoff-max",
     [](node_settings& s) { s.restarts.backoff_max = 99ms; }},
    {"aging-interval", [](node_settings& s) { s.aging_interval = 0s; }},
    {"result-ttl", [](node_settings& s) { s.result_ttl = -1h; }},
    {"max-results", [](node_settings& s) { s.max_results = 0; }},
    {"max-bypass", [](node_settings& s) { s.max_bypass = -1; }},
    {"max-bypass", [](node_settings& s) { s.max_bypass = 100001; }},
    {"cuda-reserve",
     [](node_settings& s) { s.cuda_reserve_bytes = (1ull << 40) + 1; }},
    {"max-message-size",
     [](node_settings& s) { s.max_message_size = (512u << 10) - 1; }},
    {"max-message-size",
     [](node_settings& s) { s.max_message_size = 4ull << 30; }},
  };
  for (auto& [setting, change] : cases) {
    auto err = validate(with(change));
    INFO("expected a complaint about " << setting << ", got '" << detail_of(err)
                                       << "'");
    CHECK(is(err, errc::invalid_request));
    CHECK(detail_of(err).rfind(setting + ": ", 0) == 0);
  }
}

TEST_CASE("a refused setting shows the value it got", "[settings]") {
  CHECK(
    detail_of(validate(with([](node_settings& s) { s.max_concurrency = 65; })))
    == "max-concurrency: must be between 1 and 64, got 65");
  CHECK(detail_of(validate(with([](node_settings& s) { s.run_timeout = -5s; })))
        == "run-timeout: must be positive, got -5s");
  CHECK(detail_of(validate(
          with([](node_settings& s) { s.max_message_size = 64u << 10; })))
        == "max-message-size: must be from 512KiB to 4095MiB, got 64KiB");
}

TEST_CASE("chunks are asked for at 1 MiB, cut to what fits in the asker's "
          "message size limit with room for the envelope",
          "[settings]") {
  using vidnode::runtime::chunk_bytes_within;
  using vidnode::runtime::chunk_envelope_bytes;
  using vidnode::runtime::max_chunk_bytes;
  constexpr uint64_t mib = 1 << 20;
  CHECK(chunk_bytes_within(vidnode::runtime::default_max_message_size) == mib);
  CHECK(chunk_bytes_within(mib) == mib - chunk_envelope_bytes);
  CHECK(chunk_bytes_within(mib + chunk_envelope_bytes) == mib);
  CHECK(chunk_bytes_within(512u << 10) == (512u << 10) - chunk_envelope_bytes);
  CHECK(chunk_bytes_within(64u << 10, 1000) == 1000);
  CHECK(chunk_bytes_within(1ull << 30, uint32_t{16} << 20) == max_chunk_bytes);
  CHECK(chunk_bytes_within(1ull << 30, 0) == 1);
  CHECK(chunk_bytes_within(chunk_envelope_bytes) == 1);
  CHECK(chunk_bytes_within(0) == 1);
}

TEST_CASE("a collective host must be an address without a port that "
          "resolves here",
          "[settings]") {
  for (std::string host : {"127.0.0.1", "::1", "localhost"}) {
    node_settings s;
    s.collective_host = host;
    INFO(host);
    CHECK(!validate(s));
  }
  for (std::string host : {"127.0.0.1:80", "no-such-host.invalid", ""}) {
    node_settings s;
    s.collective_host = host;
    INFO(host);
    auto err = validate(s);
    REQUIRE(err);
    CHECK(is(err, errc::invalid_request));
    CHECK_THAT(detail_of(err), Catch::Contains("collective-host"));
  }
}
