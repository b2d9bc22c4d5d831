#pragma once

/// @file
/// Small media files made in memory for tests.

#include <cstdint>
#include <string>

namespace vidnode::test {

/// `seconds` of silence as a WAV file: `rate` Hz, mono, 8-bit PCM (44
/// bytes of header, then `seconds * rate` bytes; little-endian as the format
/// requires).
inline std::string silent_wav(uint32_t seconds, uint32_t rate = 8000) {
  uint32_t samples = seconds * rate;
  std::string wav = "RIFF";
  auto u32 = [&](uint32_t x) { wav.append(reinterpret_cast<char*>(&x), 4); };
  auto u16 = [&](uint16_t x) { wav.append(reinterpret_cast<char*>(&x), 2); };
  u32(36 + samples);
  wav += "WAVEfmt ";
  u32(16);
  u16(1);
  u16(1);
  u32(rate);
  u32(rate);
  u16(1);
  u16(8);
  wav += "data";
  u32(samples);
  wav.append(samples, char(128));
  return wav;
}

/// One second of silence as a WAV file: 8 kHz, mono, 8-bit PCM (8,044
/// bytes).
inline std::string silent_wav_second() {
  return silent_wav(1);
}

} // namespace vidnode::test
