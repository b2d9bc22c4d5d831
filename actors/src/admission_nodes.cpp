/// @file
/// Admission: worker nodes joining the cluster, being lost and forgotten
/// (see admission_state.hpp; the table of nodes is node_membership.hpp).

#include <algorithm>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>

#include <spdlog/spdlog.h>

#include "admission_state.hpp"
#include "job_log.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/model_pattern.hpp"
#include "vidnode/runtime/protocol.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::actors {

using runtime::errc;
using runtime::job_id;
using runtime::job_state;
using runtime::make_error;

namespace {

/// Most devices one node may register.
constexpr size_t max_devices_per_node = 4096;

/// Most model patterns one node may register.
constexpr size_t max_models_per_node = 1024;

/// Why `reg`'s devices cannot be registered, or nothing.
std::optional<std::string> invalid_devices(const node_registration& reg) {
  if (reg.devices.size() > max_devices_per_node)
    return "devices: " + std::to_string(reg.devices.size())
           + " registered, at most " + std::to_string(max_devices_per_node);
  std::set<int32_t> indices;
  for (const auto& device : reg.devices) {
    if (device.index < 0 || !indices.insert(device.index).second)
      return "devices: index " + std::to_string(device.index)
             + " is negative or given twice";
    if (device.memory_bytes == 0)
      return "devices: " + device.name() + " has no memory";
  }
  return std::nullopt;
}

/// Why `reg`'s models cannot be registered, or nothing.
std::optional<std::string> invalid_models(const node_registration& reg) {
  if (reg.models.size() > max_models_per_node)
    return "models: " + std::to_string(reg.models.size())
           + " registered, at most " + std::to_string(max_models_per_node);
  for (const auto& pattern : reg.models)
    if (auto why = runtime::invalid_model_pattern(pattern))
      return "models: " + *why;
  return std::nullopt;
}

/// `models` for the log: "sim, sim-*" or "no model".
std::string describe_models(const std::vector<std::string>& models) {
  std::string result;
  for (const auto& model : models)
    result += (result.empty() ? "" : ", ") + model;
  return result.empty() ? "no model" : result;
}

/// Whether a down message says the node was stopped on purpose (its
/// operator's SIGTERM, say), which no job can bring about.
bool stopped_on_purpose(const caf::down_msg& msg) {
  return msg.reason == caf::exit_reason::user_shutdown
         || msg.reason == caf::exit_reason::normal;
}

/// What a down message says about why a node's actor went.
std::string why_gone(const caf::down_msg& msg) {
  if (msg.reason == caf::exit_reason::remote_link_unreachable)
    return "its connection closed, or it sent nothing for the node timeout";
  if (msg.reason == caf::exit_reason::user_shutdown
      || msg.reason == caf::exit_reason::normal)
    return "it stopped";
  return "its supervisor ended (" + runtime::describe(msg.reason) + ")";
}

} // namespace

caf::result<join_answer> admission_state::join_node(node_registration reg) {
  if (shutting_down)
    return make_error(errc::shutting_down,
                      "head " + node_name + " is shutting down");
  if (reg.protocol != runtime::protocol_version)
    return make_error(errc::invalid_request,
                      "protocol: the node speaks '" + reg.protocol
                        + "', the head '" + runtime::protocol_version + "'");
  if (auto why = runtime::invalid_node_name(reg.name))
    return make_error(errc::invalid_request, "node-name: " + *why);
  if (!reg.supervisor || reg.supervisor.node() == self->node())
    return make_error(errc::invalid_request,
                      "supervisor: a worker node registers its own "
                      "supervisor");
  if (auto why = invalid_devices(reg))
    return make_error(errc::invalid_request, *why);
  if (auto why = invalid_models(reg))
    return make_error(errc::invalid_request, *why);
  auto id = reg.supervisor.node();
  if (auto err = nodes.check_join(reg.name, id))
    return err;
  if (auto old = nodes.find(reg.name)) {
    if (old->state == cluster_node::status::up)
      lose_node(*old, "it registered again (it had lost the head)", true, true);
    drop_slots(*old);
  }
  auto joined = nodes.join(reg.name, id, reg.supervisor);
  if (!joined)
    return std::move(joined.error());
  auto& node = **joined;
  for (auto& info : reg.devices)
    node.slots.push_back(devices.add(node.name, std::move(info), reg.models));
  self->monitor(reg.supervisor);
  node_events->node_joined(node.name);
  spdlog::info("node {} joined with {} device(s) serving {} (registration {})",
               node.name, node.slots.size(), describe_models(reg.models),
               node.incarnation);
  join_answer answer;
  answer.head = node_name;
  answer.stop = take_over(node, reg.leases);
  answer.lease_grace = settings.lease_grace;
  unpark();
  dispatch();
  return answer;
}

void admission_state::on_down(const caf::down_msg& msg) {
  // CAF sends a down message in the name of the actor that went; anything
  // else is forged (a down message is an ordinary message on the wire).
  if (self->current_sender() == nullptr
      || self->current_sender()->address() != msg.source)
    return;
  for (const auto& entry : nodes.nodes()) {
    if (entry.local || entry.state != cluster_node::status::up
        || !entry.supervisor || entry.supervisor.address() != msg.source)
      continue;
    lose_node(*nodes.find(entry.name), why_gone(msg), !stopped_on_purpose(msg),
              msg.reason == caf::exit_reason::remote_link_unreachable);
    return;
  }
  // A worker's proxy dies with its node's connection; a worker that merely
  // exited is the business of its node's supervisor (detach).
  if (msg.reason != caf::exit_reason::remote_link_unreachable)
    return;
  if (auto node = nodes.find_up(msg.source.node()); node && !node->local)
    lose_node(*node, why_gone(msg), true, true);
}

void admission_state::lose_node(cluster_node& node, const std::string& why,
                                bool charge, bool hold) {
  if (node.local || node.state != cluster_node::status::up)
    return;
  auto t = now();
  auto name = node.name;
  nodes.lose(node, t, wall(t), why);
  node_events->node_lost(name);
  fail_reads(node, why);
  auto reason =
    make_error(errc::worker_lost, "node " + name + " was lost: " + why);
  auto shown = "node lost " + runtime::format_timestamp(wall(t)) + ": " + why;
  std::vector<job_id> lost;
  for (auto slot : node.slots) {
    auto device = devices.find(slot);
    if (device == nullptr)
      continue;
    for (const auto* ids : {&device->running, &device->finishing})
      for (auto id : *ids) {
        auto rec = jobs->find(id);
        if (rec != nullptr && rec->result.state == job_state::running)
          lost.push_back(id);
      }
    device->state = device_slot::health::lost;
    device->worker = nullptr;
    device->supervisor = nullptr;
    device->last_error = shown;
  }
  // A gang with several ranks on the node is lost once.
  for (auto i = lost.begin(); i != lost.end(); ++i)
    lost.erase(std::remove(std::next(i), lost.end(), *i), lost.end());
  size_t failed = 0;
  size_t held = 0;
  hold = hold && charge && settings.lease_grace.count() > 0;
  for (auto id : lost)
    if (auto rec = jobs->find(id); rec && !rec->ended()) {
      // A gang's other ranks cannot wait for this one: it runs again.
      if (hold && rec->gang.empty()) {
        // The node may run it on: it stays the node's for the lease grace.
        auto index = devices.at(rec->device).info.index;
        // Its journaled record (running there, this lease) stays true.
        hold_attempt(*rec, name, index, t + settings.lease_grace);
        log_job(runtime::log_level::info, rec->result,
                "held: its node is lost and keeps the attempt for the lease "
                "grace of "
                  + runtime::format_duration(settings.lease_grace));
        ++held;
        continue;
      }
      retry_or_fail(*rec, reason, charge);
      failed += rec->ended() ? 1 : 0;
    }
  for (auto slot : node.slots)
    if (auto device = devices.find(slot)) {
      device->running.clear();
      device->finishing.clear();
      device->reserved = 0;
      device->resident = 0;
      for (auto& model : device->models)
        model.loaded = false;
    }
  if (held > 0)
    spdlog::warn("node {} is lost ({}); the {} job(s) it ran stay its own for "
                 "the lease grace of {}, then are queued again",
                 name, why, held,
                 runtime::format_duration(settings.lease_grace));
  else
    spdlog::warn("node {} is lost ({}); of the {} job(s) it ran, {} are "
                 "queued again{} and {} failed (no attempt left)",
                 name, why, lost.size(), lost.size() - failed,
                 charge ? "" : " without counting the attempt", failed);
  arm_tick(t + settings.lost_node_ttl);
  fail_stranded_jobs();
  dispatch();
}

void admission_state::drop_slots(cluster_node& node) {
  std::set<int32_t> freed(node.slots.begin(), node.slots.end());
  for (auto slot : node.slots)
    devices.free(slot);
  node.slots.clear();
  jobs->for_each([&](job_record& rec) {
    auto& crashed = rec.crashed_on;
    crashed.erase(std::remove_if(crashed.begin(), crashed.end(),
                                 [&](int32_t s) { return freed.count(s) > 0; }),
                  crashed.end());
  });
}

std::vector<runtime::device_status> admission_state::device_statuses() const {
  std::vector<runtime::device_status> result;
  for (const auto& node : nodes.nodes()) {
    auto slots = node.slots;
    std::sort(slots.begin(), slots.end(), [this](int32_t x, int32_t y) {
      return devices.at(x).info.index < devices.at(y).info.index;
    });
    for (auto slot : slots)
      result.push_back(devices.status_of(slot, settings.max_concurrency));
  }
  return result;
}

void admission_state::forget_lost_nodes() {
  auto t = now();
  for (const auto& name : nodes.lost_before(t, settings.lost_node_ttl)) {
    drop_slots(*nodes.find(name));
    nodes.forget(name);
    spdlog::info("node {} is forgotten ({} after it was lost)", name,
                 runtime::format_duration(settings.lost_node_ttl));
  }
  auto next = nodes.next_forget(settings.lost_node_ttl);
  if (next != time_point::max())
    arm_tick(next);
}

} // namespace vidnode::actors
