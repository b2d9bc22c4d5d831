#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/http_server.hpp"
#include "vidnode/net/curl_transfers.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;

namespace {

net::curl_transfers::options quick() {
  net::curl_transfers::options opts;
  opts.connect_timeout = 1000ms;
  opts.total_timeout = 1000ms;
  opts.attempts = 3;
  opts.backoff = 10ms;
  opts.max_download_bytes = 1 << 20;
  return opts;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path()
          / ("vidnode-net-" + std::to_string(getpid()) + "-" + name))
    .string();
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

// Each call with a signal of its own that nothing but abort_all raises.

caf::expected<uint64_t> fetch(net::curl_transfers& transfers,
                              const std::string& url, const std::string& path) {
  actors::abort_signal cancel;
  return transfers.fetch(url, path, cancel);
}

caf::error upload(net::curl_transfers& transfers, const std::string& path,
                  const std::string& url) {
  actors::abort_signal cancel;
  return transfers.upload(path, url, cancel);
}

caf::error notify(net::curl_transfers& transfers, const std::string& url,
                  const runtime::job_result& result) {
  actors::abort_signal cancel;
  return transfers.notify(url, result, cancel);
}

} // namespace

TEST_CASE("a download over http arrives whole", "[transfers]") {
  test::http_server server;
  server.serve("voice.wav", std::string(5000, 'x'));
  net::curl_transfers transfers{quick()};
  auto path = temp_path("voice.wav");
  auto size = fetch(transfers, server.url("/files/voice.wav"), path);
  REQUIRE(size);
  CHECK(*size == 5000);
  CHECK(read_file(path) == std::string(5000, 'x'));
  std::filesystem::remove(path);
}

TEST_CASE("a download from a file URL works too", "[transfers]") {
  auto source = temp_path("source.bin");
  std::ofstream{source} << "local bytes";
  net::curl_transfers transfers{quick()};
  auto path = temp_path("copy.bin");
  REQUIRE(fetch(transfers, "file://" + source, path));
  CHECK(read_file(path) == "local bytes");
  std::filesystem::remove(source);
  std::filesystem::remove(path);
}

TEST_CASE("a 404 fails at once with a typed error naming the URL",
          "[transfers]") {
  test::http_server server;
  net::curl_transfers transfers{quick()};
  auto url = server.url("/files/missing.wav");
  auto path = temp_path("missing.wav");
  auto result = fetch(transfers, url, path);
  REQUIRE_FALSE(result);
  CHECK(runtime::is(result.error(), errc::transfer_failed));
  CHECK_THAT(runtime::describe(result.error()),
             Catch::Contains(url) && Catch::Contains("HTTP 404"));
  CHECK(server.requests_for("/files/missing.wav") == 1);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a server that fails with 500 and then answers is retried until "
          "it does",
          "[transfers]") {
  test::http_server server;
  server.serve("a.wav", "audio");
  net::curl_transfers transfers{quick()};
  auto path = temp_path("a.wav");
  REQUIRE(fetch(transfers, server.url("/flaky/2/files/a.wav"), path));
  CHECK(read_file(path) == "audio");
  CHECK(server.requests_for("/flaky/2/files/a.wav") == 3);
  auto never = fetch(transfers, server.url("/flaky/9/files/a.wav"), path);
  REQUIRE_FALSE(never);
  CHECK_THAT(runtime::describe(never.error()),
             Catch::Contains("HTTP 500") && Catch::Contains("after 3 tries"));
  std::filesystem::remove(path);
}

TEST_CASE("a server that stalls is given up on after the timeout",
          "[transfers]") {
  test::http_server server;
  auto opts = quick();
  opts.total_timeout = 300ms;
  opts.attempts = 1;
  net::curl_transfers transfers{opts};
  auto started = std::chrono::steady_clock::now();
  auto result = fetch(transfers, server.url("/stall/x"), temp_path("stall"));
  REQUIRE_FALSE(result);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK_THAT(runtime::describe(result.error()), Catch::Contains("imeout"));
}

TEST_CASE("a download larger than the limit is refused", "[transfers]") {
  test::http_server server;
  server.serve("huge.bin", std::string(2 << 20, 'h'));
  net::curl_transfers transfers{quick()};
  auto path = temp_path("huge.bin");
  auto result = fetch(transfers, server.url("/files/huge.bin"), path);
  REQUIRE_FALSE(result);
  CHECK_THAT(runtime::describe(result.error()), Catch::Contains("limit"));
  CHECK(server.requests_for("/files/huge.bin") == 1);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a download whose declared length is above the limit is refused "
          "before its body is read, without retries",
          "[transfers]") {
  test::http_server server;
  auto opts = quick();
  opts.max_download_bytes = 1024;
  opts.total_timeout = 5000ms;
  net::curl_transfers transfers{opts};
  auto path = temp_path("declared.bin");
  // 16 bytes come, the other 4080 never: reading the body would end in the
  // total timeout, on every try.
  auto started = std::chrono::steady_clock::now();
  auto result = fetch(transfers, server.url("/huge/4096"), path);
  auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(result);
  CHECK(runtime::is(result.error(), errc::transfer_failed));
  CHECK_THAT(runtime::describe(result.error()),
             Catch::Contains("larger than the limit of 1024 bytes"));
  CHECK(took < 2s);
  CHECK(server.requests_for("/huge/4096") == 1);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("an upload PUTs the file, retrying after a 500", "[transfers]") {
  test::http_server server;
  auto file = temp_path("out.mp4");
  std::ofstream{file} << "video bytes";
  net::curl_transfers transfers{quick()};
  CHECK_FALSE(upload(transfers, file, server.url("/flaky/1/uploads/out.mp4")));
  CHECK(server.read("uploads/out.mp4") == "video bytes");
  auto refused = upload(transfers, file, server.url("/status/403/x"));
  REQUIRE(refused);
  CHECK_THAT(runtime::describe(refused), Catch::Contains("HTTP 403"));
  std::filesystem::remove(file);
}

TEST_CASE("a webhook POSTs the job's result as JSON", "[transfers]") {
  test::http_server server;
  net::curl_transfers transfers{quick()};
  runtime::job_result result;
  result.id = runtime::job_id{7};
  result.state = runtime::job_state::succeeded;
  result.output = "/tmp/job-7.mp4";
  REQUIRE_FALSE(notify(transfers, server.url("/hooks/done"), result));
  auto posted = nlohmann::json::parse(server.read("hooks/done"));
  CHECK(posted["id"] == 7);
  CHECK(posted["state"] == "succeeded");
  CHECK(posted["output"] == "/tmp/job-7.mp4");
}

TEST_CASE("aborting makes a stalled transfer and every later one fail at "
          "once",
          "[transfers]") {
  test::http_server server;
  auto opts = quick();
  opts.total_timeout = 30000ms;
  net::curl_transfers transfers{opts};
  auto started = std::chrono::steady_clock::now();
  std::thread aborter{[&] {
    // Abort once the stalled request has reached the server.
    while (server.requests_for("/stall/x") == 0)
      std::this_thread::yield();
    transfers.abort_all();
  }};
  auto result = fetch(transfers, server.url("/stall/x"), temp_path("stalled"));
  aborter.join();
  REQUIRE_FALSE(result);
  CHECK(std::chrono::steady_clock::now() - started < 10s);
  CHECK_THAT(runtime::describe(result.error()), Catch::Contains("aborted"));
  auto later = fetch(transfers, server.url("/files/x"), temp_path("later"));
  REQUIRE_FALSE(later);
  CHECK_THAT(runtime::describe(later.error()), Catch::Contains("aborted"));
}

TEST_CASE("aborting one transfer closes its connection at once, is not "
          "retried, and leaves the others alone",
          "[transfers]") {
  test::http_server server;
  server.serve("x", "bytes");
  auto opts = quick();
  opts.total_timeout = 30000ms;
  net::curl_transfers transfers{opts};
  actors::abort_signal cancel;
  std::thread canceller{[&] {
    while (server.requests_for("/stall/job") == 0)
      std::this_thread::yield();
    cancel.abort();
  }};
  auto result =
    transfers.fetch(server.url("/stall/job"), temp_path("job"), cancel);
  canceller.join();
  REQUIRE_FALSE(result);
  CHECK_THAT(runtime::describe(result.error()),
             Catch::Contains("aborted: the job ended"));
  CHECK(server.wait_until_closed("/stall/job"));
  CHECK(server.requests_for("/stall/job") == 1);
  auto other = fetch(transfers, server.url("/files/x"), temp_path("other"));
  REQUIRE(other);
  CHECK(*other == 5);
  std::filesystem::remove(temp_path("other"));
}

TEST_CASE("a webhook is tried once per call, and any answer but 2xx fails it",
          "[transfers]") {
  test::http_server server;
  net::curl_transfers transfers{quick()};
  runtime::job_result result;
  result.id = runtime::job_id{8};
  for (auto code : {"500", "404", "302"}) {
    auto path = std::string{"/status/"} + code + "/hook";
    auto err = notify(transfers, server.url(path), result);
    REQUIRE(err);
    CHECK(runtime::is(err, errc::transfer_failed));
    CHECK_THAT(runtime::describe(err), Catch::Contains(std::string{"HTTP "}
                                                       + code));
    CHECK(server.requests_for(path) == 1);
  }
}
