#pragma once

/// @file
/// CAF 0.17's default error handler ends an actor that receives an error
/// message outside a request, such as a peer's answer to a message it could
/// not handle (another build, a forged message). The runtime's long-lived
/// actors log such errors and carry on instead.

#include <caf/error.hpp>
#include <caf/scheduled_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

/// Makes `self` log error messages it did not ask for, naming it `who`,
/// instead of ending.
inline void survive_stray_errors(caf::scheduled_actor* self, const char* who) {
  self->set_error_handler([who](caf::error& err) {
    spdlog::warn("{} ignored an error it did not ask for: {}", who,
                 runtime::describe(err));
  });
}

} // namespace vidnode::actors
