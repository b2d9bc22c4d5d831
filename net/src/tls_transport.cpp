#include "tls_transport.hpp"

#include <map>
#include <mutex>
#include <stdexcept>

#include <openssl/x509v3.h>

#include <caf/detail/socket_guard.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor_impl.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/doorman_impl.hpp>
#include <caf/io/scribe.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/net/hardened_multiplexer.hpp"

#include "bounded_read.hpp"
#include "tls_stream.hpp"

namespace vidnode::net::detail {

namespace {

using caf::io::network::native_socket;

/// A TLS connection as BASP sees it: the message size limit of
/// hardened_multiplexer's scribes, over a tls_stream.
class tls_scribe : public caf::io::scribe {
public:
  tls_scribe(hardened_multiplexer& mx, native_socket fd, ssl_ptr ssl)
    : scribe(caf::io::network::conn_hdl_from_socket(fd)),
      limit_(mx.max_message_size()), stream_(mx, fd, std::move(ssl), this) {}

  void configure_read(caf::io::receive_policy::config config) override {
    if (!read_within_limit(*this, stream_.backend(), config, limit_))
      config = caf::io::receive_policy::exactly(1);
    stream_.configure_read(config);
    if (!started_) {
      started_ = true;
      stream_.start(this);
    }
  }

  void ack_writes(bool enable) override {
    stream_.ack_writes(enable);
  }

  std::vector<char>& wr_buf() override {
    return stream_.wr_buf();
  }

  std::vector<char>& rd_buf() override {
    return stream_.rd_buf();
  }

  void graceful_shutdown() override {
    stream_.graceful_shutdown();
    detach(&stream_.backend(), false);
  }

  void flush() override {
    stream_.flush(this);
  }

  std::string addr() const override {
    auto x = caf::io::network::remote_addr_of_fd(stream_.fd());
    return x ? *x : std::string{};
  }

  uint16_t port() const override {
    auto x = caf::io::network::remote_port_of_fd(stream_.fd());
    return x ? *x : 0;
  }

  void add_to_loop() override {
    stream_.activate(this);
  }

  void remove_from_loop() override {
    stream_.stop_paused_writes();
    stream_.passivate();
  }

private:
  size_t limit_;
  bool started_ = false;
  tls_stream stream_;
};

/// Accepts TCP connections and runs each through hardened_multiplexer's
/// preparation and a TLS session.
class tls_doorman : public caf::io::network::doorman_impl {
public:
  tls_doorman(hardened_multiplexer& mx, native_socket fd, tls_context context,
              port_peers peers)
    : doorman_impl(mx, fd), context_(std::move(context)), peers_(peers) {}

  bool new_connection() override {
    if (detached())
      return false;
    auto& mx = static_cast<hardened_multiplexer&>(acceptor_.backend());
    auto fd = mx.prepare_connection(acceptor_.accepted_socket());
    caf::detail::socket_guard guard{fd};
    caf::io::network::nonblocking(fd, true);
    auto ssl = make_ssl(context_, fd, true);
    if (!ssl) {
      spdlog::error("TLS: cannot take a connection: OpenSSL is out of memory");
      return false;
    }
    // The peer's certificate is then verified as a TLS server's: only a
    // certificate that allows serverAuth (a node's) passes the handshake.
    if (peers_ == port_peers::nodes
        && SSL_set_purpose(ssl.get(), X509_PURPOSE_SSL_SERVER) != 1) {
      spdlog::error("TLS: cannot take a connection: OpenSSL refused to "
                    "require a node certificate");
      return false;
    }
    auto connection = caf::make_counted<tls_scribe>(mx, fd, std::move(ssl));
    guard.release();
    auto hdl = connection->hdl();
    parent()->add_scribe(std::move(connection));
    return doorman::new_connection(&mx, hdl);
  }

private:
  tls_context context_;
  port_peers peers_;
};

/// The middleman actor's interface (publish, connect, unpublish), with every
/// port and connection made through hardened_multiplexer and TLS.
class tls_middleman : public caf::io::middleman_actor_impl {
public:
  tls_middleman(caf::actor_config& cfg, caf::actor basp,
                hardened_multiplexer* mx, tls_context context,
                std::shared_ptr<std::atomic<port_peers>> next_peers)
    : middleman_actor_impl(cfg, std::move(basp)), mx_(*mx),
      context_(std::move(context)), next_peers_(std::move(next_peers)) {}

  const char* name() const override {
    return "vidnode.tls_middleman";
  }

protected:
  caf::expected<caf::io::scribe_ptr> connect(const std::string& host,
                                             uint16_t port) override {
    auto connected = mx_.connect_socket(host, port);
    if (!connected)
      return std::move(connected.error());
    auto fd = mx_.prepare_connection(*connected);
    caf::detail::socket_guard guard{fd};
    caf::io::network::nonblocking(fd, true);
    auto ssl = make_ssl(context_, fd, false);
    if (!ssl)
      return caf::make_error(caf::sec::cannot_connect_to_node,
                             "OpenSSL is out of memory", host, port);
    guard.release();
    return caf::make_counted<tls_scribe>(mx_, fd, std::move(ssl));
  }

  caf::expected<caf::io::doorman_ptr> open(uint16_t port, const char* addr,
                                           bool reuse) override {
    auto fd = caf::io::network::new_tcp_acceptor_impl(port, addr, reuse);
    if (!fd)
      return std::move(fd.error());
    return caf::make_counted<tls_doorman>(
      mx_, *fd, context_, next_peers_->exchange(port_peers::any));
  }

private:
  hardened_multiplexer& mx_;
  tls_context context_;
  std::shared_ptr<std::atomic<port_peers>> next_peers_;
};

/// The running TLS middleman actor of each actor system (there is no slot
/// for it in caf::actor_system, and putting it in the actor registry would
/// let remote peers message it).
std::mutex running_mutex;
std::map<const caf::actor_system*, caf::io::middleman_actor> running;
std::map<const caf::actor_system*, std::shared_ptr<std::atomic<port_peers>>>
  running_peers;

} // namespace

void tls_transport::load(caf::actor_system_config& cfg, tls_context context) {
  cfg.module_factories.push_back(
    [context](caf::actor_system& sys) -> caf::actor_system::module* {
      std::unique_ptr<caf::actor_system::module> openssl{
        caf::openssl::manager::make(sys, {})};
      if (dynamic_cast<hardened_multiplexer*>(&sys.middleman().backend())
          == nullptr)
        throw std::logic_error("vidnode's TLS transport needs the middleman "
                               "loaded with vidnode::net::load_middleman");
      return new tls_transport(sys, std::move(openssl), context);
    });
}

caf::io::middleman_actor tls_transport::handle_of(caf::actor_system& sys) {
  std::lock_guard<std::mutex> guard{running_mutex};
  auto i = running.find(&sys);
  return i != running.end() ? i->second : caf::io::middleman_actor{};
}

void tls_transport::next_port_peers(caf::actor_system& sys, port_peers peers) {
  std::lock_guard<std::mutex> guard{running_mutex};
  auto i = running_peers.find(&sys);
  if (i != running_peers.end())
    i->second->store(peers);
}

tls_transport::tls_transport(caf::actor_system& sys,
                             std::unique_ptr<caf::actor_system::module> openssl,
                             tls_context context)
  : sys_(sys), openssl_(std::move(openssl)), context_(std::move(context)),
    next_peers_(std::make_shared<std::atomic<port_peers>>(port_peers::any)) {}

tls_transport::~tls_transport() = default;

void tls_transport::init(caf::actor_system_config& cfg) {
  openssl_->init(cfg);
}

void tls_transport::start() {
  openssl_->start();
  auto basp =
    sys_.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  auto mx = static_cast<hardened_multiplexer*>(&sys_.middleman().backend());
  // Detached: connect blocks for up to the connect timeout.
  if (caf::get_or(sys_.config(), "middleman.attach-utility-actors", false))
    actor_ = sys_.spawn<tls_middleman, caf::hidden>(std::move(basp), mx,
                                                    context_, next_peers_);
  else
    actor_ = sys_.spawn<tls_middleman, caf::detached + caf::hidden>(
      std::move(basp), mx, context_, next_peers_);
  std::lock_guard<std::mutex> guard{running_mutex};
  running[&sys_] = actor_;
  running_peers[&sys_] = next_peers_;
}

void tls_transport::stop() {
  {
    std::lock_guard<std::mutex> guard{running_mutex};
    running.erase(&sys_);
    running_peers.erase(&sys_);
  }
  if (actor_) {
    caf::scoped_actor self{sys_, true};
    self->send_exit(actor_, caf::exit_reason::kill);
    if (!caf::get_or(sys_.config(), "middleman.attach-utility-actors", false))
      self->wait_for(actor_);
    actor_ = nullptr;
  }
  openssl_->stop();
}

caf::actor_system::module::id_t tls_transport::id() const {
  return openssl_manager;
}

void* tls_transport::subtype_ptr() {
  return openssl_->subtype_ptr();
}

} // namespace vidnode::net::detail
