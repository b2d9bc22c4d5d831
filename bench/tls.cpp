/// @file
/// What mutual TLS costs a remote round trip, and a connection: an echo
/// actor in one actor system, requested from another over loopback TCP,
/// through vidnode's transport (net::transport_handle) plain and with TLS,
/// and through CAF's own OpenSSL transport (caf::openssl::publish and
/// remote_actor, which vidnode does not use: net/src/tls_transport.hpp).
/// Each connection is timed from the connect request to its answer (TCP,
/// TLS and BASP handshakes), then sequential round trips from a
/// scoped_actor. Rounds interleave the transports, each with fresh systems;
/// samples are pooled. Certificates are made with scripts/make-certs.sh in a
/// temporary directory.
///
/// Usage: bench_tls [SCALE] (or VIDNODE_BENCH_SCALE): multiplies the
/// iteration counts.

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "vidnode/net/process_config.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/net/transport.hpp"

#include "measurement.hpp"
#include "round_trips.hpp"

namespace vidnode::bench {
namespace {

constexpr size_t rounds = 3;

enum class transport { plain, vidnode_tls, caf_tls };

const char* name_of(transport x) {
  switch (x) {
    case transport::plain:
      return "vidnode transport, plain TCP";
    case transport::vidnode_tls:
      return "vidnode transport, mutual TLS";
    case transport::caf_tls:
      return "CAF's OpenSSL transport, mutual TLS";
  }
  return "?";
}

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "bench_tls: " << what << '\n';
  std::quick_exit(1);
}

/// Makes a cluster CA with node and client certificates in a temporary
/// directory, removed when it goes.
struct certificate_dir {
  certificate_dir() {
    char pattern[] = "/tmp/vidnode-bench-tls-XXXXXX";
    if (mkdtemp(pattern) == nullptr)
      fail("mkdtemp failed");
    path = pattern;
    auto command =
      std::string{"bash "} + MAKE_CERTS_SCRIPT + " " + path + " >/dev/null";
    if (std::system(command.c_str()) != 0)
      fail("scripts/make-certs.sh failed");
  }

  ~certificate_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  net::tls_files files(const std::string& name) const {
    return {path + "/" + name + ".pem", path + "/" + name + ".key",
            path + "/ca.pem", ""};
  }

  std::string path;
};

/// CAF's own configuration for its OpenSSL transport (what vidnode replaced).
struct caf_tls_config : caf::actor_system_config {
  caf_tls_config(const net::tls_files& files) {
    load<caf::io::middleman>();
    load<caf::openssl::manager>();
    set("openssl.certificate", files.certificate);
    set("openssl.key", files.key);
    set("openssl.cafile", files.ca);
  }
};

/// A fresh actor system for `kind`, as server (node certificate) or client.
std::unique_ptr<caf::actor_system_config>
make_config(transport kind, const certificate_dir& certs, bool server) {
  auto files = certs.files(server ? "node" : "client");
  if (kind == transport::caf_tls)
    return std::make_unique<caf_tls_config>(files);
  auto cfg = std::make_unique<net::process_config>();
  if (kind == transport::vidnode_tls)
    if (auto err = net::use_tls(
          *cfg, files, server ? net::tls_role::node : net::tls_role::client))
      fail("use_tls: " + caf::to_string(err));
  return cfg;
}

caf::io::middleman_actor handle_of(transport kind, caf::actor_system& sys) {
  return kind == transport::caf_tls ? sys.openssl_manager().actor_handle()
                                    : net::transport_handle(sys);
}

struct samples {
  std::vector<int64_t> connect;
  std::vector<int64_t> round_trip;
};

/// One round of `kind`: a server and a client system, one connection,
/// `counts` round trips.
void run_round(transport kind, const certificate_dir& certs,
               round_trip_counts counts, samples& into) {
  auto server_cfg = make_config(kind, certs, true);
  auto client_cfg = make_config(kind, certs, false);
  caf::actor_system server{*server_cfg};
  caf::actor_system client{*client_cfg};
  auto echo =
    server.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
  uint16_t port = 0;
  {
    caf::scoped_actor self{server};
    self
      ->request(handle_of(kind, server), caf::infinite,
                caf::publish_atom::value, uint16_t{0},
                caf::actor_cast<caf::strong_actor_ptr>(echo),
                std::set<std::string>{}, std::string{"127.0.0.1"}, true)
      .receive([&](uint16_t actual) { port = actual; },
               [&](caf::error& err) { fail(server.render(err)); });
  }
  caf::actor remote;
  {
    caf::scoped_actor self{client};
    auto sent = clock_type::now();
    self
      ->request(handle_of(kind, client), std::chrono::seconds{10},
                caf::connect_atom::value, std::string{"127.0.0.1"}, port)
      .receive(
        [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
            const std::set<std::string>&) {
          into.connect.push_back(nanos_between(sent, clock_type::now()));
          remote = caf::actor_cast<caf::actor>(ptr);
        },
        [&](caf::error& err) { fail(client.render(err)); });
  }
  auto result = scoped_round_trips<int>(
    client, remote, counts,
    [](int x) { return x == 7 ? std::string{} : std::string{"wrong echo"}; },
    7);
  if (!result.failure.empty())
    fail(result.failure);
  into.round_trip.insert(into.round_trip.end(), result.nanos.begin(),
                         result.nanos.end());
  remote = nullptr;
  caf::anon_send(handle_of(kind, server), caf::unpublish_atom::value,
                 echo.address(), port);
  caf::anon_send_exit(echo, caf::exit_reason::kill);
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  auto factor = scale(argc, argv);
  round_trip_counts counts{scaled(200, factor), scaled(2000, factor)};
  certificate_dir certs;
  std::vector<transport> kinds = {transport::plain, transport::vidnode_tls,
                                  transport::caf_tls};
  std::vector<samples> pooled(kinds.size());
  for (size_t round = 0; round < rounds; ++round)
    for (size_t i = 0; i < kinds.size(); ++i)
      run_round(kinds[i], certs, counts, pooled[i]);
  std::cout << "## TLS: remote echo round trip and connect, loopback\n\n"
            << "| transport | round trip p50 | p99 | connect (TCP, TLS, BASP) "
               "p50 | samples |\n| --- | --- | --- | --- | --- |\n";
  auto plain_p50 = summarize(pooled[0].round_trip).p50_us;
  for (size_t i = 0; i < kinds.size(); ++i) {
    auto trip = summarize(pooled[i].round_trip);
    auto connect = summarize(pooled[i].connect);
    std::cout << "| " << name_of(kinds[i]) << " | " << fixed(trip.p50_us)
              << " us (" << fixed(trip.p50_us / plain_p50, 2) << "x plain) | "
              << fixed(trip.p99_us) << " us | " << fixed(connect.p50_us)
              << " us | " << trip.samples << " |\n";
  }
  std::cout << '\n';
  return 0;
}
