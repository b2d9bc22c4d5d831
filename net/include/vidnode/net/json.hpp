#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "vidnode/runtime/job.hpp"

namespace vidnode::net {

/// An error as JSON: null when there is none, else
/// `{"code": "queue_full", "message": "queue_full: ..."}`.
nlohmann::json to_json(const caf::error& err);

/// A job result as JSON. Times are ISO 8601 UTC strings (null when not
/// reached); durations are seconds as numbers (`queue_time_s`,
/// `run_time_s`).
nlohmann::json to_json(const runtime::job_result& result);

/// A job event as JSON (`id`, `state`, `step`, `steps`, `attempt`, `device`,
/// `error`, `at`).
nlohmann::json to_json(const runtime::job_event& event);

/// A device's state as JSON; memory in bytes.
nlohmann::json to_json(const runtime::device_status& status);

/// `doc` as one line of JSON text. Bytes that are not UTF-8 in its strings
/// (an error's text from elsewhere may hold any) become U+FFFD instead of
/// an exception.
std::string to_json_text(const nlohmann::json& doc);

} // namespace vidnode::net
