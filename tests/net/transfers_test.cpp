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

int requests_for(const test::http_server& server, const std::string& path) {
  auto log = server.read("requests.log");
  int n = 0;
  for (size_t at = log.find(path + "\n"); at != std::string::npos;
       at = log.find(path + "\n", at + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("a download over http arrives whole", "[transfers]") {
  test::http_server server;
  server.serve("voice.wav", std::string(5000, 'x'));
  net::curl_transfers transfers{quick()};
  auto path = temp_path("voice.wav");
  auto size = transfers.fetch(server.url("/files/voice.wav"), path);
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
  REQUIRE(transfers.fetch("file://" + source, path));
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
  auto result = transfers.fetch(url, path);
  REQUIRE_FALSE(result);
  CHECK(runtime::is(result.error(), errc::transfer_failed));
  CHECK_THAT(runtime::describe(result.error()),
             Catch::Contains(url) && Catch::Contains("HTTP 404"));
  CHECK(requests_for(server, "/files/missing.wav") == 1);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a server that fails with 500 and then answers is retried until "
          "it does",
          "[transfers]") {
  test::http_server server;
  server.serve("a.wav", "audio");
  net::curl_transfers transfers{quick()};
  auto path = temp_path("a.wav");
  REQUIRE(transfers.fetch(server.url("/flaky/2/files/a.wav"), path));
  CHECK(read_file(path) == "audio");
  CHECK(requests_for(server, "/flaky/2/files/a.wav") == 3);
  auto never = transfers.fetch(server.url("/flaky/9/files/a.wav"), path);
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
  auto result = transfers.fetch(server.url("/stall/x"), temp_path("stall"));
  REQUIRE_FALSE(result);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK_THAT(runtime::describe(result.error()), Catch::Contains("imeout"));
}

TEST_CASE("a download larger than the limit is refused", "[transfers]") {
  test::http_server server;
  server.serve("huge.bin", std::string(2 << 20, 'h'));
  net::curl_transfers transfers{quick()};
  auto path = temp_path("huge.bin");
  auto result = transfers.fetch(server.url("/files/huge.bin"), path);
  REQUIRE_FALSE(result);
  CHECK_THAT(runtime::describe(result.error()), Catch::Contains("limit"));
  CHECK(requests_for(server, "/files/huge.bin") == 1);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("an upload PUTs the file, retrying after a 500", "[transfers]") {
  test::http_server server;
  auto file = temp_path("out.mp4");
  std::ofstream{file} << "video bytes";
  net::curl_transfers transfers{quick()};
  CHECK_FALSE(transfers.upload(file, server.url("/flaky/1/uploads/out.mp4")));
  CHECK(server.read("uploads/out.mp4") == "video bytes");
  auto refused = transfers.upload(file, server.url("/status/403/x"));
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
  REQUIRE_FALSE(transfers.notify(server.url("/hooks/done"), result));
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
    while (requests_for(server, "/stall/x") == 0)
      std::this_thread::yield();
    transfers.abort_all();
  }};
  auto result = transfers.fetch(server.url("/stall/x"), temp_path("stalled"));
  aborter.join();
  REQUIRE_FALSE(result);
  CHECK(std::chrono::steady_clock::now() - started < 10s);
  CHECK_THAT(runtime::describe(result.error()), Catch::Contains("aborted"));
  auto later = transfers.fetch(server.url("/files/x"), temp_path("later"));
  REQUIRE_FALSE(later);
  CHECK_THAT(runtime::describe(later.error()), Catch::Contains("aborted"));
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
  auto fetched = transfers.fetch(url, temp_path("x"));
  REQUIRE_FALSE(fetched);
  CHECK(runtime::is(fetched.error(), errc::transfer_failed));
  CHECK(runtime::describe(fetched.error())
        == "transfer_failed: fetching " + url
             + ": refused: 127.0.0.1 is a loopback address (vidnode "
               "--allow-private-urls allows it)");
  auto file = temp_path("up.bin");
  std::ofstream{file} << "bytes";
  auto uploaded = transfers.upload(file, server.url("/uploads/up.bin"));
  CHECK_THAT(runtime::describe(uploaded),
             Catch::Contains("uploading to") && Catch::Contains("refused"));
  auto notified = transfers.notify(server.url("/hooks/h"), {});
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
  auto result = transfers.fetch(url, temp_path("x"));
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
  auto result = transfers.fetch(server.url(path), temp_path("meta"));
  REQUIRE_FALSE(result);
  CHECK_THAT(
    runtime::describe(result.error()),
    Catch::EndsWith(": redirected to http://169.254.169.254/latest/meta-data: "
                    "refused: 169.254.169.254 is a link-local address (vidnode "
                    "--allow-private-urls allows it)"));
  CHECK(requests_for(server, path) == 1);
  auto hook = "/redirect/http%3A%2F%2F10.1.2.3%2Fhook";
  CHECK_THAT(runtime::describe(transfers.notify(server.url(hook), {})),
             Catch::Contains("10.1.2.3 is a private address"));
  CHECK(requests_for(server, hook) == 1);
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
  auto result = transfers.fetch(server.url(path), temp_path("a"));
  REQUIRE_FALSE(result);
  CHECK_THAT(runtime::describe(result.error()),
             Catch::EndsWith(": redirected to file://" + dir
                             + "/a.wav: refused: redirects may only go to "
                               "http and https URLs"));
  CHECK(requests_for(server, path) == 1);
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
  auto fetch = [&](net::curl_transfers& transfers, const std::string& url) {
    auto result = transfers.fetch(url, temp_path("file-copy"));
    return result ? std::string{"ok"} : runtime::describe(result.error());
  };
  auto url = [](const fs::path& p) { return "file://" + p.string(); };
  SECTION("not allowed at all") {
    net::curl_transfers transfers{quick()};
    CHECK(fetch(transfers, url(dir / "sub" / "voice.wav"))
          == "transfer_failed: fetching " + url(dir / "sub" / "voice.wav")
               + ": refused: file URLs are not allowed (vidnode "
                 "--allow-file-urls DIR allows those of files inside DIR)");
  }
  SECTION("allowed inside a directory") {
    auto opts = quick();
    opts.file_url_dir = dir.string();
    net::curl_transfers transfers{opts};
    CHECK(fetch(transfers, url(dir / "sub" / "voice.wav")) == "ok");
    CHECK(fetch(transfers, url(dir / "alias.wav")) == "ok");
    CHECK(fetch(transfers, url(dir / "sub" / ".." / "alias.wav")) == "ok");
    CHECK_THAT(fetch(transfers, url(top / "secret")),
               Catch::Contains("refused: '" + (top / "secret").string()
                               + "' is not inside '" + dir.string()
                               + "', the directory vidnode --allow-file-urls "
                                 "allows"));
    CHECK_THAT(fetch(transfers, url(dir / "escape")),
               Catch::Contains("(resolved: '" + (top / "secret").string()
                               + "') is not inside"));
    CHECK_THAT(fetch(transfers, url(dir / ".." / "secret")),
               Catch::Contains("refused"));
    // An encoded "..", which libcurl's URL parser leaves in the path.
    CHECK_THAT(fetch(transfers, url(dir) + "/%2e%2e/secret"),
               Catch::Contains("refused") && Catch::Contains("is not inside"));
    CHECK_THAT(fetch(transfers, url(top / "allowed-not")),
               Catch::Contains("refused"));
    auto out = temp_path("out.mp4");
    std::ofstream{out} << "video";
    CHECK_THAT(
      runtime::describe(transfers.upload(out, url(dir / "sub" / "up.mp4"))),
      Catch::Contains("refused: file URLs are never allowed for "
                      "uploads and webhooks"));
    CHECK_THAT(
      runtime::describe(transfers.notify(url(dir / "sub" / "hook"), {})),
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
