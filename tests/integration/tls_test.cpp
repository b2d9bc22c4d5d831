/// Mutual TLS and heartbeats with real vidnode and vidctl processes on
/// 127.0.0.1. Certificates are made at test time (support/certificates.hpp).
/// Every refusal is timed, to show that it comes at once and not at a
/// timeout.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <fstream>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/certificates.hpp"
#include "support/cluster_process.hpp"
#include "support/node_process.hpp"
#include "support/process.hpp"
#include "support/process_stats.hpp"
#include "support/raw_connection.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::certificates;
using test::child_process;
using test::command_result;
using test::node_process;
using test::run_command;
using clock_type = std::chrono::steady_clock;
using strings = std::vector<std::string>;

namespace {

strings operator+(strings a, const strings& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// CPU time (user and system) a process has used so far.
std::chrono::milliseconds cpu_time(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat{std::istreambuf_iterator<char>{in}, {}};
  // Fields after the command name (which may hold spaces) in parentheses:
  // state is field 3, utime 14, stime 15.
  std::istringstream fields{stat.substr(stat.rfind(')') + 2)};
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14)
      utime = std::stol(field);
    if (i == 15)
      stime = std::stol(field);
  }
  return std::chrono::milliseconds{(utime + stime) * 1000
                                   / sysconf(_SC_CLK_TCK)};
}

/// Open descriptors of a process.
size_t descriptors(pid_t pid) {
  auto dir =
    std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/fd"};
  return static_cast<size_t>(std::distance(dir, {}));
}

/// A TLS connection made with OpenSSL directly, as a hostile client holding
/// a good certificate would make it.
class raw_tls_connection {
public:
  raw_tls_connection(uint16_t port, const certificates& certs,
                     const std::string& name) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    REQUIRE(ctx_ != nullptr);
    REQUIRE(SSL_CTX_use_certificate_chain_file(
              ctx_, certs.path(name + ".pem").c_str())
            == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, certs.path(name + ".key").c_str(),
                                        SSL_FILETYPE_PEM)
            == 1);
    REQUIRE(
      SSL_CTX_load_verify_locations(ctx_, certs.path("ca.pem").c_str(), nullptr)
      == 1);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    fd_ = test::connect_loopback(port);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    REQUIRE(SSL_connect(ssl_) == 1);
  }

  ~raw_tls_connection() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
  }

  raw_tls_connection(const raw_tls_connection&) = delete;
  raw_tls_connection& operator=(const raw_tls_connection&) = delete;

  void send(const std::vector<uint8_t>& bytes) {
    REQUIRE(SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
            == static_cast<int>(bytes.size()));
  }

  /// Reads until the peer closes the connection; false if it is still open
  /// after five seconds.
  bool closed_by_peer() {
    char buf[4096];
    for (;;) {
      auto n = SSL_read(ssl_, buf, sizeof(buf));
      if (n > 0)
        continue;
      auto error = SSL_get_error(ssl_, n);
      ERR_clear_error();
      return error != SSL_ERROR_WANT_READ;
    }
  }

private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

/// Runs `argv` and checks that it is refused: exit status `status`, stderr
/// naming `what`, within `limit`. Returns how long it took.
clock_type::duration check_refused_in(const std::vector<std::string>& argv,
                                      int status, const std::string& what,
                                      clock_type::duration limit) {
  auto start = clock_type::now();
  auto r = run_command(argv, 60s);
  auto took = clock_type::now() - start;
  INFO("stderr: " << r.err);
  CHECK(r.status == status);
  CHECK_THAT(r.err, Catch::Contains(what));
  CHECK(r.out.find("listening") == std::string::npos);
  CHECK(took < limit);
  return took;
}

std::string in_ms(clock_type::duration d) {
  return std::to_string(
           std::chrono::duration_cast<std::chrono::milliseconds>(d).count())
         + " ms";
}

} // namespace

TEST_CASE("with certificates of the cluster CA, vidctl submits a job to a "
          "TLS node and waits for it, and the node stops cleanly",
          "[integration][tls]") {
  certificates certs;
  node_process node{certs.flags("node") + strings{"--devices", "sim:2"}};
  auto client = certs.flags("client");
  auto done = node.vidctl_json(
    client
    + strings{"submit", "--steps", "3", "--option", "step_ms=10", "--wait"});
  CHECK(done["state"] == "succeeded");
  auto id = std::to_string(done["id"].get<uint64_t>());
  CHECK(node.vidctl_json(client + strings{"status", id})["state"]
        == "succeeded");
  CHECK(node.vidctl_json(client + strings{"list"}).size() == 1);
  node.process->signal(SIGTERM);
  auto stopped = node.process->wait(15s);
  REQUIRE(stopped);
  CHECK(*stopped == 0);
}

TEST_CASE("a TLS node refuses at once a vidctl without certificates and one "
          "with another CA's certificate, and keeps serving",
          "[integration][tls]") {
  certificates certs;
  certificates other;
  node_process node{certs.flags("node") + strings{"--devices", "sim:1"}};
  for (const auto& flags : {strings{}, other.flags("client")}) {
    auto took =
      check_refused_in(strings{VIDCTL_BIN, "--connect", node.address,
                               "--timeout", "30s", "nodes"}
                         + flags,
                       3, "the connection was closed during the handshake", 3s);
    WARN("refused in " << in_ms(took));
  }
  SECTION("also when that client trusts this node's CA") {
    auto flags = other.flags_trusting_also("client", certs);
    check_refused_in(strings{VIDCTL_BIN, "--connect", node.address, "--timeout",
                             "30s", "nodes"}
                       + flags,
                     3, "the connection was closed during the handshake", 3s);
  }
  CHECK(node.vidctl(certs.flags("client") + strings{"nodes"}).status == 0);
}

TEST_CASE("a TLS vidctl is refused at once by a plain node",
          "[integration][tls]") {
  certificates certs;
  node_process node{{"--devices", "sim:1"}};
  auto took = check_refused_in(
    strings{VIDCTL_BIN, "--connect", node.address, "--timeout", "30s", "nodes"}
      + certs.flags("client"),
    3, "closed during the handshake", 3s);
  WARN("refused in " << in_ms(took));
  CHECK(node.vidctl({"nodes"}).status == 0);
}

TEST_CASE("vidnode refuses bad TLS files at start with exit status 2 and a "
          "message naming the file, in its start-up time",
          "[integration][tls]") {
  setenv("VIDNODE_TLS_PASSPHRASE", "correct", 1);
  certificates encrypted{{"--encrypt"}};
  unsetenv("VIDNODE_TLS_PASSPHRASE");
  certificates certs;
  certs.write("garbage.key", "this is not a key\n");
  certs.issue_with_dates("expired", "20200101000000Z", "20200201000000Z");
  // vidnode's own start (loading libtorch, mostly) is the floor: the file
  // checks must add next to nothing to it.
  auto started = clock_type::now();
  REQUIRE(run_command({VIDNODE_BIN, "--version"}).status == 0);
  auto startup = clock_type::now() - started;
  auto limit = startup + 1s;
  WARN("vidnode --version took " << in_ms(startup));
  auto vidnode = [](const std::vector<std::string>& tls) {
    return strings{VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices", "sim:1"}
           + tls;
  };
  auto with_key = [&](const std::string& key) {
    return strings{"--tls-cert", certs.path("node.pem"), "--tls-key", key,
                   "--tls-ca",   certs.path("ca.pem")};
  };
  std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
    {with_key(certs.path("client.key")),
     "vidnode: --tls-key: '" + certs.path("client.key")
       + "': does not match the certificate"},
    {with_key(certs.path("garbage.key")), "vidnode: --tls-key: '"
                                            + certs.path("garbage.key")
                                            + "': holds no PEM private key"},
    {with_key(certs.path("missing.key")),
     "--tls-key: '" + certs.path("missing.key") + "': cannot read it"},
    {encrypted.flags("node"),
     "--tls-key: '" + encrypted.path("node.key")
       + "': is encrypted and no passphrase was given"},
    {certs.flags("expired"),
     "--tls-cert: '" + certs.path("expired.pem") + "': has expired"},
    {{"--tls-cert", certs.path("node.pem")},
     "--tls-key: missing (tls-cert, tls-key and tls-ca go together)"},
  };
  for (const auto& [tls, message] : cases) {
    auto took = check_refused_in(vidnode(tls), 2, message, limit);
    WARN("refused in " << in_ms(took) << ": " << message);
  }
  setenv("VIDNODE_TLS_PASSPHRASE", "wrong", 1);
  auto took =
    check_refused_in(vidnode(encrypted.flags("node")), 2,
                     "--tls-key: '" + encrypted.path("node.key")
                       + "': cannot be decrypted with the passphrase given",
                     limit);
  WARN("wrong passphrase refused in " << in_ms(took));
  SECTION("and starts with the right passphrase") {
    setenv("VIDNODE_TLS_PASSPHRASE", "correct", 1);
    node_process node{encrypted.flags("node") + strings{"--devices", "sim:1"}};
    CHECK(node.vidctl(encrypted.flags("client") + strings{"nodes"}).status
          == 0);
  }
  unsetenv("VIDNODE_TLS_PASSPHRASE");
}

TEST_CASE("vidctl refuses bad TLS files and heartbeat settings with exit "
          "status 2 before connecting",
          "[integration][tls][heartbeat]") {
  certificates certs;
  auto vidctl = [](const std::vector<std::string>& args) {
    return strings{VIDCTL_BIN, "--connect", "127.0.0.1:1"} + args
           + strings{"nodes"};
  };
  auto bad_key = certs.flags("client");
  bad_key[3] = certs.path("node.key");
  check_refused_in(
    vidctl(bad_key), 2,
    "vidctl: --tls-key: '" + certs.path("node.key") + "': does not match", 3s);
  check_refused_in(vidctl({"--tls-ca", certs.path("ca.pem")}), 2,
                   "vidctl: --tls-cert: missing", 3s);
  check_refused_in(vidctl({"--heartbeat", "50ms"}), 2,
                   "vidctl: --heartbeat: must be from 100ms to 1m, got 50ms",
                   3s);
  check_refused_in(vidctl({"--heartbeat", "2s", "--node-timeout", "3s"}), 2,
                   "vidctl: --node-timeout: must be at least twice", 3s);
  check_refused_in(vidctl({"--node-timeout", "11m"}), 2,
                   "vidctl: --node-timeout:", 3s);
  check_refused_in(vidctl({"--heartbeat", "1"}), 2, "--heartbeat", 3s);
  check_refused_in(strings{VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices",
                           "sim:1", "--heartbeat", "0s"},
                   2, "vidnode: --heartbeat: must be from 100ms", 3s);
}

TEST_CASE("vidnode takes its TLS files and heartbeat settings from a "
          "--config file",
          "[integration][tls][heartbeat]") {
  certificates certs;
  certs.write("vidnode.toml", "tls-cert = \"" + certs.path("node.pem")
                                + "\"\ntls-key = \"" + certs.path("node.key")
                                + "\"\ntls-ca = \"" + certs.path("ca.pem")
                                + "\"\nheartbeat = \"500ms\"\n"
                                  "node-timeout = \"2s\"\n");
  node_process node{
    {"--config", certs.path("vidnode.toml"), "--devices", "sim:1"}};
  CHECK(node.vidctl(certs.flags("client") + strings{"nodes"}).status == 0);
  check_refused_in(strings{VIDCTL_BIN, "--connect", node.address, "nodes"}, 3,
                   "closed during the handshake", 3s);
  certs.write("bad.toml", "tls-cert = \"" + certs.path("node.pem")
                            + "\"\nnode-timeout = \"1s\"\n");
  check_refused_in(strings{VIDNODE_BIN, "--listen", "127.0.0.1:0", "--devices",
                           "sim:1", "--config", certs.path("bad.toml")},
                   2, "vidnode: --node-timeout: must be at least twice", 3s);
}

TEST_CASE("idle and refused connections cost a TLS node no CPU, and a "
          "connection dropped mid-handshake leaves nothing behind",
          "[integration][tls]") {
  // CAF's own TLS streams spin at full CPU while a handshake waits for the
  // peer (net/src/tls_stream.hpp).
  certificates certs;
  node_process node{certs.flags("node") + strings{"--devices", "sim:1"}};
  auto pid = node.process->pid();
  REQUIRE(node.vidctl(certs.flags("client") + strings{"nodes"}).status == 0);
  auto open_before = descriptors(pid);
  std::vector<std::unique_ptr<test::raw_connection>> idle;
  for (int i = 0; i < 4; ++i)
    idle.push_back(std::make_unique<test::raw_connection>(node.port));
  CHECK(node.vidctl({"nodes"}).status == 3);
  // While the connections stay silent, a job of about a second runs: the
  // node has nothing to do but wait.
  auto cpu_before = cpu_time(pid);
  auto start = clock_type::now();
  auto done = node.vidctl(
    certs.flags("client")
    + strings{"submit", "--steps", "10", "--option", "step_ms=100", "--wait"});
  CHECK(done.status == 0);
  auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
    clock_type::now() - start);
  auto used = cpu_time(pid) - cpu_before;
  WARN("the node used " << used.count() << " ms of CPU in " << wall.count()
                        << " ms");
  CHECK(used < wall / 10);
  // The node lets go of the closed connections (it closed each one when we
  // read its end), still serves, and refuses plain clients as before.
  for (auto& connection : idle)
    CHECK(connection->finish());
  idle.clear();
  CHECK(descriptors(pid) <= open_before);
  CHECK(node.vidctl(certs.flags("client") + strings{"nodes"}).status == 0);
  CHECK(node.vidctl({"nodes"}).status == 3);
}

TEST_CASE("a TLS client with a good certificate that announces a 4 GiB "
          "message is cut off before the node allocates it",
          "[integration][tls]") {
  certificates certs;
  node_process node{certs.flags("node") + strings{"--devices", "sim:1"}};
  auto client = certs.flags("client");
  REQUIRE(node.vidctl(client + strings{"nodes"}).status == 0);
  auto before = test::resident_bytes(node.process->pid());
  {
    raw_tls_connection attacker{node.port, certs, "client"};
    attacker.send(test::basp_header(1 /* client_handshake */, 0xFFFFFFFFu));
    CHECK(attacker.closed_by_peer());
  }
  CHECK(test::resident_bytes(node.process->pid()) < before + (64u << 20));
  auto served =
    node.vidctl(client + strings{"submit", "--steps", "1", "--wait"});
  INFO(served.err);
  CHECK(served.status == 0);
}

TEST_CASE("thirty-two TLS vidctl processes at once all get an answer",
          "[integration][tls]") {
  // The descriptor rotation of hardened_multiplexer holds for TLS
  // connections too (without it, about 3% of such clients lost their
  // reply).
  certificates certs;
  node_process node{certs.flags("node") + strings{"--devices", "sim:4"}};
  constexpr int concurrent = 32;
  constexpr int waves = 3;
  std::set<uint64_t> ids;
  int answers = 0;
  for (int wave = 0; wave < waves; ++wave) {
    std::vector<std::unique_ptr<child_process>> clients;
    for (int i = 0; i < concurrent; ++i)
      clients.push_back(node.start_vidctl(
        certs.flags("client")
        + strings{"--timeout", "30s", "submit", "--steps", "0", "--json"}));
    for (auto& client : clients) {
      auto status = client->wait(60s);
      INFO(client->stderr_text());
      REQUIRE(status);
      CHECK(*status == 0);
      CHECK(client->stderr_text().empty());
      if (*status != 0)
        continue;
      ++answers;
      ids.insert(json::parse(client->rest_of_stdout())["id"].get<uint64_t>());
    }
  }
  CHECK(answers == concurrent * waves);
  CHECK(ids.size() == static_cast<size_t>(concurrent * waves));
}

TEST_CASE("a node that stops answering (SIGSTOP) is noticed by vidctl watch "
          "and status within about the node timeout, not at --timeout, and "
          "watch connects again once it answers",
          "[integration][heartbeat]") {
  std::optional<certificates> certs;
  std::vector<std::string> node_tls;
  std::vector<std::string> client_tls;
  SECTION("plain") {}
  SECTION("over TLS") {
    certs.emplace();
    node_tls = certs->flags("node");
    client_tls = certs->flags("client");
  }
  std::vector<std::string> beat = {"--heartbeat", "200ms", "--node-timeout",
                                   "1s"};
  node_process node{node_tls + beat + strings{"--devices", "sim:1"}};
  auto submitted = node.vidctl(
    client_tls
    + strings{"submit", "--steps", "200", "--option", "step_ms=100"});
  REQUIRE(submitted.status == 0);
  auto watcher = node.start_vidctl(client_tls + beat
                                   + strings{"--timeout", "30s", "watch", "1"});
  REQUIRE(watcher->read_line(10s));
  auto said = [&](const std::string& what) {
    return test::poll_until(
      [&] { return watcher->stderr_text().find(what) != std::string::npos; },
      15s, [&] { watcher->poll_output(20ms); });
  };
  node.process->signal(SIGSTOP);
  auto stopped = clock_type::now();
  REQUIRE(said("vidctl: lost the connection to " + node.address));
  auto took = clock_type::now() - stopped;
  // 1 s of silence, noticed at the next heartbeat tick.
  CHECK(took < 3s);
  WARN("watch noticed the stopped node in " << in_ms(took));
  auto status_took = check_refused_in(
    strings{VIDCTL_BIN, "--connect", node.address, "--timeout", "30s", "status",
            "1"}
      + client_tls + beat,
    3, "no answer to the handshake within the node timeout (1s)", 3s);
  WARN("status gave up in " << in_ms(status_took));
  node.process->signal(SIGCONT);
  CHECK(said("vidctl: reconnected to " + node.address));
  CHECK(node.vidctl(client_tls + beat + strings{"status", "1"}).status == 0);
  CHECK(node.vidctl(client_tls + beat + strings{"cancel", "1"}).status == 0);
  auto exit = watcher->wait(10s);
  REQUIRE(exit);
  CHECK(*exit == 1);
  CHECK_THAT(watcher->rest_of_stdout(), Catch::Contains("cancelled"));
}

TEST_CASE("with the default heartbeat, vidctl status gives up on a stopped "
          "node after the 5 s node timeout instead of the 30 s --timeout",
          "[integration][heartbeat]") {
  node_process node{{"--devices", "sim:1"}};
  node.process->signal(SIGSTOP);
  auto took = check_refused_in(strings{VIDCTL_BIN, "--connect", node.address,
                                       "--timeout", "30s", "status", "1"},
                               3, "within the node timeout (5s)", 8s);
  WARN("status gave up in " << in_ms(took));
  CHECK(took > 4s);
  node.process->signal(SIGCONT);
}
