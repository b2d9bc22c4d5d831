#include "vidnode/actors/admission.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "admission_state.hpp"
#include "node_lifecycle.hpp"
#include "vidnode/actors/webhook_sender.hpp"
#include "vidnode/runtime/errc.hpp"
#include "stray_errors.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;
using runtime::job_id;
using runtime::job_result;
using runtime::job_spec;
using runtime::make_error;

caf::result<job_result> unknown_job(job_id id) {
  return make_error(errc::unknown_job,
                    "no job " + runtime::to_string(id)
                      + " (never accepted, or its result has expired)");
}

admission_control_actor::behavior_type admission_behavior(
  admission_state::pointer self, runtime::node_settings settings,
  std::vector<runtime::device_info> devices,
  std::shared_ptr<const gpu::model_catalog> catalog,
  std::shared_ptr<transfers> mover, std::shared_ptr<journal_store> journal,
  std::shared_ptr<node_observer> events) {
  self->state.init(std::move(settings), std::move(devices), std::move(catalog),
                   std::move(mover), std::move(journal), std::move(events));
  self->set_down_handler([=](caf::down_msg& msg) { self->state.on_down(msg); });
  survive_stray_errors(self, "admission");
  return {
    // -- client protocol ---------------------------------------------------
    [=](runtime::submit_atom, job_spec& spec) -> caf::result<job_id> {
      auto& st = self->state;
      auto rec = st.accept(std::move(spec));
      if (!rec)
        return std::move(rec.error());
      // The answer leaves before the job's ticket: on a cluster the ticket
      // goes out through the same network thread, and the client should
      // not wait behind a job it does not wait for. With a journal it
      // leaves once the job's record is durable.
      auto promise = self->make_response_promise<job_id>();
      auto id = (*rec)->result.id;
      st.after_durable([self, promise, id](const caf::error& err) mutable {
        auto known = self->state.jobs->find(id);
        if (known != nullptr && (known->durable || !self->state.journal))
          promise.deliver(id);
        else
          promise.deliver(err ? err
                              : make_error(errc::journal_unavailable,
                                           "job " + runtime::to_string(id)
                                             + " could not be journaled"));
      });
      st.dispatch();
      return promise;
    },
    [=](runtime::execute_atom, job_spec& spec) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.accept(std::move(spec));
      if (!rec)
        return std::move(rec.error());
      if ((*rec)->ended() && !(*rec)->end_pending)
        return st.snapshot(**rec);
      auto promise = self->make_response_promise<job_result>();
      st.jobs->add_waiter(**rec, promise);
      st.dispatch();
      return promise;
    },
    [=](runtime::status_atom, job_id id) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.jobs->find(id);
      if (rec == nullptr)
        return unknown_job(id);
      return st.snapshot(*rec);
    },
    [=](runtime::wait_atom, job_id id,
        caf::timespan max_wait) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.jobs->find(id);
      if (rec == nullptr)
        return unknown_job(id);
      // An end not journaled yet is told once it is (tell_end).
      if (rec->ended() && !rec->end_pending)
        return st.snapshot(*rec);
      if (max_wait.count() < 0)
        return make_error(errc::invalid_request,
                          "max_wait: must not be negative");
      auto promise = self->make_response_promise<job_result>();
      auto waiter = st.jobs->add_waiter(*rec, promise);
      if (max_wait.count() > 0)
        self->delayed_send(self, max_wait, wait_expired_atom::value, id,
                           waiter);
      return promise;
    },
    [=](runtime::cancel_atom, job_id id) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.jobs->find(id);
      if (rec == nullptr)
        return unknown_job(id);
      if (rec->ended() && !rec->end_pending)
        return st.snapshot(*rec);
      if (!rec->ended()) {
        if (rec->result.state == runtime::job_state::queued)
          st.leave_queue(*rec);
        else
          st.stop_attempt(*rec);
        st.finalize(*rec, runtime::job_state::cancelled,
                    make_error(errc::cancelled, "cancelled by a client"));
        st.dispatch();
      }
      // The answer leaves once the end is journaled.
      auto promise = self->make_response_promise<job_result>();
      st.after_durable(
        [self, promise, id](const caf::error&) mutable {
          auto& st = self->state;
          if (auto ended = st.jobs->find(id))
            promise.deliver(st.snapshot(*ended));
          else
            promise.deliver(
              make_error(errc::unknown_job,
                         "job " + runtime::to_string(id) + " was forgotten"));
        },
        true);
      return promise;
    },
    [=](runtime::list_atom,
        const runtime::list_query& query) -> std::vector<job_result> {
      auto& st = self->state;
      std::vector<job_result> result;
      for (auto rec : st.jobs->listing(query))
        result.push_back(st.snapshot(*rec));
      return result;
    },
    [=](runtime::nodes_atom) -> std::vector<runtime::device_status> {
      return self->state.device_statuses();
    },
    [=](runtime::subscribe_atom, job_id id,
        runtime::job_observer_actor observer) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.jobs->find(id);
      if (rec == nullptr)
        return unknown_job(id);
      if ((!rec->ended() || rec->end_pending) && observer)
        rec->observers.push_back(std::move(observer));
      return st.snapshot(*rec);
    },
    [=](runtime::read_output_atom, job_id id, uint64_t offset,
        uint32_t max_bytes) -> caf::result<runtime::output_chunk> {
      return self->state.read_output(id, offset, max_bytes);
    },
    [=](runtime::retry_atom, job_id id) -> caf::result<job_result> {
      auto& st = self->state;
      auto rec = st.jobs->find(id);
      if (rec == nullptr)
        return unknown_job(id);
      if (auto err = st.retry(*rec))
        return err;
      // The answer leaves once the retry is durable, as submit's does.
      auto promise = self->make_response_promise<job_result>();
      st.after_durable([self, promise, id](const caf::error& err) mutable {
        auto& st = self->state;
        auto known = st.jobs->find(id);
        if (known == nullptr)
          promise.deliver(
            make_error(errc::unknown_job,
                       "job " + runtime::to_string(id) + " was forgotten"));
        else if (err && known->ended())
          promise.deliver(err);
        else
          promise.deliver(st.snapshot(*known));
      });
      st.dispatch();
      return promise;
    },
    // -- nodes and their supervisors ----------------------------------------
    [=](join_atom, node_registration& reg) -> caf::result<join_answer> {
      auto& st = self->state;
      // Only the registry (a local actor, published on the cluster port)
      // registers nodes.
      if (!st.from_this_node())
        return make_error(errc::unauthorized,
                          "nodes register through the cluster port");
      return st.join_node(std::move(reg));
    },
    [=](renew_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      const auto& sender = self->current_sender();
      auto node =
        sender == nullptr ? nullptr : st.nodes.find_up(sender->node());
      if (node == nullptr || node->local)
        return make_error(errc::node_lost,
                          "this node is not registered with head "
                            + st.node_name + " (it lost the node)");
      return caf::ok_atom::value;
    },
    [=](attach_atom, runtime::device_info info, device_worker_actor worker,
        int32_t restarts, const std::vector<std::string>& kept_models,
        uint64_t kept_resident) {
      self->state.attach(std::move(info), std::move(worker), restarts,
                         kept_models, kept_resident);
    },
    [=](detach_atom, int32_t index, caf::error reason) -> caf::result<bool> {
      auto& st = self->state;
      auto node = st.sender_node();
      if (node == nullptr)
        return make_error(errc::unauthorized, "only the node may detach");
      return st.detach(st.slot_of(*node, index), std::move(reason));
    },
    [=](quarantine_atom, int32_t index, caf::error reason,
        caf::timespan cooldown) {
      auto& st = self->state;
      if (auto node = st.sender_node())
        st.quarantine(st.slot_of(*node, index), std::move(reason), cooldown);
    },
    [=](probe_atom, int32_t index) {
      auto& st = self->state;
      if (auto node = st.sender_node())
        st.probe(st.slot_of(*node, index));
    },
    // -- device workers ----------------------------------------------------
    [=](loaded_atom, int32_t index, const std::string& model,
        uint64_t resident) { self->state.on_loaded(index, model, resident); },
    [=](computed_atom, job_id id, uint64_t lease) {
      self->state.on_computed(id, lease);
    },
    [=](progress_atom, job_id id, uint64_t lease, int32_t step, int32_t steps) {
      self->state.on_progress(id, lease, step, steps);
    },
    [=](rendezvous_atom, job_id id, uint64_t lease, std::string& address) {
      self->state.on_rendezvous(id, lease, std::move(address));
    },
    [=](done_atom, job_id id, uint64_t lease, finished_job& out) {
      self->state.on_done(id, lease, std::move(out));
    },
    [=](failed_atom, job_id id, uint64_t lease, caf::error& reason,
        uint64_t needed_bytes) {
      self->state.on_failed(id, lease, std::move(reason), needed_bytes);
    },
    [=](crashed_atom, job_id id, uint64_t lease, caf::error& reason,
        bool device_failed) {
      self->state.on_crashed(id, lease, std::move(reason), device_failed);
    },
    // -- transfer tasks ----------------------------------------------------
    [=](fetched_atom, job_id id, std::string& path, caf::error& err) {
      if (self->state.from_this_node())
        self->state.fetched(id, std::move(path), std::move(err));
    },
    [=](uploaded_atom, job_id id, caf::error& err) {
      if (self->state.from_this_node())
        self->state.uploaded(id, std::move(err));
    },
    [=](copied_atom, uint64_t copy, std::string& path, caf::error& err) {
      if (self->state.from_this_node())
        self->state.copied(copy, std::move(path), std::move(err));
    },
    // -- files of other nodes ----------------------------------------------
    [=](read_input_atom, job_id id, uint64_t lease, uint64_t offset,
        uint32_t max_bytes) -> caf::result<runtime::output_chunk> {
      return self->state.read_input(id, lease, offset, max_bytes);
    },
    // -- timers ------------------------------------------------------------
    [=](tick_atom) {
      if (self->state.from_this_node())
        self->state.on_tick();
    },
    [=](straggler_atom, job_id id, uint64_t lease, int32_t step) {
      self->state.on_straggler(id, lease, step);
    },
    [=](wait_expired_atom, job_id id, uint64_t waiter) {
      auto& st = self->state;
      if (!st.from_this_node())
        return;
      // Before an end is journaled, the snapshot shows the job as it was.
      if (auto rec = st.jobs->find(id))
        st.jobs->answer_waiter(*rec, waiter, st.snapshot(*rec));
    },
    // -- node --------------------------------------------------------------
    [=](shutdown_atom) -> caf::result<caf::ok_atom> {
      if (!self->state.from_this_node())
        return make_error(errc::unauthorized,
                          "only the node itself may shut it down");
      auto promise = self->make_response_promise<caf::ok_atom>();
      self->state.shutdown(promise);
      return promise;
    },
    [=](grace_atom) {
      if (self->state.from_this_node())
        self->state.grace_over();
    },
    // -- metrics -----------------------------------------------------------
    [=](metrics_atom) -> caf::result<node_metrics> {
      if (!self->state.from_this_node())
        return make_error(errc::unauthorized,
                          "metrics are for actors of this node");
      return self->state.metrics();
    },
    // -- the journal -------------------------------------------------------
    [=](journal_flush_atom) {
      auto& st = self->state;
      if (!st.from_this_node())
        return;
      st.flush_scheduled = false;
      st.flush_journal();
    },
    [=](journaled_atom, uint64_t number, caf::error& err) {
      if (self->state.from_this_node())
        self->state.on_journaled(number, std::move(err));
    },
  };
}

} // namespace

admission_state::admission_state(pointer self) : self(self) {}

void admission_state::init(runtime::node_settings node_settings,
                           std::vector<runtime::device_info> node_devices,
                           std::shared_ptr<const gpu::model_catalog> models,
                           std::shared_ptr<transfers> transfer_mover,
                           std::shared_ptr<journal_store> journal_store,
                           std::shared_ptr<node_observer> events) {
  settings = std::move(node_settings);
  node_events = events ? std::move(events) : null_observer();
  node_name = node_name_of(settings);
  part_bytes = runtime::chunk_bytes_within(settings.max_message_size,
                                           runtime::max_chunk_bytes);
  copy_chunk_bytes = runtime::chunk_bytes_within(settings.max_message_size);
  auto local =
    nodes.join(node_name, self->node(), node_supervisor_actor{}, true);
  auto served = models->served();
  for (auto& info : node_devices)
    (*local)->slots.push_back(devices.add(node_name, std::move(info), served));
  queue = std::make_unique<job_queue>(settings.aging_interval);
  memory_estimates::policy memory_policy;
  memory_policy.headroom = settings.memory_headroom;
  memory_policy.oom_growth = settings.oom_estimate_growth;
  estimates = std::make_unique<memory_estimates>(memory_policy);
  jobs = std::make_unique<job_table>(
    job_table::retention{settings.result_ttl, settings.max_results});
  catalog = std::move(models);
  mover = std::move(transfer_mover);
  if (mover)
    webhooks =
      spawn_webhook_sender(self->system(), self->address(), mover,
                           webhook_schedule{settings.webhook_attempts,
                                            settings.webhook_retry_delay});
  mono_epoch = self->clock().now();
  wall_epoch = caf::make_timestamp();
  clear_staging();
  if (journal_store)
    open_journal(std::move(journal_store));
}

admission_control_actor
spawn_admission(caf::actor_system& sys, const runtime::node_settings& settings,
                std::vector<runtime::device_info> devices,
                std::shared_ptr<const gpu::model_catalog> catalog,
                std::shared_ptr<transfers> mover,
                std::shared_ptr<journal_store> journal,
                std::shared_ptr<node_observer> events) {
  return sys.spawn(admission_behavior, settings, std::move(devices),
                   std::move(catalog), std::move(mover), std::move(journal),
                   std::move(events));
}

} // namespace vidnode::actors
