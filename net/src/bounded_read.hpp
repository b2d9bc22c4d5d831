#pragma once

#include <cstddef>

#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/receive_policy.hpp>
#include <caf/io/scribe.hpp>

namespace vidnode::net::detail {

/// Whether the read BASP announces with `config` stays within `limit`
/// bytes. If not, logs a warning naming the peer and closes `scribe`'s
/// connection from `mx`'s loop (not from inside the broker's handler that
/// announced the read); the caller must then ask its stream for one byte
/// only (which BASP rejects as malformed) instead of sizing a buffer for
/// the announced length. Runs in the multiplexer's thread, as every
/// configure_read does.
bool read_within_limit(caf::io::scribe& scribe,
                       caf::io::network::default_multiplexer& mx,
                       caf::io::receive_policy::config config, size_t limit);

} // namespace vidnode::net::detail
