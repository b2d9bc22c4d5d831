/// @file
/// A device worker's ranks of a gang: the rendezvous, joining the gang's
/// collectives and lockstep (device_worker_state.hpp).

#include <algorithm>

#include "device_worker_state.hpp"

namespace vidnode::actors {

void device_worker_state::begin_rank(gpu::pipeline& pipeline,
                                     job_ticket ticket) {
  if (ticket.rank > 0) {
    auto early =
      std::find_if(early_rendezvous.begin(), early_rendezvous.end(),
                   [&](const auto& x) { return x.first == ticket.lease; });
    if (early == early_rendezvous.end()) {
      awaiting_rendezvous.push_back(std::move(ticket));
      return;
    }
    auto address = std::move(early->second);
    early_rendezvous.erase(early);
    join_and_start(pipeline, std::move(ticket), address, nullptr);
    return;
  }
  std::unique_ptr<gpu::rendezvous_host> host;
  std::string address;
  if (!gpu::collective_backend_for(device.kind).empty()
      && !guarded(ticket.id, ticket.lease, [&] {
           host = gpu::host_rendezvous(device, gang.collective_host);
           address = host->address();
         }))
    return;
  // Sent before joining: the join blocks until the other ranks, which need
  // the address, have joined too.
  self->send(admission, rendezvous_atom::value, ticket.id, ticket.lease,
             address);
  join_and_start(pipeline, std::move(ticket), address, std::move(host));
}

void device_worker_state::rendezvous_arrived(runtime::job_id id, uint64_t lease,
                                             std::string address) {
  if (exiting)
    return;
  auto waiting =
    std::find_if(awaiting_rendezvous.begin(), awaiting_rendezvous.end(),
                 [&](const job_ticket& x) { return x.lease == lease; });
  if (waiting == awaiting_rendezvous.end()) {
    // Its model is still loading (or it was aborted: then the address is
    // forgotten with the attempt, or never used).
    auto running = book->running();
    if (std::find(running.begin(), running.end(), lease) != running.end())
      early_rendezvous.emplace_back(lease, std::move(address));
    return;
  }
  auto ticket = std::move(*waiting);
  awaiting_rendezvous.erase(waiting);
  auto entry = cache.find(ticket.spec.model);
  if (entry == cache.end() || ticket.id != id)
    return;
  join_and_start(*entry->second.pipeline, std::move(ticket), address, nullptr);
}

void device_worker_state::join_and_start(
  gpu::pipeline& pipeline, job_ticket ticket, const std::string& address,
  std::unique_ptr<gpu::rendezvous_host> host) {
  gpu::device_time busy{0};
  std::unique_ptr<gpu::job_run> run;
  std::shared_ptr<gpu::communicator> members;
  auto timeout =
    std::chrono::duration_cast<std::chrono::milliseconds>(gang.timeout);
  if (!guarded(ticket.id, ticket.lease, [&] {
        if (!address.empty())
          members =
            gpu::join_gang(device, address, ticket.rank, ticket.world, timeout);
        run = pipeline.begin_rank(ticket.spec, ticket.attempt, ticket.rank,
                                  ticket.world, members, busy);
      }))
    return;
  auto lease = ticket.lease;
  launch(ticket, std::move(run), busy);
  if (auto attempt = find_attempt(lease)) {
    attempt->rendezvous = std::move(host);
    attempt->members = std::move(members);
  }
}

void device_worker_state::advance(uint64_t lease, int32_t step) {
  auto attempt = find_attempt(lease);
  if (attempt == nullptr || step + 1 <= attempt->allowed)
    return;
  attempt->allowed = step + 1;
  if (attempt->waiting) {
    attempt->waiting = false;
    self->send(self, step_atom::value, lease);
  }
}

bool device_worker_state::held_back(active_attempt& attempt) {
  if (attempt.world <= 1 || attempt.next_step < attempt.allowed)
    return false;
  attempt.waiting = true;
  return true;
}

void device_worker_state::forget_rank(uint64_t lease) {
  awaiting_rendezvous.erase(
    std::remove_if(awaiting_rendezvous.begin(), awaiting_rendezvous.end(),
                   [&](const job_ticket& x) { return x.lease == lease; }),
    awaiting_rendezvous.end());
  early_rendezvous.erase(
    std::remove_if(early_rendezvous.begin(), early_rendezvous.end(),
                   [&](const auto& x) { return x.first == lease; }),
    early_rendezvous.end());
}

} // namespace vidnode::actors
