#pragma once

/// @file
/// A temporary config file for tests of the programs' settings.

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

namespace vidnode::test {

/// A temporary file holding `text`, removed when it goes.
class config_file {
public:
  explicit config_file(const std::string& text) {
    auto fd = mkstemp(path_);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream{path_} << text;
  }

  ~config_file() {
    std::remove(path_);
  }

  config_file(const config_file&) = delete;
  config_file& operator=(const config_file&) = delete;

  std::string path() const {
    return path_;
  }

private:
  char path_[40] = "/tmp/vidnode-config-test-XXXXXX";
};

} // namespace vidnode::test
