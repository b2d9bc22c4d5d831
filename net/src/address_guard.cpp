#include "address_guard.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace vidnode::net {

namespace {

/// The address as text and its class; nothing for a family that is not IP.
std::optional<std::pair<std::string, address_class>>
judge(const curl_sockaddr& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.family == AF_INET && address.addrlen >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, &address.addr, sizeof(in));
    std::array<uint8_t, 4> bytes{};
    std::memcpy(bytes.data(), &in.sin_addr, bytes.size());
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
    return std::make_pair(std::string{text}, classify(bytes));
  }
  if (address.family == AF_INET6 && address.addrlen >= sizeof(sockaddr_in6)) {
    // libcurl's curl_sockaddr holds room for any address it passes.
    sockaddr_in6 in6{};
    std::memcpy(&in6, &address.addr, sizeof(in6));
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &in6.sin6_addr, bytes.size());
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    return std::make_pair(std::string{text}, classify(bytes));
  }
  return std::nullopt;
}

} // namespace

void address_guard::install(CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                   &address_guard::open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
}

curl_socket_t address_guard::open_socket(void* self, curlsocktype purpose,
                                         curl_sockaddr* address) {
  auto& guard = *static_cast<address_guard*>(self);
  std::optional<std::string> why;
  if (purpose != CURLSOCKTYPE_IPCXN)
    why = "a socket that is not an IP connection";
  else if (auto judged = judge(*address))
    why = guard.policy_.refusal(judged->first, judged->second);
  else if (!guard.policy_.allows_every_address())
    why = "a connection that is not over IPv4 or IPv6 (vidnode "
          "--allow-private-urls allows it)";
  if (why) {
    if (guard.refusal_.empty())
      guard.refusal_ = *why;
    return CURL_SOCKET_BAD;
  }
  // What libcurl does without this callback, plus close-on-exec.
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

} // namespace vidnode::net
