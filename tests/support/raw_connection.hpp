#pragma once

/// @file
/// A plain TCP connection to a port of 127.0.0.1, for tests that send a
/// node bytes no CAF peer would. Header-only; throws std::runtime_error when
/// it cannot connect or send.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vidnode::test {

/// A connected TCP socket to 127.0.0.1:port whose reads give up after five
/// seconds of silence; the caller closes it.
inline int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot connect to 127.0.0.1:"
                             + std::to_string(port));
  }
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

/// A BASP message header (CAF 0.17.6's wire format, network byte order):
/// operation, two padding bytes, flags, payload length, operation data,
/// source and destination actor.
inline std::vector<uint8_t> basp_header(uint8_t operation,
                                        uint32_t payload_length) {
  std::vector<uint8_t> bytes(32, 0);
  bytes[0] = operation;
  for (int i = 0; i < 4; ++i)
    bytes[4 + i] = static_cast<uint8_t>(payload_length >> (8 * (3 - i)));
  return bytes;
}

/// A TCP connection to 127.0.0.1:port, closed when destroyed.
class raw_connection {
public:
  explicit raw_connection(uint16_t port) : fd_(connect_loopback(port)) {}

  ~raw_connection() {
    ::close(fd_);
  }

  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;

  /// Sends all of `bytes`; false if the peer closed the connection first.
  bool send(const std::vector<uint8_t>& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL)
           == static_cast<ssize_t>(bytes.size());
  }

  /// Reads until the peer closes the connection; false if it is still open
  /// after five seconds of silence.
  bool closed_by_peer() {
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0)
        return true;
      if (n < 0)
        return errno == ECONNRESET;
    }
  }

  /// Ends our side of the connection and reads until the peer closed its
  /// side (its close() sends the FIN read here as end of file); false if it
  /// is still open after five seconds of silence.
  bool finish() {
    ::shutdown(fd_, SHUT_WR);
    return closed_by_peer();
  }

private:
  int fd_ = -1;
};

} // namespace vidnode::test
