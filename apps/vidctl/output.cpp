#include "vidctl/output.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::vidctl {

bool json_output = false;

namespace {

/// The exit status `err` stands for.
int status_of(const caf::error& err) {
  if (runtime::is(err, runtime::errc::node_lost)
      || err.category() != runtime::error_category())
    return exit_unreachable;
  return exit_refused;
}

} // namespace

int fail(const caf::error& err) {
  if (json_output)
    std::cerr << net::to_json_text(nlohmann::json{{"error", net::to_json(err)}})
              << "\n";
  else
    std::cerr << "vidctl: " << runtime::describe(err) << "\n";
  return status_of(err);
}

int fail_after_accept(const caf::error& err, runtime::job_id id,
                      const std::string& idempotency_key) {
  if (json_output) {
    std::cerr << net::to_json_text(
      nlohmann::json{{"error", net::to_json(err)},
                     {"id", id.value},
                     {"idempotency_key", idempotency_key}})
              << "\n";
  } else {
    std::cerr << "vidctl: " << runtime::describe(err) << "\n"
              << "vidctl: job " << id.value << " was accepted; `vidctl status "
              << id.value << "` shows it\n";
  }
  return status_of(err);
}

int fail_local_file(const std::string& detail) {
  if (json_output)
    std::cerr << net::to_json_text(
      nlohmann::json{{"error", {{"code", "local_file"}, {"message", detail}}}})
              << "\n";
  else
    std::cerr << "vidctl: " << detail << "\n";
  return exit_local_file;
}

std::string or_dash(const std::string& x) {
  return x.empty() ? "-" : x;
}

std::string compact_models(const std::vector<std::string>& models) {
  constexpr size_t width = 40;
  std::string result;
  for (size_t i = 0; i < models.size(); ++i) {
    if (!result.empty() && result.size() + 1 + models[i].size() > width)
      return result + ",+" + std::to_string(models.size() - i);
    result += (result.empty() ? "" : ",") + models[i];
  }
  return or_dash(result);
}

void print_result(const runtime::job_result& r) {
  if (json_output) {
    std::cout << net::to_json_text(net::to_json(r)) << "\n";
    return;
  }
  std::cout << "job " << r.id.value << ": " << runtime::to_string(r.state)
            << "\n";
  std::cout << "  model     " << r.model << " (priority " << r.priority
            << ")\n";
  if (!r.device.empty())
    std::cout << "  device    " << r.device << " on " << r.node << ", attempt "
              << r.attempts << "\n";
  std::cout << "  progress  " << r.step << "/" << r.steps << " steps\n";
  if (r.reserved_bytes > 0)
    std::cout << "  memory    " << runtime::format_bytes(r.reserved_bytes)
              << " reserved\n";
  if (!r.output.empty()) {
    std::cout << "  output    " << r.output;
    if (!r.output_node.empty())
      std::cout << " on node " << r.output_node << " (`vidctl fetch "
                << r.id.value << " FILE` downloads it)";
    std::cout << "\n";
  }
  std::cout << "  queued    " << runtime::format_duration(r.queue_time)
            << ", ran " << runtime::format_duration(r.run_time) << "\n";
  std::cout << "  accepted  " << runtime::format_timestamp(r.accepted_at)
            << "\n";
  if (r.finished_at.time_since_epoch().count() != 0)
    std::cout << "  finished  " << runtime::format_timestamp(r.finished_at)
              << "\n";
  if (r.error)
    std::cout << "  error     " << runtime::describe(r.error) << "\n";
}

int finish_with(const runtime::job_result& r) {
  print_result(r);
  return r.state == runtime::job_state::succeeded ? exit_success
                                                  : exit_not_succeeded;
}

void print_event(const runtime::job_event& e) {
  if (json_output)
    std::cout << net::to_json_text(net::to_json(e)) << std::endl;
  else
    std::cout << event_line(e) << std::endl;
}

std::string event_line(const runtime::job_event& e) {
  std::ostringstream line;
  line << runtime::format_timestamp(e.at) << "  job " << e.id.value << "  "
       << runtime::to_string(e.state);
  if (!e.device.empty())
    line << " on " << e.device << " (attempt " << e.attempt << ")";
  if (e.steps > 0)
    line << "  step " << e.step << "/" << e.steps;
  if (e.error)
    line << "  " << runtime::describe(e.error);
  return line.str();
}

net::reconnect_policy reconnect_notices(const net::client::options& options) {
  net::reconnect_policy policy;
  policy.outage_limit = options.request_timeout;
  auto address = options.host + ":" + std::to_string(options.port);
  auto timeout = options.request_timeout;
  policy.on_lost = [=](const caf::error& cause,
                       std::chrono::steady_clock::time_point until) {
    // --max-wait may end the attempts before --timeout does.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
    auto by_max_wait = left < timeout - std::chrono::milliseconds{1};
    auto span = runtime::format_duration(
      by_max_wait ? std::max(caf::timespan{left}, caf::timespan{0}) : timeout);
    auto by = by_max_wait ? "--max-wait" : "--timeout";
    if (json_output) {
      std::cerr << net::to_json_text(
        nlohmann::json{{"notice", "connection_lost"},
                       {"address", address},
                       {"error", net::to_json(cause)},
                       {"reconnecting_for", span},
                       {"limited_by", by}})
                << std::endl;
      return;
    }
    // The usual cause says no more than the notice; a silent node's does.
    auto why = runtime::detail_of(cause);
    auto said = why.empty() || why.rfind("lost the connection", 0) == 0
                  ? std::string{}
                  : " (" + why + ")";
    std::cerr << "vidctl: lost the connection to " << address << said
              << "; reconnecting for up to " << span << " (" << by << ")"
              << std::endl;
  };
  policy.on_reconnected = [=] {
    if (json_output)
      std::cerr << net::to_json_text(
        nlohmann::json{{"notice", "reconnected"}, {"address", address}})
                << std::endl;
    else
      std::cerr << "vidctl: reconnected to " << address << std::endl;
  };
  return policy;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i)
        width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

} // namespace vidnode::vidctl
