/// vidctl: submits jobs to a vidnode and shows their state.
///
/// Exit status: 0 success; 1 the job ended but did not succeed (wait,
/// watch, submit --wait); 2 bad usage; 3 the node cannot be reached or was
/// lost (wait and watch: and could not be reached again within --timeout);
/// 4 the node refused the request (the typed error is on stderr); 5 a
/// downloaded video could not be written here.

#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <optional>

#include <CLI/CLI.hpp>

#include "common/cli_options.hpp"
#include "common/transport_options.hpp"
#include "vidctl/downloads.hpp"
#include "vidctl/interrupts.hpp"
#include "vidctl/job_progress.hpp"
#include "vidctl/output.hpp"
#include "vidctl/terminal.hpp"
#include "vidctl/top.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/json.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"
#include "vidnode/runtime/validation.hpp"

namespace {

using namespace vidnode;
using namespace vidnode::vidctl;
using runtime::errc;

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
  // Every answer leaves at once: scripts read it as soon as it is printed,
  // and nothing printed is lost however the process ends.
  std::cout << std::unitbuf;
  handle_interrupts();
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
  app.add_flag("--json", json_output,
               "Print JSON, one document per line (never a progress bar)");
  app.footer("On a terminal, submit --wait, wait and watch draw a live "
             "progress bar; on a pipe, with --json or with TERM=dumb they "
             "print plain lines. NO_COLOR (set, not empty) turns colors "
             "off.");
  apps::add_duration(app, "--timeout", options.request_timeout,
                     "Longest the command waits on the node, connecting "
                     "included (for wait and watch: to connect, for each "
                     "answer of a node that has gone silent, and, once the "
                     "connection is lost, to connect again before giving up "
                     "with node_lost; --max-wait bounds the wait itself)");
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
  apps::add_number(*submit, "--ranks", spec.ranks, 1, lim::max_ranks,
                   "Devices the job runs on at once, as one gang (1 to "
                     + std::to_string(lim::max_ranks)
                     + "; the model must support it: tiny-t2v takes 1, 2 or "
                       "4, sim any)");
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
                   "Wait for the job to end and print its result (on a "
                   "terminal, with a live progress bar until then)");
  download_target destination{{}, "--download"};
  auto submit_download =
    submit
      ->add_option("--download", destination.path,
                   "With --wait: once the job succeeded, download its video "
                   "to FILE (checked before the job is submitted; written "
                   "to a temporary file beside it, renamed when complete)")
      ->needs(submit->get_option("--wait"));
  constexpr auto force_help = "Replace FILE if it exists (a regular file or "
                              "a symbolic link; without --force a file there "
                              "is refused before anything is sent)";
  submit->add_flag("--force", destination.replace, force_help)
    ->needs(submit_download);

  // -- job commands ---------------------------------------------------------
  std::string id_text;
  auto status = app.add_subcommand("status", "Show where a job stands");
  status->add_option("id", id_text, "Job id")->required();
  caf::timespan max_wait{0};
  auto wait = app.add_subcommand(
    "wait", "Wait for a job to end (on a terminal, with a live progress "
            "bar) and print its result; exit 0 only if it succeeded");
  wait->add_option("id", id_text, "Job id")->required();
  apps::add_duration(*wait, "--max-wait", max_wait,
                     "Give up waiting after this long (exit 1)", false);
  auto wait_download = wait->add_option(
    "--download", destination.path,
    "Once the job succeeded, download its video to FILE from the node that "
    "wrote it, through this node (checked before waiting; written to a "
    "temporary file beside it, renamed when complete)");
  wait->add_flag("--force", destination.replace, force_help)
    ->needs(wait_download);
  auto fetch = app.add_subcommand(
    "fetch", "Download a finished job's video from the node that holds it");
  fetch->add_option("id", id_text, "Job id")->required();
  fetch
    ->add_option("file", destination.path,
                 "Where to write it (through a temporary file beside it, "
                 "renamed when complete)")
    ->required();
  fetch->add_flag("--force", destination.replace, force_help);
  auto watch = app.add_subcommand(
    "watch", "Print a job's events until it ends (on a terminal: its "
             "changes of state, with a live progress bar for its steps); "
             "exit 0 only if it succeeded");
  watch->add_option("id", id_text, "Job id")->required();
  auto cancel = app.add_subcommand("cancel", "Cancel a queued or running job");
  cancel->add_option("id", id_text, "Job id")->required();
  auto retry = app.add_subcommand(
    "retry", "Queue a failed or timed-out job again under its id");
  retry->add_option("id", id_text, "Job id")->required();

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
    "nodes", "Show each device: the models its node serves, state, slots, "
             "models loaded, restarts");
  caf::timespan top_interval = std::chrono::seconds{1};
  auto top = app.add_subcommand(
    "top", "Full-screen view of the node, refreshed: devices with their "
           "memory and running jobs, the queue by priority, recent "
           "failures; q quits (needs a terminal)");
  apps::add_duration(*top, "--interval", top_interval,
                     "Time between refreshes ("
                       + runtime::format_duration(min_top_interval) + " to "
                       + runtime::format_duration(max_top_interval) + ")");

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
  auto terminal = detect_terminal();
  if (*top) {
    if (top_interval < min_top_interval || top_interval > max_top_interval) {
      std::cerr << "vidctl: --interval: must be from "
                << runtime::format_duration(min_top_interval) << " to "
                << runtime::format_duration(max_top_interval) << ", got "
                << runtime::format_duration(top_interval) << "\n";
      return exit_usage;
    }
    if (json_output) {
      std::cerr << "vidctl: top: has no --json form; `vidctl --json nodes` "
                   "and `vidctl --json list` give the same data\n";
      return exit_usage;
    }
    if (!terminal.interactive) {
      std::cerr << "vidctl: top: needs a terminal on stdout (with TERM set, "
                   "not dumb); `vidctl nodes` and `vidctl list` print the "
                   "same data as text\n";
      return exit_usage;
    }
  }
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
  if (*status || *wait || *watch || *cancel || *retry || *fetch) {
    id = parse_id(id_text);
    if (!id) {
      std::cerr << "vidctl: " << runtime::detail_of(id.error()) << "\n";
      return exit_usage;
    }
  }
  if (*fetch)
    destination.argument = "fetch FILE";
  if (auto code = check_download_target(destination))
    return code;

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
        std::cout << net::to_json_text(
          nlohmann::json{{"id", submitted->id.value},
                         {"idempotency_key", spec.idempotency_key}})
                  << "\n";
      else
        std::cout << submitted->id.value << "\n";
      return 0;
    }
    // From here on the user must learn the id, whatever happens.
    auto accepted = std::to_string(submitted->id.value);
    say_if_interrupted("vidctl: job " + accepted
                       + " was accepted; `vidctl status " + accepted
                       + "` shows it");
    submitted->connection->request_timeout(options.request_timeout);
    auto result = [&]() -> caf::expected<runtime::job_result> {
      if (!live_progress_wanted(terminal))
        return submitted->connection->wait(submitted->id);
      job_progress progress{submitted->id, options, terminal, false};
      return submitted->connection->watch(submitted->id, progress.observer());
    }();
    if (!result)
      return fail_after_accept(result.error(), submitted->id,
                               spec.idempotency_key);
    return finish_with_download(*submitted->connection, *result, destination);
  }

  // Connecting and the reply share --timeout (waits: see --timeout's help).
  options.connect_timeout = options.request_timeout;
  if (*top)
    return run_top(options, top_interval, terminal);
  auto start = std::chrono::steady_clock::now();
  auto connected = net::client::connect(options);
  if (!connected)
    return fail(connected.error());
  if (*wait) {
    auto deadline = max_wait.count() > 0
                      ? std::chrono::steady_clock::now() + max_wait
                      : std::chrono::steady_clock::time_point::max();
    std::optional<job_progress> progress;
    if (live_progress_wanted(terminal))
      progress.emplace(*id, options, terminal, false);
    auto outcome =
      progress ? net::watch_with_reconnect(
        options, std::move(*connected), *id, progress->observer(),
        progress->around(reconnect_notices(options)), deadline)
               : net::wait_with_reconnect(options, std::move(*connected), *id,
                                          deadline, reconnect_notices(options));
    progress.reset();
    if (!outcome)
      return fail(outcome.error());
    return finish_with_download(*outcome->connection, outcome->result,
                                destination);
  }
  if (*watch) {
    std::optional<job_progress> progress;
    if (live_progress_wanted(terminal))
      progress.emplace(*id, options, terminal, true);
    auto outcome =
      progress
        ? net::watch_with_reconnect(
          options, std::move(*connected), *id, progress->observer(),
          progress->around(reconnect_notices(options)))
        : net::watch_with_reconnect(options, std::move(*connected), *id,
                                    print_event, reconnect_notices(options));
    progress.reset();
    if (!outcome)
      return fail(outcome.error());
    return finish_with(outcome->result);
  }
  auto& node = **connected;
  auto spent = std::chrono::duration_cast<caf::timespan>(
    std::chrono::steady_clock::now() - start);
  node.request_timeout(
    std::max(options.request_timeout - spent, caf::timespan{1}));
  if (*status) {
    auto result = node.status(*id);
    if (!result)
      return fail(result.error());
    print_result(*result);
    return 0;
  }
  if (*fetch) {
    uint64_t written = 0;
    if (auto code = download(node, *id, destination, written))
      return code;
    if (json_output)
      std::cout << net::to_json_text(nlohmann::json{
        {"id", id->value}, {"path", destination.path}, {"bytes", written}})
                << "\n";
    return 0;
  }
  if (*cancel) {
    auto result = node.cancel(*id);
    if (!result)
      return fail(result.error());
    print_result(*result);
    return 0;
  }
  if (*retry) {
    auto result = node.retry(*id);
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
      {"NODE", "SERVES", "DEVICE", "STATE", "SLOTS", "MEMORY", "MODELS(LOADS)",
       "RUNNING", "RESTARTS", "LAST ERROR"}};
    const std::string* previous_node = nullptr;
    for (const auto& d : *devices) {
      // What a node serves is shown on its first device's row only.
      auto serves = previous_node != nullptr && *previous_node == d.node
                      ? std::string{}
                      : compact_models(d.served_models);
      previous_node = &d.node;
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
        {d.node, serves, d.device, d.state,
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
