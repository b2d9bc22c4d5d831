#include "tls_stream.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <spdlog/spdlog.h>

namespace vidnode::net::detail {

namespace {

using caf::io::network::native_socket;
using caf::io::network::operation;
using caf::io::network::rw_state;

/// Blocks SIGPIPE in this thread while alive and discards one raised
/// meanwhile: OpenSSL writes with send() without MSG_NOSIGNAL, and a
/// SIGPIPE would end the process.
class sigpipe_guard {
public:
  sigpipe_guard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &saved_);
  }

  ~sigpipe_guard() {
    timespec none{};
    while (sigtimedwait(&pipe_, nullptr, &none) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }

  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

private:
  sigset_t pipe_;
  sigset_t saved_;
};

int clamp_length(size_t len) {
  return static_cast<int>(std::min(len, static_cast<size_t>(INT_MAX)));
}

/// Logs a failed handshake at most once a second (a peer that keeps
/// connecting with a bad certificate must not flood the log).
void log_failed_handshake(const std::string& peer, const std::string& reason) {
  using clock = std::chrono::steady_clock;
  static std::atomic<clock::rep> last{0};
  auto now = clock::now().time_since_epoch().count();
  auto previous = last.load();
  if (now - previous < clock::duration{std::chrono::seconds{1}}.count()
      || !last.compare_exchange_strong(previous, now))
    return;
  spdlog::warn("TLS: handshake with {} failed: {} (further failures within "
               "a second are not logged)",
               peer, reason);
}

} // namespace

ssl_ptr make_ssl(const tls_context& context, native_socket fd, bool accepting) {
  ssl_ptr ssl{SSL_new(context.get())};
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1)
    return nullptr;
  if (accepting) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
    sigpipe_guard guard;
    ERR_clear_error();
    SSL_do_handshake(ssl.get());
    ERR_clear_error();
  }
  return ssl;
}

tls_session::tls_session(ssl_ptr ssl) : ssl_(std::move(ssl)) {}

void tls_session::record_failure(int ssl_error) {
  failed_ = true;
  auto verdict = SSL_get_verify_result(ssl_.get());
  if (verdict != X509_V_OK) {
    failure_ = std::string{"the peer's certificate was refused: "}
               + X509_verify_cert_error_string(verdict);
  } else if (auto code = ERR_peek_last_error(); code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    failure_ = text;
  } else if (ssl_error == SSL_ERROR_SYSCALL && errno != 0) {
    failure_ = std::strerror(errno);
  } else {
    failure_ = "the peer closed the connection";
  }
  ERR_clear_error();
}

tls_session::progress tls_session::handshake() {
  if (failed_)
    return progress::failed;
  if (SSL_is_init_finished(ssl_.get()))
    return progress::done;
  sigpipe_guard guard;
  ERR_clear_error();
  errno = 0;
  auto rc = SSL_do_handshake(ssl_.get());
  if (rc == 1)
    return progress::done;
  switch (auto error = SSL_get_error(ssl_.get(), rc)) {
    case SSL_ERROR_WANT_READ:
      return progress::want_read;
    case SSL_ERROR_WANT_WRITE:
      return progress::want_write;
    default:
      record_failure(error);
      return progress::failed;
  }
}

rw_state tls_session::read_some(size_t& result, native_socket, void* buf,
                                size_t len) {
  result = 0;
  if (failed_)
    return rw_state::failure;
  if (len == 0)
    return rw_state::success;
  sigpipe_guard guard;
  ERR_clear_error();
  errno = 0;
  auto n = SSL_read(ssl_.get(), buf, clamp_length(len));
  if (n > 0) {
    result = static_cast<size_t>(n);
    return rw_state::success;
  }
  switch (auto error = SSL_get_error(ssl_.get(), n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return rw_state::success;
    default:
      record_failure(error);
      return rw_state::failure;
  }
}

rw_state tls_session::write_some(size_t& result, native_socket, const void* buf,
                                 size_t len) {
  result = 0;
  write_wants_read_ = false;
  if (failed_)
    return rw_state::failure;
  if (len == 0)
    return rw_state::indeterminate;
  sigpipe_guard guard;
  ERR_clear_error();
  errno = 0;
  auto n = SSL_write(ssl_.get(), buf, clamp_length(len));
  if (n > 0) {
    result = static_cast<size_t>(n);
    return rw_state::success;
  }
  switch (auto error = SSL_get_error(ssl_.get(), n)) {
    case SSL_ERROR_WANT_READ:
      write_wants_read_ = true;
      return rw_state::success;
    case SSL_ERROR_WANT_WRITE:
      return rw_state::success;
    default:
      record_failure(error);
      return rw_state::failure;
  }
}

bool tls_session::must_read_more(native_socket, size_t) const {
  return SSL_pending(ssl_.get()) > 0;
}

tls_stream::tls_stream(caf::io::network::default_multiplexer& mx,
                       native_socket fd, ssl_ptr ssl,
                       caf::io::network::stream_manager* owner)
  : stream(mx, fd), session_(std::move(ssl)), owner_(owner) {
  auto address = caf::io::network::remote_addr_of_fd(fd);
  auto port = caf::io::network::remote_port_of_fd(fd);
  peer_ = (address ? *address : std::string{"?"}) + ":"
          + (port ? std::to_string(*port) : std::string{"?"});
}

void tls_stream::handle_event(operation op) {
  switch (op) {
    case operation::read:
      if (handshaking_ && !advance_handshake(op))
        return;
      handle_event_impl(op, session_);
      // What arrived may be what a paused write waited for.
      resume_writes();
      return;
    case operation::write:
      if (handshaking_ && !advance_handshake(op))
        return;
      handle_event_impl(op, session_);
      if (session_.write_wants_read())
        pause_writes();
      return;
    case operation::propagate_error:
      handle_event_impl(op, session_);
      return;
  }
}

bool tls_stream::advance_handshake(operation op) {
  switch (session_.handshake()) {
    case tls_session::progress::done:
      handshaking_ = false;
      resume_writes();
      return true;
    case tls_session::progress::want_read:
      if (op == operation::write)
        pause_writes();
      return false;
    case tls_session::progress::want_write:
      if (writes_paused_)
        resume_writes();
      else
        force_empty_write(manager_ptr{owner_});
      return false;
    case tls_session::progress::failed:
      fail_handshake();
      return false;
  }
  return false;
}

void tls_stream::fail_handshake() {
  log_failed_handshake(peer_, session_.failure());
  session_.fail();
  stop_paused_writes();
  backend().del(operation::write, fd(), this);
  passivate();
  owner_->io_failure(&backend(), operation::read);
}

void tls_stream::pause_writes() {
  if (writes_paused_)
    return;
  writes_paused_ = true;
  backend().del(operation::write, fd(), this);
}

void tls_stream::resume_writes() {
  if (!writes_paused_)
    return;
  writes_paused_ = false;
  backend().add(operation::write, fd(), this);
}

void tls_stream::stop_paused_writes() {
  if (!writes_paused_)
    return;
  writes_paused_ = false;
  // The writer is released from the loop's top, not from inside a call on
  // the owner it may hold the last reference to.
  manager_ptr keep{owner_};
  backend().post([this, keep] { stream::removed_from_loop(operation::write); });
}

void tls_stream::removed_from_loop(operation op) {
  // A pause keeps the writer: the write resumes after the next read.
  if (op == operation::write && writes_paused_)
    return;
  stream::removed_from_loop(op);
}

void tls_stream::graceful_shutdown() {
  if (handshaking_) {
    // Nothing written so far can be delivered; waiting for it would keep the
    // connection in the loop for as long as the peer stays silent.
    stop_paused_writes();
    backend().del(operation::write, fd(), this);
  }
  stream::graceful_shutdown();
}

} // namespace vidnode::net::detail
