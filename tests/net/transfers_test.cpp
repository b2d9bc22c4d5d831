#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
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

/// Short timeouts and backoff; loopback allowed (the test server's
/// 127.0.0.1), and nothing else that is not global.
net::curl_transfers::options quick() {
  net::curl_transfers::options opts;
  opts.allowed_addresses = {net::address_class::loopback};
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

TEST_CASE("a download from a file URL inside the allowed directory works "
          "too",
          "[transfers]") {
  auto dir = temp_path("allowed");
  std::filesystem::create_directories(dir);
  auto source = dir + "/source.bin";
  std::ofstream{source} << "local bytes";
  auto opts = quick();
  opts.file_url_dir = dir;
  net::curl_transfers transfers{opts};
  auto path = temp_path("copy.bin");
  REQUIRE(fetch(transfers, "file://" + source, path));
  CHECK(read_file(path) == "local bytes");
  std::filesystem::remove_all(dir);
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

TEST_CASE("a webhook that is redirected is POSTed, body and all, where it "
          "is redirected to",
          "[transfers]") {
  test::http_server server;
  net::curl_transfers transfers{quick()};
  runtime::job_result result;
  result.id = runtime::job_id{9};
  // %2F-encoded, as the /redirect/ route decodes its target.
  auto target = server.url("/hooks/moved");
  std::string encoded;
  for (char c : target)
    encoded += c == '/'   ? std::string{"%2F"}
               : c == ':' ? "%3A"
                          : std::string(1, c);
  REQUIRE_FALSE(notify(transfers, server.url("/redirect/" + encoded), result));
  CHECK(server.requests_for("/hooks/moved") == 1);
  auto posted = server.read("hooks/moved");
  REQUIRE_FALSE(posted.empty());
  CHECK(nlohmann::json::parse(posted)["id"] == 9);
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
    server.wait_for_requests("/stall/x");
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
    server.wait_for_requests("/stall/job");
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
    CHECK_THAT(runtime::describe(err),
               Catch::Contains(std::string{"HTTP "} + code));
    CHECK(server.requests_for(path) == 1);
  }
}

TEST_CASE("without allowing private addresses, a loopback URL is refused "
          "at once for downloads, uploads and webhooks, and nothing reaches "
          "the server",
          "[transfers][url_policy]") {
  test::http_server server;
  server.serve("x", "x");
  auto opts = quick();
  opts.allowed_addresses = {};
  net::curl_transfers transfers{opts};
  auto url = server.url("/files/x");
  auto fetched = fetch(transfers, url, temp_path("x"));
  REQUIRE_FALSE(fetched);
  CHECK(runtime::is(fetched.error(), errc::transfer_failed));
  CHECK(runtime::describe(fetched.error())
        == "transfer_failed: fetching " + url
             + ": refused: 127.0.0.1 is a loopback address (vidnode "
               "--allow-private-urls allows it)");
  auto file = temp_path("up.bin");
  std::ofstream{file} << "bytes";
  auto uploaded = upload(transfers, file, server.url("/uploads/up.bin"));
  CHECK_THAT(runtime::describe(uploaded),
             Catch::Contains("uploading to") && Catch::Contains("refused"));
  auto notified = notify(transfers, server.url("/hooks/h"), {});
  CHECK_THAT(runtime::describe(notified),
             Catch::Contains("notifying") && Catch::Contains("refused"));
  CHECK(server.read("requests.log").empty());
  std::filesystem::remove(file);
}

TEST_CASE("a host name that resolves to a loopback address is refused when "
          "connecting, without a retry",
          "[transfers][url_policy]") {
  // A name /etc/hosts maps to a loopback address, other than localhost
  // (which is refused before any lookup).
  std::ifstream hosts{"/etc/hosts"};
  std::string line;
  std::string name;
  while (name.empty() && std::getline(hosts, line)) {
    std::istringstream words{line};
    std::string address;
    std::string word;
    words >> address;
    if (address.rfind("127.", 0) != 0 && address != "::1")
      continue;
    while (name.empty() && words >> word && word[0] != '#')
      if (word.find("localhost") == std::string::npos)
        name = word;
  }
  if (name.empty()) {
    WARN("skipped: /etc/hosts names no loopback host but localhost");
    return;
  }
  auto opts = quick();
  opts.allowed_addresses = {};
  opts.backoff = 2000ms;
  net::curl_transfers transfers{opts};
  auto url = "http://" + name + ":1/files/x";
  INFO(url);
  auto started = std::chrono::steady_clock::now();
  auto result = fetch(transfers, url, temp_path("x"));
  REQUIRE_FALSE(result);
  CHECK_THAT(runtime::describe(result.error()),
             Catch::Contains(url + ": refused: ")
               && Catch::Contains("is a loopback address")
               && !Catch::Contains("tries"));
  // Not retried: a retry would have waited the 2 s backoff.
  CHECK(std::chrono::steady_clock::now() - started < 1500ms);
}

TEST_CASE("a redirect to an address that is not allowed is refused before "
          "connecting, and not retried",
          "[transfers][url_policy]") {
  test::http_server server;
  net::curl_transfers transfers{quick()};
  auto path = "/redirect/http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data";
  auto result = fetch(transfers, server.url(path), temp_path("meta"));
  REQUIRE_FALSE(result);
  CHECK_THAT(
    runtime::describe(result.error()),
    Catch::EndsWith(": redirected to http://169.254.169.254/latest/meta-data: "
                    "refused: 169.254.169.254 is a link-local address (vidnode "
                    "--allow-private-urls allows it)"));
  CHECK(server.requests_for(path) == 1);
  auto hook = "/redirect/http%3A%2F%2F10.1.2.3%2Fhook";
  CHECK_THAT(runtime::describe(notify(transfers, server.url(hook), {})),
             Catch::Contains("10.1.2.3 is a private address"));
  CHECK(server.requests_for(hook) == 1);
}

TEST_CASE("a redirect to a file URL is refused", "[transfers][url_policy]") {
  auto dir = temp_path("redirect-allowed");
  std::filesystem::create_directories(dir);
  std::ofstream{dir + "/a.wav"} << "local";
  test::http_server server;
  auto opts = quick();
  opts.file_url_dir = dir;
  net::curl_transfers transfers{opts};
  auto path = "/redirect/file%3A%2F%2F" + dir + "%2Fa.wav";
  auto result = fetch(transfers, server.url(path), temp_path("a"));
  REQUIRE_FALSE(result);
  CHECK_THAT(runtime::describe(result.error()),
             Catch::EndsWith(": redirected to file://" + dir
                             + "/a.wav: refused: redirects may only go to "
                               "http and https URLs"));
  CHECK(server.requests_for(path) == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("file URLs are refused unless allowed, and then only inside the "
          "allowed directory, through no symbolic link or .. that escapes "
          "it",
          "[transfers][url_policy]") {
  namespace fs = std::filesystem;
  auto top = fs::path{temp_path("file-urls")};
  auto dir = top / "allowed";
  fs::create_directories(dir / "sub");
  std::ofstream{top / "secret"} << "secret";
  std::ofstream{dir / "sub" / "voice.wav"} << "voice";
  fs::create_symlink(top / "secret", dir / "escape");
  fs::create_symlink(dir / "sub" / "voice.wav", dir / "alias.wav");
  auto try_fetch = [&](net::curl_transfers& transfers, const std::string& url) {
    auto result = fetch(transfers, url, temp_path("file-copy"));
    return result ? std::string{"ok"} : runtime::describe(result.error());
  };
  auto url = [](const fs::path& p) { return "file://" + p.string(); };
  SECTION("not allowed at all") {
    net::curl_transfers transfers{quick()};
    CHECK(try_fetch(transfers, url(dir / "sub" / "voice.wav"))
          == "transfer_failed: fetching " + url(dir / "sub" / "voice.wav")
               + ": refused: file URLs are not allowed (vidnode "
                 "--allow-file-urls DIR allows those of files inside DIR)");
  }
  SECTION("allowed inside a directory") {
    auto opts = quick();
    opts.file_url_dir = dir.string();
    net::curl_transfers transfers{opts};
    CHECK(try_fetch(transfers, url(dir / "sub" / "voice.wav")) == "ok");
    CHECK(try_fetch(transfers, url(dir / "alias.wav")) == "ok");
    CHECK(try_fetch(transfers, url(dir / "sub" / ".." / "alias.wav")) == "ok");
    CHECK_THAT(try_fetch(transfers, url(top / "secret")),
               Catch::Contains("refused: '" + (top / "secret").string()
                               + "' is not inside '" + dir.string()
                               + "', the directory vidnode --allow-file-urls "
                                 "allows"));
    CHECK_THAT(try_fetch(transfers, url(dir / "escape")),
               Catch::Contains("(resolved: '" + (top / "secret").string()
                               + "') is not inside"));
    CHECK_THAT(try_fetch(transfers, url(dir / ".." / "secret")),
               Catch::Contains("refused"));
    // An encoded "..", which libcurl's URL parser leaves in the path.
    CHECK_THAT(try_fetch(transfers, url(dir) + "/%2e%2e/secret"),
               Catch::Contains("refused") && Catch::Contains("is not inside"));
    CHECK_THAT(try_fetch(transfers, url(top / "allowed-not")),
               Catch::Contains("refused"));
    auto out = temp_path("out.mp4");
    std::ofstream{out} << "video";
    CHECK_THAT(
      runtime::describe(upload(transfers, out, url(dir / "sub" / "up.mp4"))),
      Catch::Contains("refused: file URLs are never allowed for "
                      "uploads and webhooks"));
    CHECK_THAT(
      runtime::describe(notify(transfers, url(dir / "sub" / "hook"), {})),
      Catch::Contains("refused"));
    CHECK_FALSE(fs::exists(dir / "sub" / "up.mp4"));
    fs::remove(out);
  }
  fs::remove(temp_path("file-copy"));
  fs::remove_all(top);
}

TEST_CASE("check_url refuses at submission what is sure to be refused, "
          "naming the setting that allows it",
          "[transfers][url_policy]") {
  using actors::url_use;
  net::curl_transfers::options opts;
  net::curl_transfers transfers{opts};
  auto refusal = [&](url_use use, const std::string& url) {
    auto err = transfers.check_url(use, url);
    if (!err)
      return std::string{"accepted"};
    CHECK(runtime::is(err, errc::invalid_request));
    return runtime::detail_of(err);
  };
  CHECK(refusal(url_use::fetch, "https://example.com/a.wav") == "accepted");
  CHECK(refusal(url_use::notify, "http://8.8.8.8/hook") == "accepted");
  CHECK(refusal(url_use::fetch, "file:///etc/passwd")
        == "refused: file URLs are not allowed (vidnode --allow-file-urls "
           "DIR allows those of files inside DIR)");
  CHECK(refusal(url_use::notify, "http://127.0.0.1:9/hook")
        == "refused: 127.0.0.1 is a loopback address (vidnode "
           "--allow-private-urls allows it)");
  CHECK(refusal(url_use::upload, "http://[::ffff:169.254.169.254]/")
        == "refused: ::ffff:169.254.169.254 is a link-local address (vidnode "
           "--allow-private-urls allows it)");
  CHECK_THAT(refusal(url_use::fetch, "http://localhost:8080/"),
             Catch::Contains("localhost is the loopback interface"));
  CHECK_THAT(refusal(url_use::upload, "ftp://example.com/x"),
             Catch::Contains("'ftp' URLs are not allowed"));
  CHECK_THAT(refusal(url_use::upload, "file:///tmp/x"),
             Catch::Contains("never allowed for uploads"));
  opts.allowed_addresses = net::all_special_address_classes();
  net::curl_transfers open{opts};
  CHECK_FALSE(open.check_url(url_use::notify, "http://127.0.0.1:9/hook"));
  CHECK_FALSE(open.check_url(url_use::fetch, "http://localhost/a.wav"));
  CHECK(open.check_url(url_use::fetch, "file:///etc/passwd"));
}
