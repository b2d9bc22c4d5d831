#pragma once

/// @file
/// Small media files made in memory for tests.

#include <cstdint>
#include <string>

namespace vidnode::test {

/// One second of silence as a WAV file: 8 kHz, mono, 8-bit PCM (8,044
/// bytes, little-endian as the format requires).
inline std::string silent_wav_second() {
  std::string wav = "RIFF";
  auto u32 = [&](uint32_t x) { wav.append(reinterpret_cast<char*>(&x), 4); };
  auto u16 = [&](uint16_t x) { wav.append(reinterpret_cast<char*>(&x), 2); };
  u32(36 + 8000);
  wav += "WAVEfmt ";
  u32(16);
  u16(1);
  u16(1);
  u32(8000);
  u32(8000);
  u16(1);
  u16(8);
  wav += "data";
  u32(8000);
  wav.append(8000, char(128));
  return wav;
}

} // namespace vidnode::test
