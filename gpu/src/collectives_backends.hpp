#pragma once

/// @file
/// The backends behind collectives.hpp (private to gpu/). collectives.cpp
/// picks one by device kind; each backend parses only its own addresses.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "vidnode/gpu/collectives.hpp"

namespace vidnode::gpu {

/// Gloo (cpu devices): a TCPStore server on an ephemeral port of every
/// interface. Its address is "gloo:HOST:PORT/GANG": HOST as given to
/// host_rendezvous (an IPv6 literal in brackets), PORT the bound port in
/// decimal, GANG 16 hex digits that name this gang's keys in the store.
std::unique_ptr<rendezvous_host> host_gloo_rendezvous(const std::string& host);

/// Joins a Gloo gang on the host's CPU; see join_gang.
std::unique_ptr<communicator> join_gloo_gang(const std::string& address,
                                             int32_t rank, int32_t world,
                                             std::chrono::milliseconds timeout);

/// NCCL (cuda devices): a fresh ncclUniqueId, whose bootstrap root NCCL
/// runs in this process on an interface of its choice (NCCL_SOCKET_IFNAME):
/// host_rendezvous's `host` is not used. Its address is "nccl:" and the
/// id's 128 bytes in lowercase hex (256 digits).
std::unique_ptr<rendezvous_host> host_nccl_rendezvous();

/// Joins an NCCL gang on the GPU of CUDA ordinal `ordinal`; see join_gang.
std::unique_ptr<communicator> join_nccl_gang(int32_t ordinal,
                                             const std::string& address,
                                             int32_t rank, int32_t world,
                                             std::chrono::milliseconds timeout);

/// The text of `address` after "BACKEND:", or throws collective_error
/// naming what was expected when it does not start so.
inline std::string address_body(const std::string& address,
                                const char* backend) {
  std::string prefix = std::string{backend} + ":";
  if (address.compare(0, prefix.size(), prefix) == 0)
    return address.substr(prefix.size());
  auto colon = address.find(':');
  throw collective_error(
    "rendezvous address '" + address.substr(0, 64) + "' is not a " + backend
    + " address"
    + (colon == std::string::npos
         ? std::string{" (it names no backend)"}
         : " (it names backend '" + address.substr(0, colon) + "')"));
}

} // namespace vidnode::gpu
