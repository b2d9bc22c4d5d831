#include "vidnode/net/hardened_multiplexer.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include <algorithm>
#include <climits>

#include <caf/io/middleman.hpp>
#include <caf/settings.hpp>
#include <caf/io/network/scribe_impl.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/runtime/units.hpp"

#include "bounded_read.hpp"

namespace vidnode::net {

namespace {

using caf::io::network::native_socket;

/// A scribe that closes its connection instead of reading a message longer
/// than the limit (BASP announces each payload's length through
/// configure_read before the buffer is sized).
class bounded_scribe : public caf::io::network::scribe_impl {
public:
  bounded_scribe(caf::io::network::default_multiplexer& mx, native_socket fd,
                 size_t limit)
    : scribe_impl(mx, fd), limit_(limit) {}

  void configure_read(caf::io::receive_policy::config config) override {
    if (!detail::read_within_limit(*this, stream_.backend(), config, limit_))
      config = caf::io::receive_policy::exactly(1);
    scribe_impl::configure_read(config);
  }

private:
  size_t limit_;
};

/// The soft limit on open descriptors, capped to an int.
int descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return INT_MAX;
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur, INT_MAX));
}

struct addrinfo_deleter {
  void operator()(addrinfo* x) const {
    freeaddrinfo(x);
  }
};

/// Connects a non-blocking socket to `address`, waiting until `deadline`;
/// returns the (blocking again) socket, or -1 and sets `cause`.
native_socket connect_before(const addrinfo& address,
                             std::chrono::steady_clock::time_point deadline,
                             std::string& cause) {
  native_socket fd = socket(address.ai_family,
                            address.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            address.ai_protocol);
  if (fd < 0) {
    cause = std::strerror(errno);
    return -1;
  }
  auto fail = [&](int error) {
    cause = std::strerror(error);
    close(fd);
    return native_socket{-1};
  };
  if (connect(fd, address.ai_addr, address.ai_addrlen) != 0) {
    if (errno != EINPROGRESS)
      return fail(errno);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        cause = "no connection within the connect timeout";
        close(fd);
        return -1;
      }
      pollfd watched{fd, POLLOUT, 0};
      auto rc = poll(&watched, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR)
        continue;
      if (rc < 0)
        return fail(errno);
      if (rc == 0)
        continue;
      int error = 0;
      socklen_t len = sizeof(error);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        return fail(errno);
      if (error != 0)
        return fail(error);
      break;
    }
  }
  // CAF's own connect hands over a blocking socket; the scribe sets the
  // flags it needs.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

} // namespace

hardened_multiplexer::hardened_multiplexer(caf::actor_system* sys)
  : default_multiplexer(sys),
    max_message_size_(caf::get_or(sys->config(), max_message_size_key,
                                  default_max_message_size)),
    connect_timeout_(caf::get_or(sys->config(), connect_timeout_key,
                                 caf::timespan{std::chrono::seconds{10}})) {}

caf::expected<native_socket>
hardened_multiplexer::connect_socket(const std::string& host, uint16_t port) {
  auto deadline = std::chrono::steady_clock::now() + connect_timeout_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (auto rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
      rc != 0)
    return caf::make_error(caf::sec::cannot_connect_to_node,
                           "no such host: " + std::string{gai_strerror(rc)},
                           host, port);
  std::unique_ptr<addrinfo, addrinfo_deleter> addresses{found};
  std::string cause = "no address";
  for (auto a = addresses.get(); a != nullptr; a = a->ai_next) {
    auto fd = connect_before(*a, deadline, cause);
    if (fd >= 0)
      return fd;
  }
  return caf::make_error(caf::sec::cannot_connect_to_node, cause, host, port);
}

caf::expected<caf::io::scribe_ptr>
hardened_multiplexer::new_tcp_scribe(const std::string& host, uint16_t port) {
  auto fd = connect_socket(host, port);
  if (!fd)
    return std::move(fd.error());
  return new_scribe(*fd);
}

native_socket hardened_multiplexer::fresh_descriptor(native_socket fd) {
  auto limit = descriptor_limit();
  for (int round = 0; round < 2; ++round) {
    auto from = next_descriptor_.load();
    if (from >= limit)
      from = first_descriptor;
    auto moved = fcntl(fd, F_DUPFD_CLOEXEC, from);
    if (moved >= 0) {
      ::close(fd);
      next_descriptor_.store(moved + 1);
      return moved;
    }
    // Every number from `from` up is taken (or above the limit): start over
    // at the bottom of the range.
    next_descriptor_.store(first_descriptor);
  }
  // Out of descriptors: the socket keeps its number (CAF's behaviour).
  return fd;
}

native_socket hardened_multiplexer::prepare_connection(native_socket fd) {
  fd = fresh_descriptor(fd);
  caf::io::network::keepalive(fd, true);
  return fd;
}

caf::io::scribe_ptr hardened_multiplexer::new_scribe(native_socket fd) {
  return caf::make_counted<bounded_scribe>(*this, prepare_connection(fd),
                                           max_message_size_);
}

namespace detail {

bool read_within_limit(caf::io::scribe& scribe,
                       caf::io::network::default_multiplexer& mx,
                       caf::io::receive_policy::config config, size_t limit) {
  if (config.second <= limit)
    return true;
  spdlog::warn("closing the connection from {}:{}: it announced a message "
               "of {} bytes, above the limit of {} (max-message-size)",
               scribe.addr(), scribe.port(), config.second,
               runtime::format_bytes(limit));
  caf::io::scribe_ptr self{&scribe};
  mx.post([self, &mx] {
    if (!self->detached())
      self->io_failure(&mx, caf::io::network::operation::read);
  });
  return false;
}

} // namespace detail

void load_middleman(caf::actor_system_config& cfg, size_t max_message_size) {
  if (max_message_size > 0)
    caf::put(cfg.content, hardened_multiplexer::max_message_size_key,
             max_message_size);
  cfg.load<caf::io::middleman, hardened_multiplexer>();
}

} // namespace vidnode::net
