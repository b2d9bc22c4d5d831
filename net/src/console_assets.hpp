#pragma once

/// @file
/// The console's files (net/console/), compiled into the binary by
/// net/console/embed.cmake.

#include <string_view>

namespace vidnode::net::detail {

/// The bytes of the console file `name` ("index.html", "console.js",
/// "console.css"); empty for a name that is not one of them.
std::string_view console_asset(std::string_view name);

} // namespace vidnode::net::detail
