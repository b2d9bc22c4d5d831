#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>

#include "vidnode/runtime/job.hpp"
#include "vidnode/runtime/logging.hpp"

namespace vidnode::actors {

/// Writes the line of a job's state change: "job 7 <what>" with the fields
/// job, state, model, priority, node and device (once it has run),
/// attempt, and error and reason when `reason` is set, and queue_seconds
/// and run_seconds once it has ended. One line per change, never one per
/// step.
void log_job(runtime::log_level level, const runtime::job_result& r,
             std::string_view what, const caf::error& reason = caf::error{});

/// Writes a device worker's line about attempt `lease` of job `id`
/// ("device sim:0: job 7 succeeded (lease 3)"), with the fields job,
/// device and lease.
void log_attempt(runtime::log_level level, const std::string& message,
                 runtime::job_id id, const std::string& device, uint64_t lease);

} // namespace vidnode::actors
