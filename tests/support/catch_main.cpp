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

/// Every device ledger made in a test (and in the processes tests start)
/// compares its indexed answers with scans of every device and aborts on a
/// difference (see device_ledger.hpp).
const bool placement_checked = [] {
  setenv("VIDNODE_CHECK_PLACEMENT", "1", 0);
  return true;
}();

/// The vidnode processes tests start keep no journal unless a test gives
/// them --state-dir: a shared default directory would let parallel tests
/// meet each other's jobs.
const bool no_shared_journal = [] {
  setenv("VIDNODE_STATE_DIR", "none", 0);
  return true;
}();

} // namespace
