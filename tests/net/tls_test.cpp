/// The TLS file checks (net::check_tls_files), heartbeat settings, and TLS
/// between two actor systems in this process over 127.0.0.1. Certificates
/// are made at test time with scripts/make-certs.sh and the openssl tool.

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>

#include "support/certificates.hpp"
#include "vidnode/net/process_config.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using net::tls_files;
using net::tls_role;
using test::certificates;

namespace {

tls_files files_of(const certificates& certs, const std::string& name) {
  return {certs.path(name + ".pem"), certs.path(name + ".key"),
          certs.path("ca.pem"), ""};
}

/// Checks that `err` refuses `setting` (tls-cert, tls-key or tls-ca) and
/// says `reason`.
void check_refused(const caf::error& err, const std::string& setting,
                   const std::string& reason) {
  INFO(runtime::describe(err));
  REQUIRE(err);
  CHECK(runtime::is(err, runtime::errc::invalid_request));
  CHECK_THAT(runtime::detail_of(err),
             Catch::StartsWith(setting + ": ") && Catch::Contains(reason));
}

/// An actor system with vidnode's process configuration, TLS with `files`
/// when given.
struct test_system {
  explicit test_system(const std::optional<tls_files>& files,
                       tls_role role = tls_role::node) {
    if (files)
      REQUIRE_FALSE(net::use_tls(cfg, *files, role));
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  net::process_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

/// Publishes an actor that answers an int with the int, on a free port of
/// 127.0.0.1, through the transport; ends it when destroyed.
struct echo_server {
  explicit echo_server(caf::actor_system& sys,
                       net::port_peers peers = net::port_peers::any)
    : sys(sys) {
    echo =
      sys.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
    auto published =
      net::publish(sys, caf::actor_cast<caf::strong_actor_ptr>(echo), {},
                   "127.0.0.1", 0, true, peers);
    REQUIRE(published);
    port = *published;
  }

  ~echo_server() {
    caf::anon_send(net::transport_handle(sys), caf::unpublish_atom::value,
                   echo.address(), port);
    caf::anon_send_exit(echo, caf::exit_reason::kill);
  }

  caf::actor_system& sys;
  caf::actor echo;
  uint16_t port = 0;
};

/// Connects from `sys` to 127.0.0.1:`port` through the transport and asks
/// the echo actor; the error, or nothing when the echo came back.
caf::error echo_through(caf::actor_system& sys, uint16_t port) {
  caf::error result;
  caf::scoped_actor self{sys};
  caf::strong_actor_ptr remote;
  self
    ->request(net::transport_handle(sys), 10s, caf::connect_atom::value,
              std::string{"127.0.0.1"}, port)
    .receive([&](const caf::node_id&, caf::strong_actor_ptr& ptr,
                 const std::set<std::string>&) { remote = std::move(ptr); },
             [&](caf::error& err) { result = std::move(err); });
  if (result)
    return result;
  if (!remote)
    return caf::sec::invalid_argument;
  self->request(caf::actor_cast<caf::actor>(remote), 10s, 42)
    .receive([&](int x) { CHECK(x == 42); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

} // namespace

TEST_CASE("certificates from make-certs.sh pass the checks: a node's as a "
          "node and as a client, a client's as a client",
          "[tls]") {
  certificates certs;
  CHECK_FALSE(net::check_tls_files(files_of(certs, "node"), tls_role::node));
  CHECK_FALSE(net::check_tls_files(files_of(certs, "node"), tls_role::client));
  CHECK_FALSE(
    net::check_tls_files(files_of(certs, "client"), tls_role::client));
}

TEST_CASE("the file checks take milliseconds", "[tls]") {
  certificates certs;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i)
    REQUIRE_FALSE(
      net::check_tls_files(files_of(certs, "node"), tls_role::node));
  auto each = (std::chrono::steady_clock::now() - start) / 10;
  WARN("one check took "
       << std::chrono::duration_cast<std::chrono::microseconds>(each).count()
       << " us");
  CHECK(each < 100ms);
}

TEST_CASE("tls-cert, tls-key and tls-ca go together", "[tls]") {
  certificates certs;
  auto files = files_of(certs, "node");
  auto no_key = files;
  no_key.key.clear();
  check_refused(net::check_tls_files(no_key, tls_role::node), "tls-key",
                "missing (tls-cert, tls-key and tls-ca go together)");
  auto no_ca = files;
  no_ca.ca.clear();
  check_refused(net::check_tls_files(no_ca, tls_role::node), "tls-ca",
                "missing");
  auto no_cert = files;
  no_cert.certificate.clear();
  check_refused(net::check_tls_files(no_cert, tls_role::node), "tls-cert",
                "missing");
}

TEST_CASE("a missing file, a directory and a file that is not PEM are "
          "refused, naming the setting and the file",
          "[tls]") {
  certificates certs;
  auto files = files_of(certs, "node");
  auto missing = files;
  missing.key = certs.path("nothing-here.key");
  check_refused(net::check_tls_files(missing, tls_role::node), "tls-key",
                "'" + missing.key + "': cannot read it: No such file");
  auto directory = files;
  directory.ca = certs.path("");
  check_refused(net::check_tls_files(directory, tls_role::node), "tls-ca",
                "is not a regular file");
  auto fifo = files;
  fifo.certificate = certs.path("a-fifo");
  REQUIRE(mkfifo(fifo.certificate.c_str(), 0600) == 0);
  check_refused(net::check_tls_files(fifo, tls_role::node), "tls-cert",
                "is not a regular file");
  auto key_as_cert = files;
  key_as_cert.certificate = files.key;
  check_refused(net::check_tls_files(key_as_cert, tls_role::node), "tls-cert",
                "holds no PEM certificate");
  certs.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n"
                             "-----END CERTIFICATE-----\n");
  auto garbage_ca = files;
  garbage_ca.ca = certs.path("garbage.pem");
  check_refused(net::check_tls_files(garbage_ca, tls_role::node), "tls-ca",
                "holds no PEM certificate");
  auto cert_as_key = files;
  cert_as_key.key = files.certificate;
  check_refused(net::check_tls_files(cert_as_key, tls_role::node), "tls-key",
                "holds no PEM private key");
}

TEST_CASE("a file the process may not read is refused", "[tls]") {
  if (geteuid() == 0) {
    WARN("skipped: running as root, which reads files whatever their mode");
    return;
  }
  certificates certs;
  auto files = files_of(certs, "node");
  REQUIRE(chmod(files.key.c_str(), 0) == 0);
  check_refused(net::check_tls_files(files, tls_role::node), "tls-key",
                "cannot read it: Permission denied");
}

TEST_CASE("a key that does not match the certificate is refused", "[tls]") {
  certificates certs;
  auto files = files_of(certs, "node");
  files.key = certs.path("client.key");
  check_refused(net::check_tls_files(files, tls_role::node), "tls-key",
                "does not match the certificate '" + files.certificate + "'");
}

TEST_CASE("an encrypted key is refused without its passphrase and with a "
          "wrong one, and accepted with the right one",
          "[tls]") {
  setenv("VIDNODE_TLS_PASSPHRASE", "right horse battery", 1);
  certificates certs{{"--encrypt"}};
  unsetenv("VIDNODE_TLS_PASSPHRASE");
  auto files = files_of(certs, "node");
  check_refused(net::check_tls_files(files, tls_role::node), "tls-key",
                "is encrypted and no passphrase was given (set "
                "VIDNODE_TLS_PASSPHRASE)");
  files.passphrase = "wrong";
  check_refused(net::check_tls_files(files, tls_role::node), "tls-key",
                "cannot be decrypted with the passphrase given");
  files.passphrase = "right horse battery";
  CHECK_FALSE(net::check_tls_files(files, tls_role::node));
  SECTION("use_tls loads it with the passphrase") {
    net::process_config cfg;
    CHECK_FALSE(net::use_tls(cfg, files, tls_role::node));
  }
}

TEST_CASE("an expired certificate and one not valid yet are refused, with "
          "their dates",
          "[tls]") {
  certificates certs;
  certs.issue_with_dates("expired", "20200101000000Z", "20200201000000Z");
  certs.issue_with_dates("future", "20990101000000Z", "20991231000000Z");
  check_refused(
    net::check_tls_files(files_of(certs, "expired"), tls_role::node),
    "tls-cert", "has expired: valid until 2020-02-01 00:00:00 UTC");
  check_refused(net::check_tls_files(files_of(certs, "future"), tls_role::node),
                "tls-cert",
                "is not valid yet: valid from 2099-01-01 00:00:00 UTC");
}

TEST_CASE("a certificate that another CA signed is refused", "[tls]") {
  certificates ours;
  certificates theirs;
  auto files = files_of(theirs, "node");
  files.ca = ours.path("ca.pem");
  check_refused(net::check_tls_files(files, tls_role::node), "tls-cert",
                "is not signed by a CA in '" + files.ca + "'");
}

TEST_CASE("a CA file with two CAs trusts certificates of both", "[tls]") {
  certificates old_ca;
  certificates new_ca;
  old_ca.write("both.pem", "");
  {
    std::ifstream a{old_ca.path("ca.pem")};
    std::ifstream b{new_ca.path("ca.pem")};
    std::stringstream both;
    both << a.rdbuf() << b.rdbuf();
    old_ca.write("both.pem", both.str());
  }
  for (const auto* dir : {&old_ca, &new_ca}) {
    auto files = files_of(*dir, "node");
    files.ca = old_ca.path("both.pem");
    CHECK_FALSE(net::check_tls_files(files, tls_role::node));
  }
}

TEST_CASE("a client certificate is refused for a node: it does not allow "
          "TLS server authentication",
          "[tls]") {
  certificates certs;
  check_refused(net::check_tls_files(files_of(certs, "client"), tls_role::node),
                "tls-cert", "does not allow TLS server authentication");
}

TEST_CASE("use_tls refuses bad files and leaves the config unchanged",
          "[tls]") {
  certificates certs;
  auto files = files_of(certs, "node");
  files.key = certs.path("client.key");
  net::process_config cfg;
  auto modules = cfg.module_factories.size();
  check_refused(net::use_tls(cfg, files, tls_role::node), "tls-key",
                "does not match");
  CHECK(cfg.module_factories.size() == modules);
  CHECK(cfg.openssl_certificate.empty());
  CHECK(cfg.openssl_cafile.empty());
}

TEST_CASE("heartbeat settings are checked and bad ones change nothing",
          "[tls][heartbeat]") {
  using net::process_config;
  CHECK_FALSE(process_config::check_heartbeat(1s, 5s));
  CHECK_FALSE(process_config::check_heartbeat(100ms, 200ms));
  auto refused = [](caf::timespan interval, caf::timespan timeout,
                    const std::string& setting) {
    auto err = process_config::check_heartbeat(interval, timeout);
    INFO(runtime::describe(err));
    CHECK(runtime::is(err, runtime::errc::invalid_request));
    CHECK_THAT(runtime::detail_of(err), Catch::StartsWith(setting + ": "));
  };
  refused(caf::timespan{0}, 5s, "heartbeat");
  refused(99ms, 5s, "heartbeat");
  refused(61s, 10min, "heartbeat");
  refused(1s, 1999ms, "node-timeout");
  refused(1s, 601s, "node-timeout");
  process_config cfg;
  CHECK(caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0})
        == caf::timespan{1s});
  CHECK(caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0})
        == caf::timespan{5s});
  CHECK(cfg.heartbeat(1s, 1s));
  CHECK(caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0})
        == caf::timespan{5s});
  CHECK_FALSE(cfg.heartbeat(200ms, 1s));
  CHECK(caf::get_or(cfg, "middleman.heartbeat-interval", caf::timespan{0})
        == caf::timespan{200ms});
  CHECK(caf::get_or(cfg, "middleman.connection-timeout", caf::timespan{0})
        == caf::timespan{1s});
}

TEST_CASE("two actor systems with certificates of one CA talk over TLS, "
          "and one with another CA's or none is refused at once",
          "[tls]") {
  certificates certs;
  certificates other;
  test_system server{files_of(certs, "node")};
  REQUIRE(net::tls_enabled(*server.sys));
  echo_server echo{*server.sys};
  {
    test_system client{files_of(certs, "client"), tls_role::client};
    CHECK_FALSE(echo_through(*client.sys, echo.port));
  }
  for (auto files : {std::optional<tls_files>{files_of(other, "client")},
                     std::optional<tls_files>{}}) {
    test_system client{files, tls_role::client};
    auto start = std::chrono::steady_clock::now();
    auto err = echo_through(*client.sys, echo.port);
    INFO(runtime::describe(err));
    CHECK(err == caf::sec::disconnect_during_handshake);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
  }
  SECTION("and a TLS client is refused by a plain server") {
    test_system plain{std::nullopt};
    echo_server plain_echo{*plain.sys};
    test_system client{files_of(certs, "client"), tls_role::client};
    auto start = std::chrono::steady_clock::now();
    auto err = echo_through(*client.sys, plain_echo.port);
    INFO(runtime::describe(err));
    CHECK(err);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
  }
}

TEST_CASE("a port for nodes refuses a client certificate of the cluster CA "
          "in the handshake and takes a node's, while a port for anyone "
          "beside it takes both",
          "[tls]") {
  certificates certs;
  test_system server{files_of(certs, "node")};
  echo_server nodes_only{*server.sys, net::port_peers::nodes};
  echo_server anyone{*server.sys};
  {
    test_system node{files_of(certs, "node")};
    CHECK_FALSE(echo_through(*node.sys, nodes_only.port));
    CHECK_FALSE(echo_through(*node.sys, anyone.port));
  }
  test_system client{files_of(certs, "client"), tls_role::client};
  auto start = std::chrono::steady_clock::now();
  auto err = echo_through(*client.sys, nodes_only.port);
  INFO(runtime::describe(err));
  CHECK(err == caf::sec::disconnect_during_handshake);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK_FALSE(echo_through(*client.sys, anyone.port));
}
