/// A CAF application that runs a vidnode head inside its own actor system:
/// vidnode's types go into the application's actor_system_config, a node
/// with simulated devices starts in the application's actor_system, and
/// one of the application's own actors submits jobs to the node's
/// admission actor, subscribes to their events (it implements
/// runtime::job_observer_actor), prints them and the results, and reports
/// how many succeeded. The node stops before the actor system goes away.
/// Exit status: 0 when every job succeeded, 1 otherwise, 2 on bad options.
///
/// Build it against an installed vidnode: see README.md beside this file.
/// Run: `embed_example [--example.jobs=3] [--example.devices=sim:2]
///       [--example.output-dir=DIR]`.

#include <cstdint>
#include <iostream>
#include <set>
#include <string>

#include <caf/all.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/actors/node.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/units.hpp"

namespace {

using namespace vidnode;

/// The application's own message: submit this many jobs, reply with how
/// many succeeded once all have ended.
using run_jobs_atom = caf::atom_constant<caf::atom("runjobs")>;

/// The application's actor: a job observer (what vidnode sends it) that
/// also takes the application's own request.
using submitter_actor = runtime::job_observer_actor::extend<
  caf::replies_to<run_jobs_atom, int32_t>::with<int32_t>>;

/// How long the submitter waits for the node to answer one request.
constexpr auto answer_timeout = std::chrono::seconds{10};

struct submitter_state {
  runtime::admission_actor admission;
  caf::typed_response_promise<int32_t> all_ended;
  int32_t submitted = 0;
  int32_t succeeded = 0;
  /// Jobs whose end was counted: the subscription's snapshot and the last
  /// event may both say that a job ended.
  std::set<uint64_t> ended;
  static inline const char* name = "embed_example.submitter";
};

using submitter_pointer = submitter_actor::stateful_pointer<submitter_state>;

void print_result(submitter_pointer self, const runtime::job_result& r) {
  auto out = caf::aout(self);
  out << "result job " << runtime::to_string(r.id) << ": "
      << runtime::to_string(r.state);
  if (!r.device.empty())
    out << " on " << r.device << " (node " << r.node << ", attempt "
        << r.attempts << ", ran " << runtime::format_duration(r.run_time)
        << ")";
  if (!r.output.empty())
    out << ", output " << r.output;
  if (r.error)
    out << ", error " << runtime::describe(r.error);
  out << std::endl;
}

/// Counts a job's end once; delivers the count when every job has ended.
void job_ended(submitter_pointer self, const runtime::job_result& r) {
  auto& st = self->state;
  if (!st.ended.insert(r.id.value).second)
    return;
  print_result(self, r);
  if (r.state == runtime::job_state::succeeded)
    ++st.succeeded;
  if (static_cast<int32_t>(st.ended.size()) == st.submitted)
    st.all_ended.deliver(st.succeeded);
}

/// A job the node refused or that could not be followed counts as ended
/// and failed.
void job_lost(submitter_pointer self, const std::string& what,
              const caf::error& err) {
  caf::aout(self) << what << ": " << runtime::describe(err) << std::endl;
  auto& st = self->state;
  if (--st.submitted == static_cast<int32_t>(st.ended.size()))
    st.all_ended.deliver(st.succeeded);
}

runtime::job_spec make_spec(int32_t index) {
  runtime::job_spec spec;
  spec.prompt = "a lighthouse at dusk, take " + std::to_string(index + 1);
  spec.steps = 5;
  spec.priority = index % 2;
  // The sim model's knobs: how long a step and the model's load take.
  spec.options = {{"step_ms", "20"}, {"load_ms", "50"}};
  return spec;
}

submitter_actor::behavior_type submitter(submitter_pointer self,
                                         runtime::admission_actor admission) {
  self->state.admission = std::move(admission);
  return {
    [=](run_jobs_atom, int32_t count) -> caf::result<int32_t> {
      auto& st = self->state;
      st.all_ended = self->make_response_promise<int32_t>();
      st.submitted = count;
      if (count == 0)
        return 0;
      auto observer = caf::actor_cast<runtime::job_observer_actor>(self);
      for (int32_t i = 0; i < count; ++i)
        self
          ->request(st.admission, answer_timeout, runtime::submit_atom::value,
                    make_spec(i))
          .then(
            [=](const runtime::job_id& id) {
              caf::aout(self)
                << "submitted job " << runtime::to_string(id) << std::endl;
              // Events from now on; the reply is the job's state when the
              // subscription began (an ended job sends no more events).
              self
                ->request(self->state.admission, answer_timeout,
                          runtime::subscribe_atom::value, id, observer)
                .then(
                  [=](const runtime::job_result& snapshot) {
                    if (runtime::is_terminal(snapshot.state))
                      job_ended(self, snapshot);
                  },
                  [=](const caf::error& err) {
                    job_lost(self, "subscribe " + runtime::to_string(id), err);
                  });
            },
            [=](const caf::error& err) {
              job_lost(self, "submit refused", err);
            });
      return st.all_ended;
    },
    [=](const runtime::job_event& e) {
      auto out = caf::aout(self);
      out << "event job " << runtime::to_string(e.id) << ": "
          << runtime::to_string(e.state);
      if (e.steps > 0)
        out << " step " << e.step << "/" << e.steps;
      if (!e.device.empty())
        out << " on " << e.device;
      out << std::endl;
      if (!runtime::is_terminal(e.state))
        return;
      self
        ->request(self->state.admission, answer_timeout,
                  runtime::status_atom::value, e.id)
        .then([=](const runtime::job_result& r) { job_ended(self, r); },
              [=](const caf::error& err) {
                job_lost(self, "status " + runtime::to_string(e.id), err);
              });
    },
  };
}

/// The application's configuration: its own options, and vidnode's types
/// and error category (this process opens no port and joins no head, so
/// actors::add_types is all it needs; net::configure_host adds the network).
struct host_config : caf::actor_system_config {
  int32_t jobs = 3;
  std::string devices = "sim:2";
  std::string output_dir = "/tmp/embed-example-output";

  host_config() {
    opt_group{custom_options_, "example"}
      .add(jobs, "jobs", "how many jobs to submit")
      .add(devices, "devices", "the devices the embedded node serves")
      .add(output_dir, "output-dir", "where the node writes its videos");
    actors::add_types(*this);
  }
};

} // namespace

int main(int argc, char** argv) {
  host_config cfg;
  if (auto err = cfg.parse(argc, argv)) {
    std::cerr << "embed_example: " << caf::actor_system_config::render(err)
              << std::endl;
    return 2;
  }
  if (cfg.cli_helptext_printed)
    return 0;
  if (cfg.jobs < 0) {
    std::cerr << "embed_example: --example.jobs must not be negative"
              << std::endl;
    return 2;
  }
  caf::actor_system sys{cfg};

  runtime::node_settings settings;
  settings.devices = cfg.devices;
  settings.output_dir = cfg.output_dir;
  settings.node_name = "embedded";
  auto node = actors::local_node::start(sys, settings);
  if (!node) {
    std::cerr << "embed_example: cannot start the node: "
              << runtime::describe(node.error()) << std::endl;
    return 1;
  }

  auto client = sys.spawn(submitter, (*node)->admission());
  int32_t succeeded = -1;
  {
    caf::scoped_actor self{sys};
    self->request(client, caf::infinite, run_jobs_atom::value, cfg.jobs)
      .receive([&](int32_t count) { succeeded = count; },
               [&](const caf::error& err) {
                 std::cerr << "embed_example: " << runtime::describe(err)
                           << std::endl;
               });
  }
  // Every actor must end before the actor system is destroyed: the
  // application's own, then the node's.
  caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  auto stopped = (*node)->stop();
  if (stopped)
    std::cerr << "embed_example: stopping the node: "
              << runtime::describe(stopped) << std::endl;
  std::cout << succeeded << " of " << cfg.jobs << " jobs succeeded"
            << std::endl;
  return succeeded == cfg.jobs && !stopped ? 0 : 1;
}
