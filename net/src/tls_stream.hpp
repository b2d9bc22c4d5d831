#pragma once

#include <memory>
#include <string>

#include <openssl/ssl.h>

#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/operation.hpp>
#include <caf/io/network/rw_state.hpp>
#include <caf/io/network/stream.hpp>
#include <caf/io/network/stream_manager.hpp>

namespace vidnode::net::detail {

/// An SSL_CTX shared by every connection of one actor system (built once at
/// start from the checked files; OpenSSL counts its references).
using tls_context = std::shared_ptr<SSL_CTX>;

struct ssl_free {
  void operator()(SSL* x) const {
    SSL_free(x);
  }
};

/// One connection's OpenSSL state.
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;

/// Makes the OpenSSL state of a connection on the non-blocking socket `fd`,
/// as the accepting or the connecting side; nothing if OpenSSL is out of
/// memory. The connecting side sends its first handshake message at once.
ssl_ptr make_ssl(const tls_context& context, caf::io::network::native_socket fd,
                 bool accepting);

/// The TLS record layer of one connection, as the read/write policy of a
/// tls_stream: reads and writes go through OpenSSL. A SIGPIPE raised by a
/// write to a closed socket is discarded (OpenSSL writes with plain send).
class tls_session {
public:
  /// How far a handshake step got.
  enum class progress { done, want_read, want_write, failed };

  explicit tls_session(ssl_ptr ssl);

  /// Takes the handshake as far as the socket allows now.
  progress handshake();

  /// CAF's read policy: `result` bytes read into `buf`; success with 0 bytes
  /// when nothing can be read now; failure when the connection is broken or
  /// closed.
  caf::io::network::rw_state read_some(size_t& result,
                                       caf::io::network::native_socket fd,
                                       void* buf, size_t len);

  /// CAF's write policy, as read_some; a call with `len` 0 is
  /// indeterminate (the stream then stops writing). After a success with 0
  /// bytes, write_wants_read says whether OpenSSL must read before it can
  /// write again.
  caf::io::network::rw_state write_some(size_t& result,
                                        caf::io::network::native_socket fd,
                                        const void* buf, size_t len);

  /// Whether OpenSSL holds decrypted bytes not read yet.
  bool must_read_more(caf::io::network::native_socket, size_t) const;

  /// See write_some.
  bool write_wants_read() const noexcept {
    return write_wants_read_;
  }

  /// Makes every later call fail.
  void fail() noexcept {
    failed_ = true;
  }

  /// Why the handshake or the connection failed, in OpenSSL's words.
  const std::string& failure() const noexcept {
    return failure_;
  }

private:
  /// Records why the last call failed (from OpenSSL's error queue and the
  /// peer certificate's verification).
  void record_failure(int ssl_error);

  ssl_ptr ssl_;
  bool failed_ = false;
  bool write_wants_read_ = false;
  std::string failure_;
};

/// A CAF stream over a TLS session that never busy-polls.
///
/// CAF 0.17.6's own TLS streams keep a socket subscribed for writing while
/// OpenSSL waits to read (during every handshake, since a BASP node writes
/// its handshake before the peer's TLS hello has arrived): the multiplexer
/// thread then spins at full CPU for as long as a peer stays silent, and a
/// connection dropped in that state is never removed from the loop, so the
/// actor system never finishes shutting down. Here a write that OpenSSL
/// cannot make until it has read unsubscribes the socket from writing until
/// the next read event, and the handshake is driven by read and write
/// events before any payload is read or written.
///
/// Runs in the multiplexer's thread, like every CAF stream.
class tls_stream : public caf::io::network::stream {
public:
  /// `owner` is the scribe holding this stream, told when the handshake
  /// fails.
  tls_stream(caf::io::network::default_multiplexer& mx,
             caf::io::network::native_socket fd, ssl_ptr ssl,
             caf::io::network::stream_manager* owner);

  void handle_event(caf::io::network::operation op) override;

  void removed_from_loop(caf::io::network::operation op) override;

  void graceful_shutdown() override;

  /// Gives up a write paused for a read (the connection is being removed),
  /// releasing the writer the stream holds.
  void stop_paused_writes();

private:
  /// Drives the handshake on an event; true once it is done.
  bool advance_handshake(caf::io::network::operation op);

  void pause_writes();

  void resume_writes();

  /// Reports a failed handshake to the owner and leaves the loop.
  void fail_handshake();

  tls_session session_;
  caf::io::network::stream_manager* owner_;
  /// "ADDRESS:PORT" of the peer, for logs (the socket may be closed by the
  /// time a handshake fails).
  std::string peer_;
  bool handshaking_ = true;
  bool writes_paused_ = false;
};

} // namespace vidnode::net::detail
