#include "vidnode/net/hardened_multiplexer.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include <caf/io/middleman.hpp>
#include <caf/settings.hpp>
#include <caf/io/network/scribe_impl.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/runtime/units.hpp"

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
    if (config.second <= limit_) {
      scribe_impl::configure_read(config);
      return;
    }
    spdlog::warn("closing the connection from {}:{}: it announced a message "
                 "of {} bytes, above the limit of {} (max-message-size)",
                 addr(), port(), config.second,
                 runtime::format_bytes(limit_));
    // Reads at most one more byte (which BASP then rejects as malformed);
    // the connection is closed from the multiplexer's loop, not from
    // inside the broker's handler that called this.
    scribe_impl::configure_read(caf::io::receive_policy::exactly(1));
    caf::io::scribe_ptr self{this};
    auto& mx = stream_.backend();
    mx.post([self, &mx] {
      if (!self->detached())
        self->io_failure(&mx, caf::io::network::operation::read);
    });
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

} // namespace

hardened_multiplexer::hardened_multiplexer(caf::actor_system* sys)
  : default_multiplexer(sys),
    max_message_size_(caf::get_or(sys->config(), max_message_size_key,
                                  default_max_message_size)) {}

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

caf::io::scribe_ptr hardened_multiplexer::new_scribe(native_socket fd) {
  fd = fresh_descriptor(fd);
  caf::io::network::keepalive(fd, true);
  return caf::make_counted<bounded_scribe>(*this, fd, max_message_size_);
}

void load_middleman(caf::actor_system_config& cfg, size_t max_message_size) {
  if (max_message_size > 0)
    caf::put(cfg.content, hardened_multiplexer::max_message_size_key,
             max_message_size);
  cfg.load<caf::io::middleman, hardened_multiplexer>();
}

} // namespace vidnode::net
