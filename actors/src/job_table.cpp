#include "vidnode/actors/job_table.hpp"

#include <algorithm>
#include <cstdint>

namespace vidnode::actors {

job_table::job_table(retention limits) : limits_(limits) {}

job_record* job_table::find(runtime::job_id id) {
  auto i = records_.find(id);
  return i == records_.end() ? nullptr : &i->second;
}

const job_record* job_table::find(runtime::job_id id) const {
  auto i = records_.find(id);
  return i == records_.end() ? nullptr : &i->second;
}

job_record* job_table::find_by_key(const std::string& key) {
  auto i = idempotency_keys_.find(key);
  return i == idempotency_keys_.end() ? nullptr : find(i->second);
}

job_record& job_table::add(runtime::job_spec spec, time_point t) {
  auto& rec = restore(runtime::job_id{next_id_ + 1}, std::move(spec), t);
  rec.result.state = runtime::job_state::queued;
  rec.result.model = rec.spec.model;
  rec.result.priority = rec.spec.priority;
  rec.result.steps = rec.spec.steps;
  rec.result.endpoint = rec.spec.endpoint;
  return rec;
}

job_record& job_table::restore(runtime::job_id id, runtime::job_spec spec,
                               time_point accepted) {
  next_id_ = std::max(next_id_, id.value);
  auto& rec = records_[id];
  rec.result.id = id;
  rec.seq = next_ticket();
  rec.accepted = accepted;
  rec.queued_since = accepted;
  rec.spec = std::move(spec);
  if (!rec.spec.idempotency_key.empty())
    idempotency_keys_.emplace(rec.spec.idempotency_key, id);
  return rec;
}

void job_table::erase(runtime::job_id id) {
  auto i = records_.find(id);
  if (i == records_.end())
    return;
  if (!i->second.spec.idempotency_key.empty())
    idempotency_keys_.erase(i->second.spec.idempotency_key);
  records_.erase(i);
}

std::optional<job_table::time_point> job_table::retire(const job_record& rec,
                                                       time_point t) {
  finished_.emplace_back(t, rec.result.id);
  std::optional<time_point> first_expiry;
  if (finished_.size() == 1)
    first_expiry = t + limits_.result_ttl;
  // `rec` is the newest entry and max_results is at least 1: only older
  // records go, so callers may still use `rec`.
  while (finished_.size() > limits_.max_results)
    forget_oldest();
  return first_expiry;
}

void job_table::reopen(job_record& rec, time_point t) {
  auto i = std::find_if(finished_.begin(), finished_.end(), [&](const auto& x) {
    return x.second == rec.result.id;
  });
  if (i != finished_.end())
    finished_.erase(i);
  rec.seq = next_ticket();
  rec.accepted = t;
  rec.queued_since = t;
}

job_table::time_point job_table::expire(time_point t) {
  while (!finished_.empty()
         && t - finished_.front().first >= limits_.result_ttl)
    forget_oldest();
  return finished_.empty() ? time_point::max()
                           : finished_.front().first + limits_.result_ttl;
}

void job_table::forget_oldest() {
  auto id = finished_.front().second;
  auto i = records_.find(id);
  finished_.pop_front();
  if (i == records_.end())
    return;
  if (on_forget_)
    on_forget_(id);
  // Waiters of an end not journaled yet when the record must go (at most
  // max_results are kept) hear of it now rather than never.
  answer_waiters(i->second, i->second.result);
  if (!i->second.spec.idempotency_key.empty())
    idempotency_keys_.erase(i->second.spec.idempotency_key);
  records_.erase(i);
}

uint64_t job_table::add_waiter(job_record& rec,
                               job_record::result_promise promise) {
  auto number = ++next_waiter_;
  rec.waiters.emplace_back(number, std::move(promise));
  return number;
}

bool job_table::answer_waiter(job_record& rec, uint64_t waiter,
                              const runtime::job_result& result) {
  auto& waiters = rec.waiters;
  auto w = std::find_if(waiters.begin(), waiters.end(),
                        [&](auto& x) { return x.first == waiter; });
  if (w == waiters.end())
    return false;
  w->second.deliver(result);
  waiters.erase(w);
  return true;
}

void job_table::answer_waiters(job_record& rec,
                               const runtime::job_result& result) {
  for (auto& waiter : rec.waiters)
    waiter.second.deliver(result);
  rec.waiters.clear();
  rec.waiters.shrink_to_fit();
}

std::vector<const job_record*>
job_table::listing(const runtime::list_query& query) const {
  std::vector<const job_record*> active;
  std::vector<const job_record*> ended;
  for (const auto& entry : records_)
    if (query.endpoint.empty() || entry.second.spec.endpoint == query.endpoint)
      (entry.second.ended() ? ended : active).push_back(&entry.second);
  std::sort(active.begin(), active.end(),
            [](auto x, auto y) { return x->seq < y->seq; });
  std::sort(ended.begin(), ended.end(),
            [](auto x, auto y) { return x->seq > y->seq; });
  auto limit = query.limit == 0 ? SIZE_MAX : size_t{query.limit};
  std::vector<const job_record*> result;
  for (auto rec : active)
    if (result.size() < limit)
      result.push_back(rec);
  if (query.include_finished)
    for (auto rec : ended)
      if (result.size() < limit)
        result.push_back(rec);
  return result;
}

} // namespace vidnode::actors
