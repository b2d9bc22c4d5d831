#include <string>

#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>

#include <catch2/catch.hpp>

#include "vidnode/runtime/errc.hpp"

using vidnode::runtime::code_name;
using vidnode::runtime::describe;
using vidnode::runtime::detail_of;
using vidnode::runtime::errc;
using vidnode::runtime::error_category;
using vidnode::runtime::is;
using vidnode::runtime::make_error;

namespace {

constexpr auto first_code = static_cast<uint8_t>(errc::invalid_request);
constexpr auto last_code = static_cast<uint8_t>(errc::journal_unavailable);

} // namespace

TEST_CASE("every code's name parses back to the same code", "[errc]") {
  for (auto i = first_code; i <= last_code; ++i) {
    auto code = static_cast<errc>(i);
    std::string name = to_string(code);
    INFO("code " << int{i} << " named " << name);
    CHECK(name != "unknown_error");
    errc parsed = errc::internal;
    REQUIRE(from_string(name, parsed));
    CHECK(parsed == code);
  }
  CHECK(std::string{to_string(errc::queue_full)} == "queue_full");
  CHECK(std::string{to_string(errc::shutting_down)} == "shutting_down");
}

TEST_CASE("a name of no code is refused and leaves the code alone", "[errc]") {
  for (auto name : {"", "none", "QUEUE_FULL", "queue-full", "unknown_error"}) {
    INFO("'" << name << "'");
    errc code = errc::internal;
    CHECK_FALSE(from_string(name, code));
    CHECK(code == errc::internal);
  }
  CHECK(std::string{to_string(static_cast<errc>(last_code + 1))}
        == "unknown_error");
}

TEST_CASE("a vidnode error carries its category, code and detail", "[errc]") {
  auto err = make_error(errc::queue_full, "1000 jobs are queued");
  CHECK(err.category() == caf::atom("vidnode"));
  CHECK(err.category() == error_category());
  CHECK(err.code() == static_cast<uint8_t>(errc::queue_full));
  CHECK(is(err, errc::queue_full));
  CHECK_FALSE(is(err, errc::too_large));
  CHECK(detail_of(err) == "1000 jobs are queued");
  CHECK(detail_of(make_error(errc::internal)).empty());
}

TEST_CASE("a CAF error with the same numeric code is not a vidnode error",
          "[errc]") {
  auto err = caf::make_error(caf::sec::unexpected_message, "some context");
  REQUIRE(err.code() == static_cast<uint8_t>(errc::invalid_request));
  CHECK_FALSE(is(err, errc::invalid_request));
  CHECK(detail_of(err).empty());
  CHECK_FALSE(is(caf::error{}, errc::invalid_request));
}

TEST_CASE("describe renders vidnode errors as name and detail", "[errc]") {
  CHECK(describe(make_error(errc::queue_full,
                            "1000 jobs are queued (queue-size 1000)"))
        == "queue_full: 1000 jobs are queued (queue-size 1000)");
  CHECK(describe(make_error(errc::cancelled)) == "cancelled");
  CHECK(describe(caf::error{}) == "none");
}

TEST_CASE("describe renders CAF errors as category and sec name", "[errc]") {
  CHECK(describe(caf::make_error(caf::sec::cannot_connect_to_node))
        == "system: cannot_connect_to_node");
  auto with_context = describe(
    caf::make_error(caf::sec::request_timeout, std::string{"after 5s"}));
  CHECK(with_context.rfind("system: request_timeout ", 0) == 0);
  CHECK(with_context.find("after 5s") != std::string::npos);
}

TEST_CASE("code_name gives a machine-readable name for any error", "[errc]") {
  CHECK(code_name(make_error(errc::worker_lost, "x")) == "worker_lost");
  CHECK(code_name(caf::make_error(caf::sec::request_timeout))
        == "request_timeout");
  CHECK(code_name(caf::make_error(caf::exit_reason::user_shutdown))
        == "user_shutdown");
  CHECK(code_name(caf::error{}) == "none");
  CHECK(code_name(caf::error{3, caf::atom("other")}) == "error");
}
