#pragma once

#include <caf/fwd.hpp>

namespace vidnode::runtime {

/// Adds vidnode's client protocol types (protocol.hpp) and its error
/// category to `cfg`. Call it before the actor_system is created, on every
/// process that speaks to vidnode; type names are namespaced
/// ("vidnode::job_spec") so they cannot collide with a host application's.
/// A process that runs a node needs actors::add_types, which calls this.
void add_types(caf::actor_system_config& cfg);

} // namespace vidnode::runtime
