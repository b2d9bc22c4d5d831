#pragma once

/// @file
/// What a test reads about another process from /proc.

#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace vidnode::test {

/// Resident memory of process `pid`, in bytes (VmRSS of /proc/PID/status);
/// 0 if it cannot be read.
inline uint64_t resident_bytes(pid_t pid) {
  std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(4096, '\n');
  }
  return 0;
}

} // namespace vidnode::test
