#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <cstdlib>

#include <spdlog/spdlog.h>

namespace {

/// vidnode's logs stay quiet in tests unless VIDNODE_TEST_LOG names a level
/// (e.g. VIDNODE_TEST_LOG=info).
const bool quiet_logs = [] {
  auto level = std::getenv("VIDNODE_TEST_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level)
                          : spdlog::level::off);
  return true;
}();

} // namespace
