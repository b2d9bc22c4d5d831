#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "vidnode/net/url_policy.hpp"

using namespace vidnode;
using actors::url_use;
using net::address_class;
using net::classify_literal;

namespace {

address_class of(const std::string& literal) {
  auto x = classify_literal(literal);
  INFO(literal);
  REQUIRE(x);
  return *x;
}

} // namespace

TEST_CASE("every IPv4 special-purpose block is classified, edges included, "
          "and public addresses are global",
          "[url_policy]") {
  CHECK(of("0.0.0.0") == address_class::unspecified);
  CHECK(of("0.255.255.255") == address_class::unspecified);
  CHECK(of("10.0.0.0") == address_class::private_network);
  CHECK(of("10.255.255.255") == address_class::private_network);
  CHECK(of("100.63.255.255") == address_class::global);
  CHECK(of("100.64.0.0") == address_class::shared);
  CHECK(of("100.127.255.255") == address_class::shared);
  CHECK(of("100.128.0.0") == address_class::global);
  CHECK(of("127.0.0.1") == address_class::loopback);
  CHECK(of("127.255.255.254") == address_class::loopback);
  CHECK(of("169.254.169.254") == address_class::link_local);
  CHECK(of("169.253.0.1") == address_class::global);
  CHECK(of("172.15.255.255") == address_class::global);
  CHECK(of("172.16.0.0") == address_class::private_network);
  CHECK(of("172.31.255.255") == address_class::private_network);
  CHECK(of("172.32.0.0") == address_class::global);
  CHECK(of("192.0.0.8") == address_class::protocol_assignment);
  CHECK(of("192.0.1.1") == address_class::global);
  CHECK(of("192.168.0.1") == address_class::private_network);
  CHECK(of("192.169.0.1") == address_class::global);
  CHECK(of("198.17.255.255") == address_class::global);
  CHECK(of("198.18.0.0") == address_class::benchmarking);
  CHECK(of("198.19.255.255") == address_class::benchmarking);
  CHECK(of("198.20.0.0") == address_class::global);
  CHECK(of("224.0.0.1") == address_class::multicast);
  CHECK(of("239.255.255.255") == address_class::multicast);
  CHECK(of("240.0.0.1") == address_class::reserved);
  CHECK(of("255.255.255.255") == address_class::reserved);
  CHECK(of("192.0.2.1") == address_class::documentation);
  CHECK(of("198.51.100.1") == address_class::documentation);
  CHECK(of("203.0.113.255") == address_class::documentation);
  CHECK(of("192.0.3.1") == address_class::global);
  CHECK(of("198.51.101.1") == address_class::global);
  CHECK(of("203.0.114.1") == address_class::global);
  CHECK(of("8.8.8.8") == address_class::global);
  CHECK(of("1.1.1.1") == address_class::global);
  CHECK(of("223.255.255.255") == address_class::global);
}

TEST_CASE("every IPv6 special-purpose block is classified, embedded IPv4 "
          "addresses by their IPv4 class, and public addresses are global",
          "[url_policy]") {
  CHECK(of("::") == address_class::unspecified);
  CHECK(of("::1") == address_class::loopback);
  CHECK(of("[::1]") == address_class::loopback);
  CHECK(of("fc00::1") == address_class::private_network);
  CHECK(of("fdff:ffff::1") == address_class::private_network);
  CHECK(of("fbff::1") == address_class::global);
  CHECK(of("fe80::1") == address_class::link_local);
  CHECK(of("fe80::1%eth0") == address_class::link_local);
  CHECK(of("febf:ffff::1") == address_class::link_local);
  CHECK(of("ff02::1") == address_class::multicast);
  CHECK(of("::ffff:127.0.0.1") == address_class::loopback);
  CHECK(of("::ffff:10.0.0.1") == address_class::private_network);
  CHECK(of("::ffff:8.8.8.8") == address_class::global);
  CHECK(of("::127.0.0.1") == address_class::loopback);
  CHECK(of("64:ff9b::169.254.169.254") == address_class::link_local);
  CHECK(of("64:ff9b::192.168.1.1") == address_class::private_network);
  CHECK(of("64:ff9b::8.8.8.8") == address_class::global);
  CHECK(of("2001:4860::8888") == address_class::global);
  CHECK(of("2606:4700:4700::1111") == address_class::global);
  // Found by the adversarial pass: these were judged global.
  CHECK(of("::ffff:0:127.0.0.1") == address_class::loopback);
  CHECK(of("2002:7f00:1::1") == address_class::loopback);  // 6to4 127.0.0.1
  CHECK(of("2002:0808:0808::1") == address_class::global); // 6to4 8.8.8.8
  CHECK(of("2001:db8::1") == address_class::documentation);
  CHECK(of("2001::1") == address_class::protocol_assignment); // Teredo
  CHECK(of("2001:10::1") == address_class::protocol_assignment);
  CHECK(of("2001:1ff::1") == address_class::protocol_assignment);
  CHECK(of("2001:200::1") == address_class::global);
  CHECK(of("100::1") == address_class::reserved);
  CHECK(of("100:0:0:1::1") == address_class::global);
}

TEST_CASE("a host name or an unusual IPv4 form is no literal address",
          "[url_policy]") {
  CHECK_FALSE(classify_literal("example.com"));
  CHECK_FALSE(classify_literal("localhost"));
  CHECK_FALSE(classify_literal("127.1"));
  CHECK_FALSE(classify_literal(""));
}

TEST_CASE("a default policy refuses private literal hosts, localhost, file "
          "URLs and other schemes, and accepts global hosts",
          "[url_policy]") {
  net::url_policy policy{{}, ""};
  CHECK_FALSE(policy.refusal(url_use::fetch, "https://example.com/a.wav"));
  CHECK_FALSE(policy.refusal(url_use::upload, "http://8.8.8.8:8080/x"));
  CHECK_FALSE(policy.refusal(url_use::notify, "http://[2001:4860::8888]/"));
  // Schemes are case-insensitive (RFC 3986).
  CHECK_FALSE(policy.refusal(url_use::fetch, "HTTPS://example.com/a.wav"));
  CHECK(policy.refusal(url_use::fetch, "FILE:///etc/passwd"));
  CHECK(policy.refusal(url_use::notify, "http://10.0.0.1/hook")
        == "10.0.0.1 is a private address (vidnode --allow-private-urls "
           "allows it)");
  CHECK(policy.refusal(url_use::notify, "http://[fe80::1%25eth0]/hook")
        == "fe80::1 is a link-local address (vidnode --allow-private-urls "
           "allows it)");
  // libcurl's parser normalizes other IPv4 forms to the dotted quad.
  CHECK_THAT(policy.refusal(url_use::fetch, "http://2130706433/").value_or(""),
             Catch::Contains("127.0.0.1 is a loopback address"));
  CHECK_THAT(policy.refusal(url_use::fetch, "http://0x7f.1/").value_or(""),
             Catch::Contains("127.0.0.1 is a loopback address"));
  CHECK_THAT(policy.refusal(url_use::fetch, "http://LocalHost./").value_or(""),
             Catch::Contains("is the loopback interface"));
  CHECK_THAT(policy.refusal(url_use::fetch, "http://a.localhost/").value_or(""),
             Catch::Contains("is the loopback interface"));
  CHECK_FALSE(policy.refusal(url_use::fetch, "http://notlocalhost/"));
  CHECK_THAT(policy.refusal(url_use::fetch, "file:///etc/passwd").value_or(""),
             Catch::Contains("--allow-file-urls DIR"));
  CHECK_THAT(policy.refusal(url_use::fetch, "ftp://example.com/").value_or(""),
             Catch::Contains("'ftp' URLs are not allowed (only http and "
                             "https, and file with vidnode "
                             "--allow-file-urls DIR)"));
  CHECK_THAT(policy.refusal(url_use::fetch, "not a url").value_or(""),
             Catch::Contains("not a URL libcurl accepts"));
}

TEST_CASE("allowing one class of addresses allows that class alone",
          "[url_policy]") {
  net::url_policy policy{{address_class::loopback}, ""};
  CHECK_FALSE(policy.refusal(url_use::fetch, "http://127.0.0.1:1/"));
  CHECK_FALSE(policy.refusal(url_use::fetch, "http://localhost:1/"));
  CHECK(policy.refusal(url_use::fetch, "http://192.168.1.1/"));
  CHECK_FALSE(policy.allows_every_address());
  net::url_policy open{net::all_special_address_classes(), ""};
  CHECK(open.allows_every_address());
  CHECK_FALSE(open.refusal(url_use::fetch, "http://169.254.169.254/"));
  CHECK_FALSE(open.refusal("224.0.0.1", address_class::multicast));
}

TEST_CASE("file URLs are judged by their decoded and resolved path, and "
          "never allowed for uploads and webhooks",
          "[url_policy]") {
  namespace fs = std::filesystem;
  auto top = fs::temp_directory_path()
             / ("vidnode-url-policy-" + std::to_string(getpid()));
  fs::create_directories(top / "dir" / "sub");
  fs::create_directories(top / "dir-2");
  std::ofstream{top / "dir" / "a b.wav"} << "a";
  // Given with a trailing slash and a "..": resolved once.
  net::url_policy policy{{}, (top / "dir" / "sub" / ".." / "").string()};
  CHECK(policy.file_root() == top / "dir");
  auto file = "file://" + top.string();
  CHECK_FALSE(policy.refusal(url_use::fetch, file + "/dir/a%20b.wav"));
  CHECK_FALSE(policy.refusal(url_use::fetch, file + "/dir/sub/later.wav"));
  CHECK_FALSE(policy.refusal(url_use::fetch,
                             "file://localhost" + top.string() + "/dir/x"));
  // A sibling whose name starts with the directory's is outside.
  CHECK(policy.refusal(url_use::fetch, file + "/dir-2/x"));
  // The directory itself is not a file inside it.
  CHECK(policy.refusal(url_use::fetch, file + "/dir"));
  CHECK(policy.refusal(url_use::fetch, file + "/dir/sub/%2E%2E/%2e%2e/x"));
  CHECK(policy.refusal(url_use::fetch, "file://elsewhere/etc/passwd"));
  CHECK(policy.refusal(url_use::upload, file + "/dir/out.mp4"));
  CHECK(policy.refusal(url_use::notify, file + "/dir/hook"));
  // A directory or a FIFO inside it is no audio file: a FIFO would block
  // the download's open() where no cancel reaches it.
  REQUIRE(mkfifo((top / "dir" / "fifo.wav").c_str(), 0600) == 0);
  auto not_regular = policy.refusal(url_use::fetch, file + "/dir/fifo.wav");
  REQUIRE(not_regular);
  CHECK_THAT(*not_regular, Catch::Contains("is not a regular file"));
  CHECK(policy.refusal(url_use::fetch, file + "/dir/sub/"));
  fs::remove_all(top);
}
