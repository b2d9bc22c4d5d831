#pragma once

/// @file
/// `vidctl top`: a full-screen view of a node, refreshed every interval:
/// its nodes and devices (state, slots, a bar of the memory reserved of
/// the total, the jobs running with their progress), the queue by
/// priority, and the jobs that failed or timed out most recently, with
/// their errors. Built on the client protocol's `nodes` and `list` alone.

#include <caf/timespan.hpp>

#include "vidctl/terminal.hpp"
#include "vidnode/net/client.hpp"

namespace vidnode::vidctl {

/// The shortest and longest refresh interval `top --interval` takes.
constexpr caf::timespan min_top_interval = std::chrono::milliseconds{100};
constexpr caf::timespan max_top_interval = std::chrono::hours{1};

/// Shows the view of the node at `options.host:options.port` on the full
/// screen until `q` is typed, then gives the terminal back and returns
/// exit_success. Every `interval` it asks the node for `nodes`, the active
/// jobs (`list`, without finished ones, no limit) and the latest finished
/// ones (`list`, the active ones and 100 more), each call within
/// `options.request_timeout`, from a thread of its own, so that keys and
/// resizes are handled while the node is slow. A node that cannot be
/// reached or stops answering is said so on the screen, with what it said
/// last, and asked again every interval; top never exits for it.
///
/// Not guaranteed: that `q` ends vidctl at once when a call is in flight
/// to a node that does not answer; the screen is given back at once and
/// vidctl exits within a second.
int run_top(const net::client::options& options, caf::timespan interval,
            const terminal_traits& traits);

} // namespace vidnode::vidctl
