#pragma once

/// @file
/// Hexadecimal text for net/'s own use: digests, signatures and random
/// names.

#include <cstddef>
#include <random>
#include <string>

namespace vidnode::net::detail {

/// `size` bytes at `bytes` as lower-case hex, two digits a byte.
inline std::string to_hex(const unsigned char* bytes, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0xf];
  }
  return out;
}

/// `count` random lower-case hex digits (std::random_device, 4 bits each).
inline std::string random_hex(size_t count) {
  static constexpr char digits[] = "0123456789abcdef";
  std::random_device source;
  std::string out;
  out.reserve(count);
  while (out.size() < count) {
    auto bits = static_cast<uint32_t>(source());
    for (int i = 0; i < 8 && out.size() < count; ++i, bits >>= 4)
      out += digits[bits & 0xf];
  }
  return out;
}

} // namespace vidnode::net::detail
