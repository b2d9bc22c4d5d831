#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/http_server.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"
#include "vidnode/net/curl_transfers.hpp"
#include "vidnode/net/s3_presign.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/validation.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using runtime::errc;

namespace {

constexpr const char* secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

std::chrono::system_clock::time_point at(std::time_t seconds) {
  return std::chrono::system_clock::from_time_t(seconds);
}

/// 2024-03-01T12:34:56Z.
const auto march_first = at(1709296496);

json request() {
  return {{"accessId", "AKIDEXAMPLE"},
          {"accessSecret", secret},
          {"bucketName", "my-bucket"},
          {"endpointUrl", "http://127.0.0.1:9000"}};
}

net::s3_config parsed(const json& value) {
  auto cfg = net::parse_s3_config(value);
  REQUIRE(cfg);
  return *cfg;
}

/// What follows `name=` in `url`'s query, up to the next '&'.
std::string query_value(const std::string& url, const std::string& name) {
  auto at = url.find("?" + name + "=");
  if (at == std::string::npos)
    at = url.find("&" + name + "=");
  if (at == std::string::npos)
    return "";
  at += name.size() + 2;
  return url.substr(at, url.find('&', at) - at);
}

/// The part of `url` between its authority and its query.
std::string path_of(const std::string& url) {
  auto begin = url.find('/', url.find("://") + 3);
  return url.substr(begin, url.find('?') - begin);
}

/// Runs `openssl dgst` with `options` on a file holding `data`; the hex
/// digest it prints.
std::string openssl_dgst(const test::temp_directory& dir,
                         std::vector<std::string> options,
                         const std::string& data) {
  auto file = dir.path() + "/data";
  test::write_file(file, data);
  std::vector<std::string> argv{"/usr/bin/env", "openssl", "dgst", "-sha256",
                                "-r"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(file);
  auto result = test::run_command(argv);
  REQUIRE(result.status == 0);
  return result.out.substr(0, result.out.find(' '));
}

std::string openssl_hmac(const test::temp_directory& dir,
                         const std::string& key_option,
                         const std::string& data) {
  return openssl_dgst(dir, {"-mac", "HMAC", "-macopt", key_option}, data);
}

} // namespace

TEST_CASE("the signer reproduces AWS's presigned URL example", "[s3_presign]") {
  // "Authenticating Requests: Using Query Parameters (AWS Signature Version
  // 4)", Amazon S3 API Reference: a GET of examplebucket/test.txt, valid
  // for a day from 2013-05-24T00:00:00Z.
  net::s3_config cfg;
  cfg.access_id = "AKIAIOSFODNN7EXAMPLE";
  cfg.access_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  cfg.bucket = "examplebucket";
  cfg.endpoint_url = "https://s3.amazonaws.com";
  auto url = net::presigned_url(cfg, "GET", net::s3_addressing::virtual_host,
                                "test.txt", 86400s, at(1369353600));
  CHECK(url
        == "https://examplebucket.s3.amazonaws.com/test.txt"
           "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3"
           "%2Faws4_request"
           "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
           "&X-Amz-SignedHeaders=host"
           "&X-Amz-Signature="
           "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_CASE("a presigned PUT URL carries the signature openssl derives from "
          "the canonical request",
          "[s3_presign]") {
  // The second derivation: the canonical request and string to sign of
  // SigV4 written out by hand for this one case (path style, the object
  // path as a prefix, a key with a space, '+', '=' and 'é', a non-default
  // port in the host header), hashed and signed by the openssl command
  // line instead of vidnode's EVP calls.
  auto value = request();
  value["objectPath"] = "/renders/";
  auto cfg = parsed(value);
  auto url = net::presigned_put_url(cfg, "vidnode/a b+c=d \xC3\xA9.mp4", 3600s,
                                    march_first);
  const std::string path = "/my-bucket/renders/vidnode/a%20b%2Bc%3Dd%20%C3%A9"
                           ".mp4";
  const std::string query =
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20240301%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240301T123456Z&X-Amz-Expires=3600"
    "&X-Amz-SignedHeaders=host";
  const std::string canonical_request = "PUT\n" + path + "\n" + query + "\n"
                                        + "host:127.0.0.1:9000\n"
                                          "\n"
                                          "host\n"
                                          "UNSIGNED-PAYLOAD";
  test::temp_directory dir{"vidnode-s3-presign"};
  auto string_to_sign = "AWS4-HMAC-SHA256\n20240301T123456Z\n"
                        "20240301/us-east-1/s3/aws4_request\n"
                        + openssl_dgst(dir, {}, canonical_request);
  auto key = openssl_hmac(dir, std::string{"key:AWS4"} + secret, "20240301");
  key = openssl_hmac(dir, "hexkey:" + key, "us-east-1");
  key = openssl_hmac(dir, "hexkey:" + key, "s3");
  key = openssl_hmac(dir, "hexkey:" + key, "aws4_request");
  auto signature = openssl_hmac(dir, "hexkey:" + key, string_to_sign);
  REQUIRE(signature.size() == 64);
  // A third derivation, pinned: botocore 1.43.11's S3SigV4QueryAuth, its
  // clock fixed at the same moment, signed the same request with this.
  CHECK(signature
        == "7385d44f2d7b768aaaf186fb16b3ef1772ceb93a6c5516f47df008e7006cc4c2");
  CHECK(url
        == "http://127.0.0.1:9000" + path + "?" + query
             + "&X-Amz-Signature=" + signature);
}

TEST_CASE("keys are percent-encoded as SigV4 asks, '/' kept in the path",
          "[s3_presign]") {
  auto cfg = parsed(request());
  auto path = [&](const std::string& key) {
    return path_of(net::presigned_put_url(cfg, key, 60s, march_first));
  };
  CHECK(path("a b.mp4") == "/my-bucket/a%20b.mp4");
  CHECK(path("a+b=c.mp4") == "/my-bucket/a%2Bb%3Dc.mp4");
  CHECK(path("\xE5\x8B\x95\xE7\x94\xBB/\xC3\xA9t\xC3\xA9.mp4")
        == "/my-bucket/%E5%8B%95%E7%94%BB/%C3%A9t%C3%A9.mp4");
  CHECK(path("Az09-._~/x") == "/my-bucket/Az09-._~/x");
  CHECK(path("a?b#c&d%e") == "/my-bucket/a%3Fb%23c%26d%25e");
  auto url = net::presigned_put_url(cfg, "x", 60s, march_first);
  CHECK(query_value(url, "X-Amz-Credential")
        == "AKIDEXAMPLE%2F20240301%2Fus-east-1%2Fs3%2Faws4_request");
  cfg.access_id = "AK+ID=1";
  url = net::presigned_put_url(cfg, "x", 60s, march_first);
  CHECK(query_value(url, "X-Amz-Credential")
        == "AK%2BID%3D1%2F20240301%2Fus-east-1%2Fs3%2Faws4_request");
}

TEST_CASE("the object path is the key, or its prefix when it ends with '/'",
          "[s3_presign]") {
  auto cfg = parsed(request());
  CHECK(net::s3_object_key(cfg, "vidnode/J1.mp4") == "vidnode/J1.mp4");
  cfg.object_path = "out/clip.mp4";
  CHECK(net::s3_object_key(cfg, "vidnode/J1.mp4") == "out/clip.mp4");
  cfg.object_path = "out/";
  CHECK(net::s3_object_key(cfg, "vidnode/J1.mp4") == "out/vidnode/J1.mp4");
  auto value = request();
  value["objectPath"] = "//x/y.mp4";
  CHECK(parsed(value).object_path == "x/y.mp4");
  CHECK(
    path_of(net::presigned_put_url(parsed(value), "ignored", 60s, march_first))
    == "/my-bucket/x/y.mp4");
}

TEST_CASE("the region is the configured one, else an AWS host's, else "
          "us-east-1",
          "[s3_presign]") {
  auto region_of = [](const std::string& endpoint, const std::string& region) {
    auto value = request();
    value["endpointUrl"] = endpoint;
    if (!region.empty())
      value["region"] = region;
    auto cfg = parsed(value);
    auto credential = query_value(
      net::presigned_put_url(cfg, "k", 60s, march_first), "X-Amz-Credential");
    CHECK(credential.find("%2F" + net::s3_region(cfg) + "%2Fs3%2F")
          != std::string::npos);
    return net::s3_region(cfg);
  };
  CHECK(region_of("https://s3.eu-west-2.amazonaws.com", "") == "eu-west-2");
  CHECK(region_of("https://S3.AP-Southeast-1.amazonaws.com/", "")
        == "ap-southeast-1");
  CHECK(region_of("https://s3.dualstack.us-west-2.amazonaws.com", "")
        == "us-west-2");
  CHECK(region_of("https://s3.amazonaws.com", "") == "us-east-1");
  CHECK(region_of("https://minio.example.com:9000", "") == "us-east-1");
  CHECK(region_of("https://s3.eu-west-2.amazonaws.com.evil.example", "")
        == "us-east-1");
  CHECK(region_of("https://abc.r2.cloudflarestorage.com", "auto") == "auto");
  CHECK(region_of("https://s3.eu-west-2.amazonaws.com", "eu-central-1")
        == "eu-central-1");
}

TEST_CASE("the endpoint is kept as scheme://host[:port], the default port "
          "dropped, in the URL and in the signed host",
          "[s3_presign]") {
  auto endpoint_of = [](const std::string& url) {
    auto value = request();
    value["endpointUrl"] = url;
    return parsed(value).endpoint_url;
  };
  CHECK(endpoint_of("HTTPS://Storage.Example.COM:443/")
        == "https://storage.example.com");
  CHECK(endpoint_of("http://storage.example.com:80")
        == "http://storage.example.com");
  CHECK(endpoint_of("https://storage.example.com:80")
        == "https://storage.example.com:80");
  CHECK(endpoint_of("http://[::1]:9000") == "http://[::1]:9000");
  net::s3_config cfg = parsed(request());
  cfg.endpoint_url = "https://storage.example.com:443";
  auto with_port = net::presigned_put_url(cfg, "k", 60s, march_first);
  cfg.endpoint_url = "https://storage.example.com";
  CHECK(with_port == net::presigned_put_url(cfg, "k", 60s, march_first));
  CHECK(with_port.rfind("https://storage.example.com/my-bucket/k?", 0) == 0);
}

TEST_CASE("the expiry is clamped to SigV4's 1 s .. 7 days", "[s3_presign]") {
  auto cfg = parsed(request());
  auto expires = [&](std::chrono::seconds s) {
    return query_value(net::presigned_put_url(cfg, "k", s, march_first),
                       "X-Amz-Expires");
  };
  CHECK(expires(0s) == "1");
  CHECK(expires(-5s) == "1");
  CHECK(expires(900s) == "900");
  CHECK(expires(604800s) == "604800");
  CHECK(expires(std::chrono::hours{24 * 30}) == "604800");
}

TEST_CASE("s3Config errors name the field and never hold the secret",
          "[s3_presign]") {
  auto error_of = [](const json& value) {
    auto cfg = net::parse_s3_config(value);
    REQUIRE_FALSE(cfg);
    CHECK(runtime::is(cfg.error(), errc::invalid_request));
    auto text = runtime::describe(cfg.error());
    CHECK(text.find(secret) == std::string::npos);
    CHECK(text.find("K7MDENG") == std::string::npos);
    return runtime::detail_of(cfg.error());
  };
  auto with = [](const char* field, const json& x) {
    auto value = request();
    value[field] = x;
    return value;
  };
  auto without = [](const char* field) {
    auto value = request();
    value.erase(field);
    return value;
  };
  CHECK(error_of(json::array()) == "s3Config: must be an object");
  CHECK(error_of(json(secret)) == "s3Config: must be an object");
  CHECK(error_of(without("accessId")) == "s3Config.accessId: missing");
  CHECK(error_of(without("accessSecret")) == "s3Config.accessSecret: missing");
  CHECK(error_of(without("bucketName")) == "s3Config.bucketName: missing");
  CHECK(error_of(without("endpointUrl")) == "s3Config.endpointUrl: missing");
  CHECK(error_of(with("accessId", nullptr)) == "s3Config.accessId: missing");
  CHECK(error_of(with("accessSecret", 42))
        == "s3Config.accessSecret: must be a string");
  CHECK(error_of(with("accessSecret", json::array({secret})))
        == "s3Config.accessSecret: must be a string");
  CHECK(error_of(with("accessSecret", ""))
        == "s3Config.accessSecret: must not be empty");
  CHECK(error_of(with("bucketName", "a/b")).rfind("s3Config.bucketName: ", 0)
        == 0);
  CHECK(error_of(with("bucketName", secret)).rfind("s3Config.bucketName: ", 0)
        == 0);
  CHECK(error_of(with("endpointUrl", "ftp://example.com"))
        == "s3Config.endpointUrl: must be an http or https URL");
  CHECK(error_of(with("endpointUrl", "example.com"))
        == "s3Config.endpointUrl: must be an http or https URL");
  CHECK(error_of(with("endpointUrl", secret))
        == "s3Config.endpointUrl: must be an http or https URL");
  CHECK(error_of(with("endpointUrl", "https://AKID:pass@example.com"))
        == "s3Config.endpointUrl: must not hold credentials");
  CHECK(error_of(with("endpointUrl",
                      std::string{"https://AKID:"} + secret + "@example.com"))
          .rfind("s3Config.endpointUrl: ", 0)
        == 0);
  CHECK(error_of(with("endpointUrl", "https://example.com/bucket"))
        == "s3Config.endpointUrl: must be scheme://host[:port] with no path, "
           "query or fragment");
  CHECK(error_of(with("endpointUrl", "https://example.com/?x=1"))
        == "s3Config.endpointUrl: must be scheme://host[:port] with no path, "
           "query or fragment");
  CHECK(error_of(with("objectPath", 1))
        == "s3Config.objectPath: must be a "
           "string");
  CHECK(error_of(with("objectPath", "a/../b.mp4"))
        == "s3Config.objectPath: must not have '.' or '..' segments");
  CHECK(error_of(with("objectPath", "./b.mp4"))
        == "s3Config.objectPath: must not have '.' or '..' segments");
  CHECK(error_of(with("objectPath", std::string(1025, 'a')))
        == "s3Config.objectPath: longer than 1024 bytes");
  CHECK(error_of(with("region", "EU West")).rfind("s3Config.region: ", 0) == 0);
  CHECK(error_of(with("region", secret)).rfind("s3Config.region: ", 0) == 0);
}

TEST_CASE("a parsed s3Config keeps every field, optional ones empty when "
          "absent or null",
          "[s3_presign]") {
  auto cfg = parsed(request());
  CHECK(cfg.access_id == "AKIDEXAMPLE");
  CHECK(cfg.access_secret == secret);
  CHECK(cfg.bucket == "my-bucket");
  CHECK(cfg.endpoint_url == "http://127.0.0.1:9000");
  CHECK(cfg.object_path.empty());
  CHECK(cfg.region.empty());
  auto value = request();
  value["objectPath"] = nullptr;
  value["region"] = "eu-west-1";
  value["unknown"] = true;
  cfg = parsed(value);
  CHECK(cfg.object_path.empty());
  CHECK(cfg.region == "eu-west-1");
  auto url = net::presigned_put_url(cfg, "k", 60s, march_first);
  CHECK(url.find(secret) == std::string::npos);
  CHECK(url.find("K7MDENG") == std::string::npos);
}

TEST_CASE("a presigned URL is a valid output_url and an upload target",
          "[s3_presign][transfers]") {
  test::http_server server;
  auto value = request();
  value["endpointUrl"] = server.url("");
  value["bucketName"] = "uploads";
  // Short, so that the file name the server makes of the last segment and
  // the query stays under 255 bytes.
  value["accessId"] = "AK";
  auto url = net::presigned_put_url(parsed(value), "v", 60s,
                                    std::chrono::system_clock::now());
  runtime::job_spec spec;
  spec.model = "sim";
  spec.prompt = "a test";
  spec.output_url = url;
  CHECK_FALSE(runtime::validate(spec));
  net::curl_transfers::options opts;
  opts.allowed_addresses = {net::address_class::loopback};
  opts.connect_timeout = 1000ms;
  opts.total_timeout = 2000ms;
  opts.attempts = 1;
  net::curl_transfers transfers{opts};
  test::temp_directory dir{"vidnode-s3-upload"};
  auto video = dir.path() + "/video.mp4";
  test::write_file(video, std::string(4096, 'v'));
  actors::abort_signal cancel;
  auto err = transfers.upload(video, url, cancel);
  INFO(runtime::describe(err));
  REQUIRE_FALSE(err);
  // The test server stores the body under the last path segment, here
  // with the query ("v?X-Amz-...").
  auto stored = test::entries(server.root() / "uploads");
  REQUIRE(stored.size() == 1);
  CHECK(stored[0] == url.substr(url.rfind('/') + 1));
  CHECK(test::read_file(server.root() / "uploads" / stored[0])
        == std::string(4096, 'v'));
}
