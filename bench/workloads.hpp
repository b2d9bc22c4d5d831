#pragma once

/// @file
/// The requests the latency and throughput benchmarks send: a zero-work sim
/// job for the node, an integer for the bare echo baseline, and the checks
/// their replies must pass.

#include <cstdint>
#include <string>

#include <caf/behavior.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::bench {

/// The bare baseline: a pooled actor that replies with what it receives.
inline caf::behavior echo() {
  return {[](int32_t x) { return x; }};
}

/// Accepts every echo reply.
inline std::string accept_echo(int32_t) {
  return {};
}

/// Accepts a job result only if the job succeeded; else says how it ended.
inline std::string accept_succeeded(const runtime::job_result& result) {
  if (result.state == runtime::job_state::succeeded)
    return {};
  return "job " + runtime::to_string(result.id) + " ended "
         + runtime::to_string(result.state);
}

/// A sim job that does no work: no denoising step and no model load, so a
/// round trip measures only the runtime (admission, placement, the device
/// worker, the result).
inline runtime::job_spec zero_work_job() {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.prompt = "a red fox in the snow";
  spec.steps = 0;
  spec.options = {{"load_ms", "0"}};
  return spec;
}

} // namespace vidnode::bench
