#pragma once

/// @file
/// What a test reads about another process from /proc.

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
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

/// CPU time process `pid` has used so far, user and system together, in
/// seconds (utime and stime of /proc/PID/stat); 0 if it cannot be read.
inline double cpu_seconds(pid_t pid) {
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  std::getline(stat, line);
  // The command name, field 2, is in parentheses and may hold spaces.
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream fields{line.substr(close + 2)};
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // Fields 3 to 13, then utime (14) and stime (15).
  for (int i = 3; i <= 13; ++i)
    fields >> field;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime)
         / static_cast<double>(sysconf(_SC_CLK_TCK));
}

} // namespace vidnode::test
