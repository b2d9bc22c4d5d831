#pragma once

/// @file
/// Runpod's request bodies as vidnode jobs: the one mapping table of `input`
/// fields to job_spec fields (README, "HTTP gateway"), `policy`, `webhook`
/// and `s3Config`, and the HTTP status of each of vidnode's errors.

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include "vidnode/net/http_gateway.hpp"
#include "vidnode/runtime/job.hpp"

namespace vidnode::net::detail {

/// The largest body `run` accepts (Runpod: 10 MB).
constexpr size_t max_run_body_bytes = size_t{10} << 20;
/// The largest body `runsync` accepts (Runpod: 20 MB); also the server's
/// limit for every request.
constexpr size_t max_runsync_body_bytes = size_t{20} << 20;
/// The deepest nesting of objects and arrays a body may have.
constexpr int max_body_depth = 64;

/// How long the presigned URL made for `s3Config` may be used: SigV4's
/// longest, 7 days, so a job that waits and retries still uploads.
constexpr std::chrono::seconds s3_upload_validity{7 * 24 * 3600};

/// The type of an input field of the mapping table.
enum class input_type : uint8_t { text, integer, number };

/// One row of the mapping table.
struct input_field {
  /// The name in `input` ("num_inference_steps").
  const char* name;
  input_type type;
  /// Where it goes, as the README's table says ("steps",
  /// "options.guidance_scale").
  const char* target;
};

/// The mapping table, in the README's order.
const std::vector<input_field>& input_fields();

/// The row for `name`, or null when `name` is not in the table.
const input_field* find_input_field(const std::string& name);

/// Parses a request body: JSON whose objects have no duplicate keys and
/// that nests at most max_body_depth deep. Errors: invalid_request, "body:
/// ..." saying what is wrong and where.
caf::expected<nlohmann::json> parse_body(const std::string& text);

/// The job a Runpod request body asks for at `endpoint`: its `input`
/// mapped by the table over the endpoint's defaults, `policy`
/// (executionTimeout -> run_timeout, ttl -> queue_timeout, lowPriority ->
/// priority 0), `webhook` -> webhook_url; the spec is checked with
/// runtime::validate. `output_url` is set by the caller for `s3Config`.
/// Errors: invalid_request whose context names the field as the request
/// names it ("input.num_frames: must be an integer, got \"x\"").
caf::expected<runtime::job_spec>
job_spec_from_request(const http_endpoint& endpoint,
                      const nlohmann::json& body);

/// `err` (from runtime::validate or admission's submit) with the job_spec
/// field it names replaced by the request's name for it ("frames:" becomes
/// "input.num_frames:", a model option admission does not know becomes
/// "input.NAME: not a field of the input mapping table nor an option of
/// model M"); other errors unchanged.
caf::error in_request_terms(caf::error err);

/// The HTTP status for a failed call: 400 invalid_request, too_large and
/// unknown_model (the request can never run as it is), 401 unauthorized,
/// 404 unknown_job and no_output, 429 queue_full, 502 node_lost and
/// output_unavailable, 503 shutting_down and journal_unavailable, 504 a
/// request that timed out, 500 otherwise.
int http_status_of(const caf::error& err);

/// The JSON body of an error: {"error": message, "code": vidnode's code}.
nlohmann::json error_json(const caf::error& err);

/// Parses a job id as the API shows it (its decimal number); 0 when it is
/// not one.
runtime::job_id parse_job_id(const std::string& text) noexcept;

/// Milliseconds of `d`, rounded down.
int64_t milliseconds_of(caf::timespan d) noexcept;

} // namespace vidnode::net::detail
