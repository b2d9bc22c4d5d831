#include "job_log.hpp"

#include <chrono>
#include <string>
#include <vector>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

void log_job(runtime::log_level level, const runtime::job_result& r,
             std::string_view what, const caf::error& reason) {
  using seconds = std::chrono::duration<double>;
  auto message = "job " + std::to_string(r.id.value) + " " + std::string{what};
  auto code = reason ? runtime::code_name(reason) : std::string{};
  auto why = reason ? runtime::describe(reason) : std::string{};
  std::vector<runtime::log_field> fields{
    {"job", static_cast<int64_t>(r.id.value)},
    {"state", std::string_view{runtime::to_string(r.state)}},
    {"model", std::string_view{r.model}},
    {"priority", int64_t{r.priority}},
    {"node", r.node.empty() ? std::string_view{"-"} : r.node},
    {"device", r.device.empty() ? std::string_view{"-"} : r.device},
    {"attempt", int64_t{r.attempts}}};
  if (reason) {
    fields.push_back({"error", std::string_view{code}});
    fields.push_back({"reason", std::string_view{why}});
  }
  if (runtime::is_terminal(r.state)) {
    fields.push_back(
      {"queue_seconds",
       std::chrono::duration_cast<seconds>(r.queue_time).count()});
    fields.push_back(
      {"run_seconds", std::chrono::duration_cast<seconds>(r.run_time).count()});
  }
  runtime::log_line(level, message, fields);
}

void log_attempt(runtime::log_level level, const std::string& message,
                 runtime::job_id id, const std::string& device,
                 uint64_t lease) {
  runtime::log_line(level, message,
                    {{"job", static_cast<int64_t>(id.value)},
                     {"device", std::string_view{device}},
                     {"lease", static_cast<int64_t>(lease)}});
}

} // namespace vidnode::actors
