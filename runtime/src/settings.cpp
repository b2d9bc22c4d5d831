#include "vidnode/runtime/settings.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::runtime {

namespace {

caf::error bad(const char* setting, const std::string& reason) {
  return make_error(errc::invalid_request,
                    std::string{setting} + ": " + reason);
}

bool positive(caf::timespan x) {
  return x.count() > 0;
}

} // namespace

std::optional<std::string> invalid_node_name(const std::string& name) {
  if (name.empty() || name.size() > 64)
    return "must have 1 to 64 characters, got " + std::to_string(name.size());
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_'
        && c != '.')
      return "'" + name + "' may only contain letters, digits and - _ .";
  return std::nullopt;
}

namespace {

/// Whether `host` is an IP address or a name that resolves here.
bool resolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0)
    return false;
  ::freeaddrinfo(found);
  return true;
}

} // namespace

caf::error validate(const node_settings& s) {
  if (s.listen_host.empty())
    return bad("listen", "host must not be empty");
  if (s.devices.empty())
    return bad("devices", "must not be empty");
  using lim = settings_limits;
  if (s.max_concurrency < 1 || s.max_concurrency > lim::max_concurrency)
    return bad("max-concurrency",
               "must be between 1 and " + std::to_string(lim::max_concurrency)
                 + ", got " + std::to_string(s.max_concurrency));
  if (s.queue_size < 1 || s.queue_size > lim::max_queue_size)
    return bad("queue-size", "must be between 1 and "
                               + std::to_string(lim::max_queue_size) + ", got "
                               + std::to_string(s.queue_size));
  if (!positive(s.queue_timeout))
    return bad("queue-timeout",
               "must be positive, got " + format_duration(s.queue_timeout));
  if (!positive(s.run_timeout))
    return bad("run-timeout",
               "must be positive, got " + format_duration(s.run_timeout));
  if (s.max_attempts < 1 || s.max_attempts > lim::max_attempts)
    return bad("max-attempts", "must be between 1 and "
                                 + std::to_string(lim::max_attempts) + ", got "
                                 + std::to_string(s.max_attempts));
  if (s.restarts.max_restarts < 0)
    return bad("max-restarts", "must not be negative");
  if (!positive(s.restarts.window))
    return bad("restart-window", "must be positive");
  if (s.restarts.backoff.count() < 0)
    return bad("restart-backoff", "must not be negative");
  if (s.restarts.backoff_max < s.restarts.backoff)
    return bad("restart-backoff-max", "must not be below restart-backoff");
  if (!positive(s.restarts.quarantine_cooldown))
    return bad("quarantine-cooldown", "must be positive");
  if (s.webhook_attempts < 1 || s.webhook_attempts > lim::max_webhook_attempts)
    return bad("webhook-attempts", "must be between 1 and "
                                     + std::to_string(lim::max_webhook_attempts)
                                     + ", got "
                                     + std::to_string(s.webhook_attempts));
  if (!positive(s.webhook_retry_delay))
    return bad("webhook-retry-delay",
               "must be positive, got "
                 + format_duration(s.webhook_retry_delay));
  if (s.shutdown_grace.count() < 0 || s.shutdown_grace > std::chrono::hours{1})
    return bad("shutdown-grace", "must be from 0s to 1h, got "
                                   + format_duration(s.shutdown_grace));
  if (!positive(s.aging_interval))
    return bad("aging-interval", "must be positive");
  if (!positive(s.result_ttl))
    return bad("result-ttl", "must be positive");
  if (s.max_results < 1)
    return bad("max-results", "must be at least 1");
  if (!positive(s.lost_node_ttl))
    return bad("lost-node-ttl", "must be positive");
  if (s.lease_grace.count() < 0 || s.lease_grace > std::chrono::hours{1})
    return bad("lease-grace",
               "must be from 0s to 1h, got " + format_duration(s.lease_grace));
  if (!s.node_name.empty())
    if (auto why = invalid_node_name(s.node_name))
      return bad("node-name", *why);
  if (s.output_dir.empty())
    return bad("output-dir", "must not be empty");
  if (s.journal_sync != "full" && s.journal_sync != "normal")
    return bad("journal-sync",
               "must be 'full' or 'normal', got '" + s.journal_sync + "'");
  for (const auto& [name, path] : s.torchscript_models) {
    if (name.empty() || name.size() > 64)
      return bad("torchscript", "model names must have 1 to 64 characters");
    for (char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_'
          && c != '.')
        return bad("torchscript", "model name '" + name
                                    + "' may only contain letters, digits "
                                      "and - _ .");
    if (path.empty())
      return bad("torchscript", "model " + name + " has no file");
  }
  if (!(s.memory_headroom >= 0 && s.memory_headroom <= 10))
    return bad("memory-headroom", "must be between 0 and 10");
  if (s.gang_timeout < std::chrono::seconds{1}
      || s.gang_timeout > std::chrono::hours{1})
    return bad("gang-timeout",
               "must be from 1s to 1h, got " + format_duration(s.gang_timeout));
  if (s.collective_host.empty())
    return bad("collective-host", "must not be empty");
  if (std::count(s.collective_host.begin(), s.collective_host.end(), ':') == 1)
    return bad("collective-host",
               "takes an address without a port (the port is picked for "
               "each gang), got '"
                 + s.collective_host + "'");
  if (!resolves(s.collective_host))
    return bad("collective-host", "'" + s.collective_host
                                    + "' is not an address or a name this "
                                      "machine resolves");
  if (s.max_bypass < 0 || s.max_bypass > lim::max_bypass)
    return bad("max-bypass",
               "must be from 0 to " + std::to_string(lim::max_bypass));
  if (s.cuda_reserve_bytes > (1ull << 40))
    return bad("cuda-reserve", "must be at most 1TiB");
  if (!(s.oom_estimate_growth > 1 && s.oom_estimate_growth <= 100))
    return bad("oom-estimate-growth", "must be above 1 and at most 100");
  if (s.max_message_size < lim::min_message_size
      || s.max_message_size >= lim::message_size_bound)
    return bad("max-message-size",
               "must be from " + format_bytes(lim::min_message_size)
                 + " to 4095MiB, got " + format_bytes(s.max_message_size));
  return caf::none;
}

} // namespace vidnode::runtime
