#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace vidnode::net {

/// The class of an IP address as far as a node's outgoing transfers care:
/// `global`, or one of the special-purpose blocks a node refuses to connect
/// to unless `vidnode --allow-private-urls` (url_policy).
///
/// The blocks are those of IANA's IPv4 and IPv6 Special-Purpose Address
/// Registries (RFC 6890, updated by RFC 8190) that are not globally
/// reachable, plus multicast (RFC 5771, RFC 4291) and 240.0.0.0/4
/// (RFC 1112, reserved, with the limited broadcast 255.255.255.255).
/// Documentation blocks (RFC 5737, RFC 3849) are refused too: no service
/// lives there. 6to4 addresses (2002::/16, RFC 3056) are judged by the
/// IPv4 address they embed; the rest of 2001::/23 (IETF protocol
/// assignments, Teredo among them) is refused as a whole.
enum class address_class : uint8_t {
  /// Any other address: may be reached.
  global,
  /// 0.0.0.0/8 ("this network", RFC 1122) and :: (RFC 4291): a connect()
  /// to 0.0.0.0 reaches the local host on Linux.
  unspecified,
  /// 127.0.0.0/8 (RFC 1122) and ::1 (RFC 4291).
  loopback,
  /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918) and the unique
  /// local fc00::/7 (RFC 4193).
  private_network,
  /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
  shared,
  /// 169.254.0.0/16 (RFC 3927; cloud metadata services live at
  /// 169.254.169.254) and fe80::/10 (RFC 4291).
  link_local,
  /// 192.0.0.0/24 and 2001::/23, IETF protocol assignments (RFC 6890).
  protocol_assignment,
  /// 198.18.0.0/15, benchmarking (RFC 2544).
  benchmarking,
  /// 224.0.0.0/4 (RFC 5771) and ff00::/8 (RFC 4291).
  multicast,
  /// 240.0.0.0/4, reserved (RFC 1112), including 255.255.255.255, and the
  /// IPv6 discard-only block 100::/64 (RFC 6666).
  reserved,
  /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737) and
  /// 2001:db8::/32 (RFC 3849), for documentation only.
  documentation,
};

/// Every class but `global`: what `vidnode --allow-private-urls` allows.
std::set<address_class> all_special_address_classes();

/// How a refusal names the class: "a loopback address", "a private
/// address", ... ("a global address" for `global`).
const char* describe(address_class x) noexcept;

/// Classifies an IPv4 address given as its four bytes in network order
/// (127.0.0.1 is {127, 0, 0, 1}).
address_class classify(const std::array<uint8_t, 4>& ipv4) noexcept;

/// Classifies an IPv6 address given as its sixteen bytes in network order.
/// IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d, RFC
/// 2765), IPv4-compatible (::a.b.c.d, deprecated), NAT64
/// (64:ff9b::a.b.c.d, RFC 6052) and 6to4 (2002:AABB:CCDD::, RFC 3056)
/// addresses are judged by the IPv4 address they embed, since that is
/// where a connection goes.
address_class classify(const std::array<uint8_t, 16>& ipv6) noexcept;

/// Classifies a literal address in text ("127.0.0.1", "::1", "[::1]"; a
/// zone such as "%eth0" is ignored); nothing if `text` is not one (a host
/// name, or an IPv4 form other than the dotted quad).
std::optional<address_class> classify_literal(const std::string& text);

} // namespace vidnode::net
