#include "vidnode/runtime/job.hpp"

namespace vidnode::runtime {

std::string to_string(job_id id) {
  return std::to_string(id.value);
}

const char* to_string(job_state state) noexcept {
  switch (state) {
    case job_state::queued:
      return "queued";
    case job_state::running:
      return "running";
    case job_state::succeeded:
      return "succeeded";
    case job_state::failed:
      return "failed";
    case job_state::cancelled:
      return "cancelled";
    case job_state::timed_out:
      return "timed_out";
  }
  return "unknown";
}

bool operator==(const job_spec& x, const job_spec& y) noexcept {
  return x.model == y.model && x.prompt == y.prompt && x.width == y.width
         && x.height == y.height && x.frames == y.frames && x.fps == y.fps
         && x.steps == y.steps && x.seed == y.seed && x.priority == y.priority
         && x.queue_timeout == y.queue_timeout && x.run_timeout == y.run_timeout
         && x.idempotency_key == y.idempotency_key && x.options == y.options
         && x.audio_url == y.audio_url && x.output_url == y.output_url
         && x.webhook_url == y.webhook_url && x.ranks == y.ranks
         && x.endpoint == y.endpoint;
}

} // namespace vidnode::runtime
