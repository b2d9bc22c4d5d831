#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/error.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::runtime {

/// The documented bounds of a job_spec, checked at the door before anything
/// else happens. Pipelines check their own options on top (model_catalog).
struct job_limits {
  static constexpr int32_t min_dimension = 16;
  static constexpr int32_t max_dimension = 4096;
  /// Width and height must be multiples of this (latent downsampling).
  static constexpr int32_t dimension_multiple = 8;
  static constexpr int32_t max_frames = 1024;
  static constexpr int32_t max_fps = 120;
  static constexpr int32_t max_steps = 1000;
  /// Devices one job may ask for (job_spec::ranks).
  static constexpr int32_t max_ranks = 64;
  static constexpr int32_t min_priority = 0;
  static constexpr int32_t max_priority = 9;
  static constexpr size_t max_model_bytes = 128;
  static constexpr size_t max_prompt_bytes = 16384;
  static constexpr size_t max_idempotency_key_bytes = 128;
  static constexpr size_t max_options = 64;
  static constexpr size_t max_option_key_bytes = 64;
  static constexpr size_t max_option_value_bytes = 4096;
  static constexpr size_t max_url_bytes = 2048;
  static constexpr size_t max_endpoint_bytes = 64;
};

/// Why `model` is not a valid model name ("must not be empty", "may only
/// contain letters, digits and - _ . : /"), or nothing.
std::optional<std::string> invalid_model_name(const std::string& model);

/// Why `endpoint` is not a valid HTTP gateway endpoint (job_spec::endpoint:
/// empty, or 1 to job_limits::max_endpoint_bytes of A-Z a-z 0-9 _ -), or
/// nothing.
std::optional<std::string> invalid_endpoint_name(const std::string& endpoint);

/// Checks every field of `spec` against job_limits. Returns none, or
/// errc::invalid_request whose context names the first bad field and why
/// ("width: must be a multiple of 8 between 16 and 4096, got 17"). Timeouts
/// are only checked for sign here; the node checks them against its limits.
caf::error validate(const job_spec& spec);

} // namespace vidnode::runtime
