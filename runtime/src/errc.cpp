#include "vidnode/runtime/errc.hpp"

#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include <array>

namespace vidnode::runtime {

namespace {

constexpr std::array<const char*, 19> names = {
  "none",
  "invalid_request",
  "unknown_model",
  "queue_full",
  "too_large",
  "queue_timeout",
  "run_timeout",
  "cancelled",
  "out_of_memory",
  "worker_lost",
  "node_lost",
  "unauthorized",
  "internal",
  "unknown_job",
  "shutting_down",
  "transfer_failed",
  "no_output",
  "output_unavailable",
  "journal_unavailable",
};

} // namespace

const char* to_string(errc code) noexcept {
  auto index = static_cast<size_t>(code);
  return index < names.size() ? names[index] : "unknown_error";
}

bool from_string(const std::string& name, errc& code) noexcept {
  for (size_t i = 1; i < names.size(); ++i)
    if (name == names[i]) {
      code = static_cast<errc>(i);
      return true;
    }
  return false;
}

caf::atom_value error_category() noexcept {
  return caf::atom("vidnode");
}

caf::error make_error(errc code) {
  return caf::error{static_cast<uint8_t>(code), error_category()};
}

caf::error make_error(errc code, std::string detail) {
  return caf::error{static_cast<uint8_t>(code), error_category(),
                    caf::make_message(std::move(detail))};
}

bool is(const caf::error& err, errc code) noexcept {
  return err && err.category() == error_category()
         && err.code() == static_cast<uint8_t>(code);
}

std::string detail_of(const caf::error& err) {
  if (!err || err.category() != error_category())
    return {};
  const auto& ctx = err.context();
  if (ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return {};
}

std::string code_name(const caf::error& err) {
  if (!err)
    return "none";
  if (err.category() == error_category())
    return to_string(static_cast<errc>(err.code()));
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()));
  if (err.category() == caf::atom("exit"))
    return caf::to_string(static_cast<caf::exit_reason>(err.code()));
  return "error";
}

std::string describe(const caf::error& err) {
  if (!err)
    return "none";
  auto name = code_name(err);
  if (err.category() == error_category()) {
    auto detail = detail_of(err);
    return detail.empty() ? name : name + ": " + detail;
  }
  std::string result = caf::to_string(err.category());
  result += ": ";
  result += name;
  if (!err.context().empty()) {
    result += " ";
    result += caf::to_string(err.context());
  }
  return result;
}

} // namespace vidnode::runtime
