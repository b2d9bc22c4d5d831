#include "vidnode/net/metrics.hpp"

#include <chrono>
#include <exception>
#include <iterator>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/scoped_actor.hpp>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

namespace {

namespace pm = prometheus;

/// A job's queue wait or run time: 0.1 s to 10 min.
const pm::Histogram::BucketBoundaries job_buckets{
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

/// A journal commit (one write and its sync): 0.5 ms to 2.5 s.
const pm::Histogram::BucketBoundaries commit_buckets{
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

/// One phase of a job's attempt (vidnode_job_phase_seconds): 100 us to
/// 5 min.
const pm::Histogram::BucketBoundaries phase_buckets{
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25,   0.5,     1,      2.5,   5,      10,    30,   60,    120,  300};

/// The phases of actors::job_phases, in its order.
constexpr const char* phase_names[] = {
  "load", "prepare", "steps", "kernel", "memory_measurement",
  "decode", "handoff", "encode"};
constexpr size_t phase_count = std::size(phase_names);

/// The device kinds vidnode_job_phase_seconds has series for.
constexpr runtime::device_kind phase_kinds[] = {
  runtime::device_kind::sim, runtime::device_kind::cpu,
  runtime::device_kind::cuda};
constexpr size_t kind_count = std::size(phase_kinds);

double seconds(caf::timespan x) {
  return std::chrono::duration<double>(x).count();
}

/// The counters and histograms made from events, in one registry.
struct event_metrics {
  std::shared_ptr<pm::Registry> registry = std::make_shared<pm::Registry>();

  pm::Family<pm::Counter>& accepted =
    pm::BuildCounter()
      .Name("vidnode_jobs_accepted_total")
      .Help("Jobs accepted by this node's admission (durably, with a journal)")
      .Register(*registry);
  pm::Family<pm::Counter>& retried =
    pm::BuildCounter()
      .Name("vidnode_jobs_retried_total")
      .Help("Failed or timed-out jobs queued again by a client's retry "
            "(durably, with a journal)")
      .Register(*registry);
  pm::Family<pm::Counter>& ended =
    pm::BuildCounter()
      .Name("vidnode_jobs_ended_total")
      .Help("Jobs that ended, by terminal state and error code (none when "
            "succeeded)")
      .Register(*registry);
  pm::Family<pm::Histogram>& queue_wait =
    pm::BuildHistogram()
      .Name("vidnode_job_queue_wait_seconds")
      .Help("Time an ended job spent queued over all its attempts")
      .Register(*registry);
  pm::Family<pm::Histogram>& run_time =
    pm::BuildHistogram()
      .Name("vidnode_job_run_seconds")
      .Help("Running time of the last attempt of an ended job that ran "
            "(its output's encoding and upload included)")
      .Register(*registry);
  pm::Family<pm::Counter>& device_faults =
    pm::BuildCounter()
      .Name("vidnode_device_faults_total")
      .Help("Jobs a device's worker failed with an out-of-memory error or a "
            "crash (the worker is restarted)")
      .Register(*registry);
  pm::Family<pm::Counter>& node_joins =
    pm::BuildCounter()
      .Name("vidnode_node_joins_total")
      .Help("Registrations of worker nodes with this head")
      .Register(*registry);
  pm::Family<pm::Counter>& node_losses =
    pm::BuildCounter()
      .Name("vidnode_node_losses_total")
      .Help("Worker nodes this head lost (connection closed or silent, or "
            "stopped)")
      .Register(*registry);
  pm::Family<pm::Histogram>& commits =
    pm::BuildHistogram()
      .Name("vidnode_journal_commit_seconds")
      .Help("Duration of the head's journal commits (write and sync)")
      .Register(*registry);
  pm::Family<pm::Counter>& commit_failures =
    pm::BuildCounter()
      .Name("vidnode_journal_commit_failures_total")
      .Help("Journal commits that failed")
      .Register(*registry);
  pm::Family<pm::Counter>& transfers =
    pm::BuildCounter()
      .Name("vidnode_transfers_total")
      .Help("Transfers by direction (download, upload, webhook) and outcome "
            "(succeeded, failed, aborted)")
      .Register(*registry);
  pm::Family<pm::Histogram>& phases =
    pm::BuildHistogram()
      .Name("vidnode_job_phase_seconds")
      .Help("Where each succeeded attempt's time went on its device worker, "
            "by phase (load, prepare, steps, kernel: the device's share of "
            "steps, memory_measurement, decode, handoff, encode) and device "
            "kind (a gang's: rank 0's)")
      .Register(*registry);
  /// The series of `phases`, [kind][phase]: a kind's are made when its
  /// first attempt is reported (a node of sim devices shows no cuda
  /// series), so later reports look up no labels.
  pm::Histogram* phase_series[kind_count][phase_count] = {};
  std::once_flag phase_series_made[kind_count];

  /// The series of `kind`'s phases (made on first use).
  pm::Histogram* const* phases_of(size_t kind) {
    std::call_once(phase_series_made[kind], [&] {
      for (size_t p = 0; p < phase_count; ++p)
        phase_series[kind][p] =
          &phases.Add({{"phase", phase_names[p]},
                       {"kind", runtime::to_string(phase_kinds[kind])}},
                      phase_buckets);
    });
    return phase_series[kind];
  }

  event_metrics() {
    commits.Add({}, commit_buckets);
    commit_failures.Add({});
    for (auto direction : {"download", "upload", "webhook"})
      for (auto outcome : {"succeeded", "failed", "aborted"})
        transfers.Add({{"direction", direction}, {"outcome", outcome}});
  }
};

class counting_observer : public actors::node_observer {
public:
  explicit counting_observer(std::shared_ptr<event_metrics> m)
    : m_(std::move(m)) {}

  void job_accepted(const std::string& model, int32_t priority) override {
    m_->accepted.Add({{"model", model}, {"priority", std::to_string(priority)}})
      .Increment();
  }

  void job_retried(const std::string& model, int32_t priority) override {
    m_->retried.Add({{"model", model}, {"priority", std::to_string(priority)}})
      .Increment();
  }

  void job_ended(const actors::job_end& end) override {
    m_->ended
      .Add({{"state", runtime::to_string(end.state)}, {"error", end.error}})
      .Increment();
    m_->queue_wait.Add({{"model", end.model}}, job_buckets)
      .Observe(seconds(end.queue_time));
    if (end.attempts > 0)
      m_->run_time.Add({{"model", end.model}}, job_buckets)
        .Observe(seconds(end.run_time));
  }

  void device_failed(const std::string& node, const std::string& device,
                     actors::device_fault fault) override {
    m_->device_faults
      .Add({{"node", node},
            {"device", device},
            {"fault", actors::to_string(fault)}})
      .Increment();
  }

  void node_joined(const std::string& node) override {
    m_->node_joins.Add({{"node", node}}).Increment();
  }

  void node_lost(const std::string& node) override {
    m_->node_losses.Add({{"node", node}}).Increment();
  }

  void attempt_phases(const std::string&, runtime::device_kind kind,
                      const actors::job_phases& x) override {
    auto k = static_cast<size_t>(kind);
    if (k >= kind_count || phase_kinds[k] != kind)
      return;
    const caf::timespan durations[phase_count] = {
      x.load,   x.prepare, x.steps,  x.kernel, x.memory_measurement,
      x.decode, x.handoff, x.encode};
    auto series = m_->phases_of(k);
    for (size_t p = 0; p < phase_count; ++p)
      series[p]->Observe(seconds(durations[p]));
  }

  void journal_committed(caf::timespan duration, bool ok) override {
    m_->commits.Add({}, commit_buckets).Observe(seconds(duration));
    if (!ok)
      m_->commit_failures.Add({}).Increment();
  }

private:
  std::shared_ptr<event_metrics> m_;
};

/// Counts every call of the transfers it wraps.
class counted_transfers : public actors::transfers {
public:
  counted_transfers(std::shared_ptr<actors::transfers> inner,
                    std::shared_ptr<event_metrics> m)
    : inner_(std::move(inner)), m_(std::move(m)) {}

  caf::expected<uint64_t> fetch(const std::string& url, const std::string& path,
                                actors::abort_signal& cancel) override {
    auto result = inner_->fetch(url, path, cancel);
    count("download", result ? caf::error{} : result.error(), cancel);
    return result;
  }

  caf::error upload(const std::string& path, const std::string& url,
                    actors::abort_signal& cancel) override {
    auto err = inner_->upload(path, url, cancel);
    count("upload", err, cancel);
    return err;
  }

  caf::error notify(const std::string& url, const runtime::job_result& result,
                    actors::abort_signal& cancel) override {
    auto err = inner_->notify(url, result, cancel);
    count("webhook", err, cancel);
    return err;
  }

  caf::error check_url(actors::url_use use,
                       const std::string& url) const override {
    return inner_->check_url(use, url);
  }

  void abort_all() override {
    inner_->abort_all();
  }

  bool blocking() const noexcept override {
    return inner_->blocking();
  }

private:
  void count(const char* direction, const caf::error& err,
             const actors::abort_signal& cancel) {
    auto outcome = !err ? "succeeded" : cancel.aborted() ? "aborted" : "failed";
    m_->transfers.Add({{"direction", direction}, {"outcome", outcome}})
      .Increment();
  }

  std::shared_ptr<actors::transfers> inner_;
  std::shared_ptr<event_metrics> m_;
};

pm::MetricFamily family(std::string name, std::string help,
                        pm::MetricType type) {
  pm::MetricFamily result;
  result.name = std::move(name);
  result.help = std::move(help);
  result.type = type;
  return result;
}

void add_gauge(pm::MetricFamily& f, std::vector<pm::ClientMetric::Label> labels,
               double value) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

void add_counter(pm::MetricFamily& f,
                 std::vector<pm::ClientMetric::Label> labels, double value) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

/// The device states vidnode_device_state has a series for.
constexpr const char* device_states[] = {"starting",   "idle",        "busy",
                                         "restarting", "quarantined", "lost"};

/// The queue's and nodes' gauges of a head.
void add_queue_families(const actors::node_metrics& snapshot,
                        std::vector<pm::MetricFamily>& out) {
  using pm::MetricType;
  const auto* snap = &snapshot;
  auto queued = family("vidnode_queue_jobs",
                       "Jobs queued (for a device, their input or their "
                       "journal record) by priority",
                       MetricType::Gauge);
  for (size_t i = 0; i < snap->queued.size(); ++i)
    add_gauge(queued, {{"priority", std::to_string(i)}},
              static_cast<double>(snap->queued[i]));
  out.push_back(std::move(queued));
  auto running = family("vidnode_running_jobs",
                        "Jobs running (on a device, writing or uploading "
                        "their video, or held by a worker node out of reach)",
                        MetricType::Gauge);
  add_gauge(running, {}, static_cast<double>(snap->running));
  out.push_back(std::move(running));
  auto nodes = family("vidnode_nodes",
                      "Nodes of the cluster by state (up: registered, the "
                      "head included; lost: not yet forgotten)",
                      MetricType::Gauge);
  add_gauge(nodes, {{"state", "up"}}, snap->nodes_up);
  add_gauge(nodes, {{"state", "lost"}}, snap->nodes_lost);
  out.push_back(std::move(nodes));
}

/// The devices' gauges and counters.
void add_device_families(const actors::node_metrics& snapshot,
                         std::vector<pm::MetricFamily>& out) {
  using pm::MetricType;
  const auto* snap = &snapshot;
  auto slots = family("vidnode_device_slots", "Jobs a device may run at once",
                      MetricType::Gauge);
  auto in_use = family("vidnode_device_slots_in_use",
                       "Jobs running on a device", MetricType::Gauge);
  auto memory = family("vidnode_device_memory_bytes",
                       "Memory of a device that jobs and models may use",
                       MetricType::Gauge);
  auto reserved = family("vidnode_device_memory_reserved_bytes",
                         "Memory of a device reserved by running jobs' "
                         "estimates and held by loaded models",
                         MetricType::Gauge);
  auto resident = family("vidnode_device_model_memory_bytes",
                         "Memory of a device held by its loaded models, as "
                         "its worker measured it",
                         MetricType::Gauge);
  auto state = family("vidnode_device_state",
                      "1 for the state a device is in (starting, idle, busy, "
                      "restarting, quarantined, lost), 0 for the others",
                      MetricType::Gauge);
  auto restarts = family("vidnode_device_restarts_total",
                         "Restarts of a device's worker since its node "
                         "registered",
                         MetricType::Counter);
  auto loads =
    family("vidnode_device_model_loads_total",
           "Loads of a model into a device's cache", MetricType::Counter);
  for (const auto& entry : snap->devices) {
    const auto& d = entry.status;
    std::vector<pm::ClientMetric::Label> labels{{"device", d.device},
                                                {"node", d.node}};
    add_gauge(slots, labels, d.slots);
    add_gauge(in_use, labels, d.slots_in_use);
    add_gauge(memory, labels, static_cast<double>(d.memory_bytes));
    add_gauge(reserved, labels, static_cast<double>(d.memory_reserved));
    add_gauge(resident, labels, static_cast<double>(entry.resident_bytes));
    for (auto name : device_states) {
      auto with_state = labels;
      with_state.push_back({"state", name});
      add_gauge(state, std::move(with_state), d.state == name ? 1 : 0);
    }
    add_counter(restarts, labels, d.restarts);
    for (const auto& model : d.models) {
      auto with_model = labels;
      with_model.insert(with_model.begin() + 1, {"model", model.model});
      add_counter(loads, std::move(with_model), model.loads);
    }
  }
  for (auto* f : {&slots, &in_use, &memory, &reserved, &resident, &state,
                  &restarts, &loads})
    out.push_back(std::move(*f));
}

/// The gauges read at each scrape: from admission on a head (`head`), from
/// the supervisor on a worker node (its devices only).
std::vector<pm::MetricFamily> families_of(const actors::node_metrics* snap,
                                          bool head) {
  std::vector<pm::MetricFamily> out;
  auto ok = family("vidnode_snapshot_ok",
                   "1 if this scrape read the state of the queue, devices "
                   "and nodes (a head: from admission; a worker node: its "
                   "devices, from its supervisor), 0 if it got no answer in "
                   "time",
                   pm::MetricType::Gauge);
  add_gauge(ok, {}, snap != nullptr ? 1 : 0);
  out.push_back(std::move(ok));
  if (snap == nullptr)
    return out;
  if (head)
    add_queue_families(*snap, out);
  add_device_families(*snap, out);
  return out;
}

/// Reads admission's snapshot (a head), or the supervisor's devices (a
/// worker node), at each scrape.
class snapshot_collector : public pm::Collectable {
public:
  void watch(caf::actor_system& sys, caf::actor_addr source, bool head,
             caf::timespan timeout) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    sys_ = &sys;
    source_ = std::move(source);
    head_ = head;
    timeout_ = timeout;
  }

  void unwatch() {
    // Waits for the scrapes that are asking.
    std::unique_lock<std::shared_mutex> guard{mtx_};
    sys_ = nullptr;
    source_ = caf::actor_addr{};
  }

  std::vector<pm::MetricFamily> Collect() const override {
    std::optional<actors::node_metrics> snap;
    std::shared_lock<std::shared_mutex> guard{mtx_};
    if (sys_ == nullptr)
      return {};
    if (head_)
      ask_admission(snap);
    else
      ask_supervisor(snap);
    return families_of(snap ? &*snap : nullptr, head_);
  }

private:
  void ask_admission(std::optional<actors::node_metrics>& snap) const {
    auto admission = caf::actor_cast<actors::admission_control_actor>(source_);
    if (!admission)
      return;
    caf::scoped_actor self{*sys_};
    self->request(admission, timeout_, actors::metrics_atom::value)
      .receive([&](actors::node_metrics& x) { snap = std::move(x); },
               [](caf::error&) {});
  }

  void ask_supervisor(std::optional<actors::node_metrics>& snap) const {
    auto supervisor = caf::actor_cast<actors::node_supervisor_actor>(source_);
    if (!supervisor)
      return;
    caf::scoped_actor self{*sys_};
    self->request(supervisor, timeout_, actors::metrics_atom::value)
      .receive(
        [&](std::vector<actors::device_metrics>& x) {
          snap.emplace();
          snap->devices = std::move(x);
        },
        [](caf::error&) {});
  }

  mutable std::shared_mutex mtx_;
  caf::actor_system* sys_ = nullptr;
  caf::actor_addr source_;
  bool head_ = true;
  caf::timespan timeout_{std::chrono::seconds{2}};
};

} // namespace

struct metrics_endpoint::impl {
  std::shared_ptr<event_metrics> events = std::make_shared<event_metrics>();
  std::shared_ptr<snapshot_collector> snapshots =
    std::make_shared<snapshot_collector>();
  std::unique_ptr<pm::Exposer> exposer;
  uint16_t port = 0;
};

caf::expected<std::unique_ptr<metrics_endpoint>>
metrics_endpoint::start(const std::string& host, uint16_t port) {
  auto x = std::make_unique<impl>();
  auto address = host.find(':') != std::string::npos && host.front() != '['
                   ? "[" + host + "]"
                   : host;
  address += ":" + std::to_string(port);
  try {
    x->exposer = std::make_unique<pm::Exposer>(address, 2);
  } catch (const std::exception& e) {
    return runtime::make_error(runtime::errc::invalid_request,
                               "metrics-listen: cannot listen on " + address
                                 + ": " + e.what());
  }
  auto ports = x->exposer->GetListeningPorts();
  if (ports.empty())
    return runtime::make_error(runtime::errc::invalid_request,
                               "metrics-listen: cannot listen on " + address);
  x->port = static_cast<uint16_t>(ports.front());
  x->exposer->RegisterCollectable(x->events->registry);
  x->exposer->RegisterCollectable(x->snapshots);
  return std::unique_ptr<metrics_endpoint>{new metrics_endpoint(std::move(x))};
}

metrics_endpoint::metrics_endpoint(std::unique_ptr<impl> x)
  : impl_(std::move(x)) {}

metrics_endpoint::~metrics_endpoint() {
  stop();
}

void metrics_endpoint::stop() {
  // The server first: no scrape asks admission after this.
  impl_->exposer.reset();
  impl_->snapshots->unwatch();
}

uint16_t metrics_endpoint::port() const noexcept {
  return impl_->port;
}

std::shared_ptr<actors::node_observer> metrics_endpoint::observer() const {
  return std::make_shared<counting_observer>(impl_->events);
}

std::shared_ptr<actors::transfers>
metrics_endpoint::counted(std::shared_ptr<actors::transfers> inner) const {
  if (!inner)
    return nullptr;
  return std::make_shared<counted_transfers>(std::move(inner), impl_->events);
}

void metrics_endpoint::watch(caf::actor_system& sys,
                             actors::admission_control_actor admission,
                             caf::timespan timeout) {
  impl_->snapshots->watch(sys, admission.address(), true, timeout);
}

void metrics_endpoint::watch(caf::actor_system& sys,
                             actors::node_supervisor_actor supervisor,
                             caf::timespan timeout) {
  impl_->snapshots->watch(sys, supervisor.address(), false, timeout);
}

void metrics_endpoint::unwatch() {
  impl_->snapshots->unwatch();
}

std::string metrics_endpoint::render() const {
  auto families = impl_->events->registry->Collect();
  for (auto& f : impl_->snapshots->Collect())
    families.push_back(std::move(f));
  return pm::TextSerializer{}.Serialize(families);
}

} // namespace vidnode::net
