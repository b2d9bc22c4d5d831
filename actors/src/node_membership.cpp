#include "vidnode/actors/node_membership.hpp"

#include <algorithm>

#include <caf/actor_cast.hpp>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::actors {

caf::error node_membership::check_join(const std::string& name,
                                       const caf::node_id& id) const {
  auto existing = find(name);
  if (existing != nullptr && existing->state == cluster_node::status::up
      && existing->id != id)
    return runtime::make_error(
      runtime::errc::invalid_request,
      "node-name: '" + name + "' is already taken by a node that is up"
        + (existing->local ? " (the head itself)" : "")
        + "; give this node another --node-name, or wait until the head has "
          "lost the old one");
  return caf::none;
}

caf::expected<cluster_node*>
node_membership::join(const std::string& name, caf::node_id id,
                      node_supervisor_actor supervisor, bool local) {
  if (auto err = check_join(name, id))
    return err;
  auto existing = find(name);
  if (existing == nullptr)
    existing = &nodes_.emplace_back();
  else
    existing->incarnation += 1;
  existing->name = name;
  existing->id = std::move(id);
  existing->supervisor = std::move(supervisor);
  existing->local = local;
  existing->state = cluster_node::status::up;
  existing->slots.clear();
  existing->lost_reason.clear();
  return existing;
}

cluster_node* node_membership::find(const std::string& name) {
  for (auto& node : nodes_)
    if (node.name == name)
      return &node;
  return nullptr;
}

const cluster_node* node_membership::find(const std::string& name) const {
  for (const auto& node : nodes_)
    if (node.name == name)
      return &node;
  return nullptr;
}

cluster_node* node_membership::find_up(const caf::node_id& id) {
  for (auto& node : nodes_)
    if (node.state == cluster_node::status::up && node.id == id)
      return &node;
  return nullptr;
}

cluster_node*
node_membership::by_supervisor(const caf::strong_actor_ptr& sender) {
  if (sender == nullptr)
    return nullptr;
  for (auto& node : nodes_)
    if (node.state == cluster_node::status::up && node.supervisor
        && caf::actor_cast<caf::strong_actor_ptr>(node.supervisor) == sender)
      return &node;
  return nullptr;
}

void node_membership::lose(cluster_node& node, time_point t,
                           caf::timestamp wall, std::string reason) {
  node.state = cluster_node::status::lost;
  node.lost_at = t;
  node.lost_wall = wall;
  node.lost_reason = std::move(reason);
  node.supervisor = nullptr;
}

std::vector<std::string> node_membership::lost_before(time_point t,
                                                      caf::timespan ttl) const {
  std::vector<std::string> result;
  for (const auto& node : nodes_)
    if (node.state == cluster_node::status::lost && t - node.lost_at >= ttl)
      result.push_back(node.name);
  return result;
}

void node_membership::forget(const std::string& name) {
  nodes_.remove_if([&](const cluster_node& node) { return node.name == name; });
}

node_membership::time_point
node_membership::next_forget(caf::timespan ttl) const {
  auto next = time_point::max();
  for (const auto& node : nodes_)
    if (node.state == cluster_node::status::lost)
      next = std::min(next, node.lost_at + ttl);
  return next;
}

size_t node_membership::up_count() const noexcept {
  return static_cast<size_t>(
    std::count_if(nodes_.begin(), nodes_.end(), [](const cluster_node& node) {
      return node.state == cluster_node::status::up;
    }));
}

} // namespace vidnode::actors
