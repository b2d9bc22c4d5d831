#pragma once

#include <string>

#include <curl/curl.h>

#include "vidnode/net/url_policy.hpp"

namespace vidnode::net {

/// Judges, for one libcurl transfer, every address libcurl is about to
/// connect to (after name resolution, and again after each redirect) by a
/// url_policy, through CURLOPT_OPENSOCKETFUNCTION: a refused address gets
/// no socket, so nothing is sent to it, not even a SYN. The first refusal
/// is kept so that the caller can report the transfer's failure as a
/// refusal (final, not retried) rather than as a connection failure.
///
/// install() it on an easy handle before curl_easy_perform; it must outlive
/// the transfer. Used by one transfer (one thread) at a time. Only what
/// libcurl connects to is judged: through a proxy, that is the proxy.
class address_guard {
public:
  /// A guard that judges by `policy`, which must outlive it.
  explicit address_guard(const url_policy& policy) : policy_(policy) {}

  address_guard(const address_guard&) = delete;
  address_guard& operator=(const address_guard&) = delete;

  /// Makes `easy` open its sockets through this guard.
  void install(CURL* easy);

  /// Why the first refused connection was refused; empty if none was.
  const std::string& refusal() const noexcept {
    return refusal_;
  }

private:
  static curl_socket_t open_socket(void* self, curlsocktype purpose,
                                   curl_sockaddr* address);

  const url_policy& policy_;
  std::string refusal_;
};

} // namespace vidnode::net
