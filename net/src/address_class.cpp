#include "vidnode/net/address_class.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace vidnode::net {

std::set<address_class> all_special_address_classes() {
  return {address_class::unspecified,     address_class::loopback,
          address_class::private_network, address_class::shared,
          address_class::link_local,      address_class::protocol_assignment,
          address_class::benchmarking,    address_class::multicast,
          address_class::reserved,        address_class::documentation};
}

const char* describe(address_class x) noexcept {
  switch (x) {
    case address_class::global:
      return "a global address";
    case address_class::unspecified:
      return "an unspecified (\"this host\") address";
    case address_class::loopback:
      return "a loopback address";
    case address_class::private_network:
      return "a private address";
    case address_class::shared:
      return "a shared (carrier-grade NAT) address";
    case address_class::link_local:
      return "a link-local address";
    case address_class::protocol_assignment:
      return "an IETF protocol assignment address";
    case address_class::benchmarking:
      return "a benchmarking address";
    case address_class::multicast:
      return "a multicast address";
    case address_class::reserved:
      return "a reserved address";
    case address_class::documentation:
      return "a documentation address";
  }
  return "an unknown address";
}

address_class classify(const std::array<uint8_t, 4>& ip) noexcept {
  auto a = ip[0];
  auto b = ip[1];
  if (a == 0)
    return address_class::unspecified;
  if (a == 10)
    return address_class::private_network;
  if (a == 100 && (b & 0xc0) == 64)
    return address_class::shared;
  if (a == 127)
    return address_class::loopback;
  if (a == 169 && b == 254)
    return address_class::link_local;
  if (a == 172 && (b & 0xf0) == 16)
    return address_class::private_network;
  if (a == 192 && b == 0 && ip[2] == 0)
    return address_class::protocol_assignment;
  if ((a == 192 && b == 0 && ip[2] == 2)
      || (a == 198 && b == 51 && ip[2] == 100)
      || (a == 203 && b == 0 && ip[2] == 113))
    return address_class::documentation;
  if (a == 192 && b == 168)
    return address_class::private_network;
  if (a == 198 && (b & 0xfe) == 18)
    return address_class::benchmarking;
  if ((a & 0xf0) == 224)
    return address_class::multicast;
  if ((a & 0xf0) == 240)
    return address_class::reserved;
  return address_class::global;
}

address_class classify(const std::array<uint8_t, 16>& ip) noexcept {
  auto zeros = [&](size_t from, size_t to) {
    for (auto i = from; i < to; ++i)
      if (ip[i] != 0)
        return false;
    return true;
  };
  auto embedded = [&] {
    return classify(std::array<uint8_t, 4>{ip[12], ip[13], ip[14], ip[15]});
  };
  if (zeros(0, 16))
    return address_class::unspecified;
  if (zeros(0, 15) && ip[15] == 1)
    return address_class::loopback;
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible).
  if (zeros(0, 10)
      && ((ip[10] == 0xff && ip[11] == 0xff) || (ip[10] == 0 && ip[11] == 0)))
    return embedded();
  // ::ffff:0:a.b.c.d (translated).
  if (zeros(0, 8) && ip[8] == 0xff && ip[9] == 0xff && zeros(10, 12))
    return embedded();
  // 2002:AABB:CCDD::/48, 6to4: the IPv4 address follows the prefix.
  if (ip[0] == 0x20 && ip[1] == 0x02)
    return classify(std::array<uint8_t, 4>{ip[2], ip[3], ip[4], ip[5]});
  // 2001:db8::/32, documentation.
  if (ip[0] == 0x20 && ip[1] == 0x01 && ip[2] == 0x0d && ip[3] == 0xb8)
    return address_class::documentation;
  // 2001::/23, IETF protocol assignments (Teredo is 2001::/32).
  if (ip[0] == 0x20 && ip[1] == 0x01 && ip[2] < 0x02)
    return address_class::protocol_assignment;
  // 100::/64, discard-only.
  if (ip[0] == 0x01 && ip[1] == 0x00 && zeros(2, 8))
    return address_class::reserved;
  // 64:ff9b::a.b.c.d, the NAT64 well-known prefix.
  if (ip[0] == 0 && ip[1] == 0x64 && ip[2] == 0xff && ip[3] == 0x9b
      && zeros(4, 12))
    return embedded();
  if ((ip[0] & 0xfe) == 0xfc)
    return address_class::private_network;
  if (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80)
    return address_class::link_local;
  if (ip[0] == 0xff)
    return address_class::multicast;
  return address_class::global;
}

std::optional<address_class> classify_literal(const std::string& text) {
  auto host = text;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (auto zone = host.find('%'); zone != std::string::npos)
    host.resize(zone);
  std::array<uint8_t, 4> v4{};
  if (inet_pton(AF_INET, host.c_str(), v4.data()) == 1)
    return classify(v4);
  std::array<uint8_t, 16> v6{};
  if (inet_pton(AF_INET6, host.c_str(), v6.data()) == 1)
    return classify(v6);
  return std::nullopt;
}

} // namespace vidnode::net
