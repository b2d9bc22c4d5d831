#pragma once

/// @file
/// `--preload MODEL[@DEVICES]`: which models a node loads on which of its
/// devices before it reports ready, checked against its devices and
/// catalog before anything starts.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/runtime/device.hpp"

namespace vidnode::actors {

/// The models to preload on each device of a node: `models[i]` for the
/// device at position i of the node's device list, each model once, in the
/// order the preloads were given.
struct preload_plan {
  std::vector<std::vector<std::string>> models;

  /// Preloads in all (pairs of a device and a model).
  size_t size() const noexcept;
};

/// Turns `--preload` values into a plan for `devices`.
///
/// Each value is `MODEL` (every device of the node that can run MODEL) or
/// `MODEL@DEVICES`, where DEVICES follows `--devices`: `KIND` (every device
/// of that kind: cuda, cpu or sim) or `KIND:ORDINALS`, ORDINALS being
/// `all` or a list such as `0,1` (the N of "cuda:N"). Fails, naming the
/// value, with errc::unknown_model for a model `catalog` does not serve,
/// and errc::invalid_request for a malformed value, a device this node
/// does not have, or a model none of the selected devices can run. Every
/// context starts with "preload: ".
caf::expected<preload_plan>
plan_preloads(const std::vector<std::string>& values,
              const std::vector<runtime::device_info>& devices,
              const gpu::model_catalog& catalog);

} // namespace vidnode::actors
