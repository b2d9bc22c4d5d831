/// vidctl: submits jobs to a vidnode and shows their state.
///
/// Exit status: 0 success; 1 the job ended but did not succeed (wait,
/// submit --wait); 2 bad usage; 3 the node cannot be reached or was lost;
/// 4 the node refused the request (the typed error is on stderr).

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "common/cli_options.hpp"
#include "common/transport_options.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/json.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "vidnode/runtime/validation.hpp"

namespace {

using namespace vidnode;
using runtime::errc;

constexpr int exit_not_succeeded = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr int exit_refused = 4;

bool json_output = false;

/// Prints `err` on stderr and returns the exit status it stands for.
int fail(const caf::error& err) {
  if (json_output)
    std::cerr << nlohmann::json{{"error", net::to_json(err)}}.dump() << "\n";
  else
    std::cerr << "vidctl: " << runtime::describe(err) << "\n";
  if (runtime::is(err, errc::node_lost)
      || err.category() != runtime::error_category())
    return exit_unreachable;
  return exit_refused;
}

std::string or_dash(const std::string& x) {
  return x.empty() ? "-" : x;
}

void print_result(const runtime::job_result& r) {
  if (json_output) {
    std::cout << net::to_json(r).dump() << "\n";
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

/// Prints rows as left-aligned columns.
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

/// Prints `items` as one JSON array.
template <class T>
void print_json_array(const std::vector<T>& items) {
  auto array = nlohmann::json::array();
  for (const auto& x : items)
    array.push_back(net::to_json(x));
  std::cout << array.dump() << "\n";
}

int finish_with(const runtime::job_result& r) {
  print_result(r);
  return r.state == runtime::job_state::succeeded ? 0 : exit_not_succeeded;
}

/// The ".part" file of a download in progress, removed if a signal ends
/// vidctl (async-signal-safe: a fixed buffer and unlink).
char partial_file[4096] = {};

extern "C" void remove_partial_file(int sig) {
  if (partial_file[0] != '\0')
    ::unlink(partial_file);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

/// Downloads job `id`'s video to `file`; prints what it wrote (stderr, or
/// nothing with --json: the caller adds it to its document). A signal
/// during the download removes the partial file.
caf::expected<uint64_t> download(net::client& node, runtime::job_id id,
                                 const std::string& file) {
  auto part = file + ".part";
  if (part.size() < sizeof(partial_file))
    std::memcpy(partial_file, part.c_str(), part.size() + 1);
  constexpr int signals[] = {SIGINT, SIGTERM, SIGHUP};
  void (*before[3])(int) = {};
  for (size_t i = 0; i < 3; ++i)
    before[i] = std::signal(signals[i], remove_partial_file);
  auto written = node.fetch_output(id, file);
  for (size_t i = 0; i < 3; ++i)
    std::signal(signals[i], before[i]);
  partial_file[0] = '\0';
  if (written && !json_output)
    std::cerr << "vidctl: wrote " << runtime::format_bytes(*written) << " ("
              << *written << " bytes) to " << file << "\n";
  return written;
}

/// Prints a job's result and, if it succeeded and `file` is not empty,
/// downloads its video there (with --json, the document gains
/// `"download": {"path", "bytes"}`). The exit status: as finish_with, or
/// the download's error's.
int finish_with_download(net::client& node, const runtime::job_result& r,
                         const std::string& file) {
  if (file.empty() || r.state != runtime::job_state::succeeded)
    return finish_with(r);
  auto written = download(node, r.id, file);
  if (!written) {
    print_result(r);
    return fail(written.error());
  }
  if (json_output) {
    auto doc = net::to_json(r);
    doc["download"] = {{"path", file}, {"bytes", *written}};
    std::cout << doc.dump() << "\n";
    return 0;
  }
  return finish_with(r);
}

caf::expected<runtime::job_id> parse_id(const std::string& text) {
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > UINT64_MAX / 10)
      return runtime::make_error(errc::invalid_request,
                                 "'" + text + "' is not a job id");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (text.empty() || value == 0)
    return runtime::make_error(errc::invalid_request,
                               "'" + text + "' is not a job id");
  return runtime::job_id{value};
}

} // namespace

int main(int argc, char** argv) {
  using lim = runtime::job_limits;
  std::string endpoint = "127.0.0.1:7447";
  if (auto env = std::getenv("VIDNODE_ADDRESS"))
    endpoint = env;
  net::client::options options;

  CLI::App app{"vidctl: submits jobs to a vidnode and shows their state.",
               "vidctl"};
  app.set_version_flag("--version", "vidctl 0.1.0 (protocol "
                                      + std::string{runtime::protocol_version}
                                      + ")");
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--connect", endpoint,
                 "The node: HOST:PORT (default $VIDNODE_ADDRESS or "
                 "127.0.0.1:7447)");
  app.add_flag("--json", json_output, "Print JSON, one document per line");
  apps::add_duration(app, "--timeout", options.request_timeout,
                     "Longest the command waits on the node, connecting "
                     "included (for wait and watch: to connect, and for each "
                     "answer of a node that has gone silent; --max-wait "
                     "bounds the wait itself)");
  apps::transport_flags transport;
  apps::add_transport_options(app, transport);

  // -- submit ---------------------------------------------------------------
  runtime::job_spec spec;
  std::vector<std::string> spec_options;
  bool submit_wait = false;
  auto submit = app.add_subcommand("submit", "Submit a job; prints its id");
  submit->add_option("--model", spec.model, "Model to run")
    ->capture_default_str();
  submit->add_option("--prompt", spec.prompt, "Text prompt");
  auto dimensions = std::to_string(lim::min_dimension) + " to "
                    + std::to_string(lim::max_dimension) + ", a multiple of "
                    + std::to_string(lim::dimension_multiple);
  apps::add_number(*submit, "--width", spec.width, lim::min_dimension,
                   lim::max_dimension,
                   "Frame width in pixels (" + dimensions + ")");
  apps::add_number(*submit, "--height", spec.height, lim::min_dimension,
                   lim::max_dimension,
                   "Frame height in pixels (" + dimensions + ")");
  apps::add_number(*submit, "--frames", spec.frames, 1, lim::max_frames,
                   "Number of frames (1 to " + std::to_string(lim::max_frames)
                     + ")");
  apps::add_number(*submit, "--fps", spec.fps, 1, lim::max_fps,
                   "Frames per second (1 to " + std::to_string(lim::max_fps)
                     + ")");
  apps::add_number(*submit, "--steps", spec.steps, 0, lim::max_steps,
                   "Denoising steps (0 to " + std::to_string(lim::max_steps)
                     + ")");
  apps::add_number(*submit, "--seed", spec.seed, 0,
                   std::numeric_limits<uint64_t>::max(),
                   "Seed of the initial noise (any 64-bit unsigned number)");
  apps::add_number(*submit, "--priority", spec.priority, lim::min_priority,
                   lim::max_priority,
                   std::to_string(lim::min_priority) + " (lowest) to "
                     + std::to_string(lim::max_priority) + " (highest)");
  apps::add_duration(*submit, "--queue-timeout", spec.queue_timeout,
                     "Longest wait in the queue (default: the node's)", false);
  apps::add_duration(*submit, "--run-timeout", spec.run_timeout,
                     "Longest run per attempt (default: the node's)", false);
  submit->add_option("--idempotency-key", spec.idempotency_key,
                     "Submitting the same key again returns the first job "
                     "(default: a random key of vidctl's, so that its own "
                     "retries after a lost connection make one job)");
  submit->add_option("--option", spec_options,
                     "Pipeline option KEY=VALUE (repeatable), e.g. "
                     "step_ms=100");
  submit->add_option("--audio-url", spec.audio_url,
                     "Audio track to mux in (http, https or file URL)");
  submit->add_option("--output-url", spec.output_url,
                     "PUT the video here (e.g. a presigned URL); the result's "
                     "output is then this URL");
  submit->add_option("--webhook-url", spec.webhook_url,
                     "POST the job's result as JSON here when it ends");
  submit->add_flag("--wait", submit_wait,
                   "Wait for the job to end and print its result");
  std::string download_file;
  submit
    ->add_option("--download", download_file,
                 "With --wait: once the job succeeded, download its video "
                 "to FILE (written as FILE.part, renamed when complete)")
    ->needs(submit->get_option("--wait"));

  // -- job commands ---------------------------------------------------------
  std::string id_text;
  auto status = app.add_subcommand("status", "Show where a job stands");
  status->add_option("id", id_text, "Job id")->required();
  caf::timespan max_wait{0};
  auto wait = app.add_subcommand(
    "wait", "Wait for a job to end; exit 0 only if it succeeded");
  wait->add_option("id", id_text, "Job id")->required();
  apps::add_duration(*wait, "--max-wait", max_wait,
                     "Give up waiting after this long (exit 1)", false);
  wait->add_option("--download", download_file,
                   "Once the job succeeded, download its video to FILE from "
                   "the node that wrote it, through this node (written as "
                   "FILE.part, renamed when complete)");
  auto fetch = app.add_subcommand(
    "fetch", "Download a finished job's video from the node that holds it");
  fetch->add_option("id", id_text, "Job id")->required();
  fetch
    ->add_option("file", download_file,
                 "Where to write it (as FILE.part, renamed when complete)")
    ->required();
  auto watch = app.add_subcommand(
    "watch", "Print a job's events until it ends; exit 0 only if it "
             "succeeded");
  watch->add_option("id", id_text, "Job id")->required();
  auto cancel = app.add_subcommand("cancel", "Cancel a queued or running job");
  cancel->add_option("id", id_text, "Job id")->required();

  // -- node commands --------------------------------------------------------
  runtime::list_query query;
  bool active_only = false;
  auto list = app.add_subcommand(
    "list", "List queued and running jobs, then finished ones");
  apps::add_number(*list, "--limit", query.limit, 0,
                   std::numeric_limits<uint32_t>::max(),
                   "Most jobs shown (0: all)");
  list->add_flag("--active", active_only, "Only queued and running jobs");
  auto nodes = app.add_subcommand(
    "nodes", "Show each device: state, slots, models loaded, restarts");

  // An empty prompt is the default one; an empty id has its own message.
  apps::refuse_empty_values(app, {"--prompt", "id"});
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return apps::usage_exit(app, e);
  }

  if (options.request_timeout.count() <= 0) {
    std::cerr << "vidctl: --timeout: must be positive, got "
              << runtime::format_duration(options.request_timeout) << "\n";
    return exit_usage;
  }
  if (auto code = apps::use_transport_flags(transport, options, "vidctl"))
    return code;
  if (!net::parse_endpoint(endpoint, options.host, options.port)) {
    std::cerr << "vidctl: --connect: '" << endpoint
              << "' is not HOST:PORT (e.g. 127.0.0.1:7447)\n";
    return exit_usage;
  }
  for (const auto& kv : spec_options) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "vidctl: --option: '" << kv << "' is not KEY=VALUE\n";
      return exit_usage;
    }
    if (!spec.options.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second) {
      std::cerr << "vidctl: --option: " << kv.substr(0, eq)
                << " is given twice\n";
      return exit_usage;
    }
  }
  caf::expected<runtime::job_id> id = runtime::job_id{};
  if (*status || *wait || *watch || *cancel || *fetch) {
    id = parse_id(id_text);
    if (!id) {
      std::cerr << "vidctl: " << runtime::detail_of(id.error()) << "\n";
      return exit_usage;
    }
  }

  if (*submit) {
    // Retried after a lost connection under one idempotency key (ours unless
    // one was given), so a retry never makes a second job.
    // Each try waits a third of --timeout (at least 1 s) for the reply.
    auto deadline = std::chrono::steady_clock::now() + options.request_timeout;
    auto attempt = options;
    attempt.connect_timeout = options.request_timeout;
    attempt.request_timeout = std::max<caf::timespan>(
      options.request_timeout / 3, std::chrono::seconds{1});
    auto submitted = net::submit_with_retries(
      attempt, spec, deadline, [](const caf::error& err) {
        std::cerr << "vidctl: " << runtime::describe(err)
                  << "; submitting again under the "
                     "same idempotency key\n";
      });
    if (!submitted)
      return fail(submitted.error());
    if (!submit_wait) {
      if (json_output)
        std::cout << nlohmann::json{{"id", submitted->id.value},
                                    {"idempotency_key", spec.idempotency_key}}
                       .dump()
                  << "\n";
      else
        std::cout << submitted->id.value << "\n";
      return 0;
    }
    submitted->connection->request_timeout(options.request_timeout);
    auto result = submitted->connection->wait(submitted->id);
    if (!result)
      return fail(result.error());
    return finish_with_download(*submitted->connection, *result, download_file);
  }

  // Connecting and the reply share --timeout (waits: see --timeout's help).
  auto start = std::chrono::steady_clock::now();
  options.connect_timeout = options.request_timeout;
  auto connected = net::client::connect(options);
  if (!connected)
    return fail(connected.error());
  auto& node = **connected;
  if (!*wait && !*watch) {
    auto spent = std::chrono::duration_cast<caf::timespan>(
      std::chrono::steady_clock::now() - start);
    node.request_timeout(
      std::max(options.request_timeout - spent, caf::timespan{1}));
  }
  if (*status) {
    auto result = node.status(*id);
    if (!result)
      return fail(result.error());
    print_result(*result);
    return 0;
  }
  if (*wait) {
    auto result = node.wait(*id, max_wait);
    if (!result)
      return fail(result.error());
    return finish_with_download(node, *result, download_file);
  }
  if (*fetch) {
    auto written = download(node, *id, download_file);
    if (!written)
      return fail(written.error());
    if (json_output)
      std::cout << nlohmann::json{{"id", id->value},
                                  {"path", download_file},
                                  {"bytes", *written}}
                     .dump()
                << "\n";
    return 0;
  }
  if (*watch) {
    auto result = node.watch(*id, [](const runtime::job_event& e) {
      if (json_output) {
        std::cout << net::to_json(e).dump() << std::endl;
        return;
      }
      std::ostringstream line;
      line << runtime::format_timestamp(e.at) << "  job " << e.id.value << "  "
           << runtime::to_string(e.state);
      if (!e.device.empty())
        line << " on " << e.device << " (attempt " << e.attempt << ")";
      if (e.steps > 0)
        line << "  step " << e.step << "/" << e.steps;
      if (e.error)
        line << "  " << runtime::describe(e.error);
      std::cout << line.str() << std::endl;
    });
    if (!result)
      return fail(result.error());
    return finish_with(*result);
  }
  if (*cancel) {
    auto result = node.cancel(*id);
    if (!result)
      return fail(result.error());
    print_result(*result);
    return 0;
  }
  if (*list) {
    query.include_finished = !active_only;
    auto jobs = node.list(query);
    if (!jobs)
      return fail(jobs.error());
    if (json_output) {
      print_json_array(*jobs);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "MODEL", "PRIO", "NODE", "DEVICE", "STEP", "TRIES",
       "QUEUED", "RAN", "ERROR"}};
    for (const auto& r : *jobs)
      rows.push_back({std::to_string(r.id.value), runtime::to_string(r.state),
                      r.model, std::to_string(r.priority),
                      r.device.empty() ? "-" : r.node, or_dash(r.device),
                      std::to_string(r.step) + "/" + std::to_string(r.steps),
                      std::to_string(r.attempts),
                      runtime::format_duration(r.queue_time),
                      runtime::format_duration(r.run_time),
                      r.error ? runtime::code_name(r.error) : "-"});
    print_table(rows);
    return 0;
  }
  if (*nodes) {
    auto devices = node.nodes();
    if (!devices)
      return fail(devices.error());
    if (json_output) {
      print_json_array(*devices);
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {
      {"NODE", "DEVICE", "STATE", "SLOTS", "MEMORY", "MODELS(LOADS)", "RUNNING",
       "RESTARTS", "LAST ERROR"}};
    for (const auto& d : *devices) {
      std::string models;
      for (const auto& m : d.models) {
        if (!models.empty())
          models += ",";
        models += m.model + "(" + std::to_string(m.loads) + ")";
      }
      std::string running;
      for (auto job : d.running) {
        if (!running.empty())
          running += ",";
        running += std::to_string(job.value);
      }
      rows.push_back(
        {d.node, d.device, d.state,
         std::to_string(d.slots_in_use) + "/" + std::to_string(d.slots),
         runtime::format_bytes(d.memory_reserved) + "/"
           + runtime::format_bytes(d.memory_bytes),
         or_dash(models), or_dash(running), std::to_string(d.restarts),
         or_dash(d.last_error)});
    }
    print_table(rows);
    return 0;
  }
  return exit_usage;
}
