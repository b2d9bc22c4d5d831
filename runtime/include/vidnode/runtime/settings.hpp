#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/timestamp.hpp>

namespace vidnode::runtime {

/// When a device worker dies: how fast it is restarted and when its device
/// is taken out of service (OTP-style intensity: more than `max_restarts`
/// failures of the device within `window` quarantine it). A death that a
/// job's own failure explains (its out-of-memory error, its crash) is
/// charged to that job and restarts the worker after `backoff`, without
/// counting against the device.
struct restart_policy {
  /// Device failures allowed within `window` before the device is
  /// quarantined.
  int32_t max_restarts = 5;
  /// The sliding window the restarts are counted in.
  caf::timespan window = std::chrono::seconds{60};
  /// Delay before the first restart in a window; doubles with each further
  /// restart in the window, up to `backoff_max`.
  caf::timespan backoff = std::chrono::milliseconds{100};
  caf::timespan backoff_max = std::chrono::seconds{10};
  /// How long a quarantined device stays out before it is probed: its worker
  /// is started again (if it had died) and it takes jobs on probation, where
  /// its first failure within `window` quarantines it again.
  caf::timespan quarantine_cooldown = std::chrono::minutes{5};
};

/// The documented bounds of node_settings' counts that `validate` checks
/// (each from 1 unless noted), for programs that read them to say so.
struct settings_limits {
  static constexpr int32_t max_concurrency = 64;
  static constexpr uint32_t max_queue_size = 10000000;
  static constexpr int32_t max_attempts = 100;
  /// From 0.
  static constexpr int32_t max_bypass = 100000;
  static constexpr int32_t max_webhook_attempts = 100;
  /// The least max_message_size. Below it some message vidnode must
  /// exchange may not fit: the largest job a client may submit
  /// (job_limits: about 290 KiB serialized, mostly 64 options of 4 KiB),
  /// and its ticket to a worker node, fit with room to spare; the other
  /// messages between nodes are far smaller.
  static constexpr uint64_t min_message_size = uint64_t{512} << 10;
  /// max_message_size must be below this (BASP's length field is 32 bits).
  static constexpr uint64_t message_size_bound = uint64_t{4} << 30;
};

/// The longest message a vidnode process accepts by default: 16 MiB.
constexpr uint64_t default_max_message_size = uint64_t{16} << 20;

/// Everything a node is configured with. Defaults are the documented ones
/// (README, "Settings"); `validate` checks a value set before a node starts.
struct node_settings {
  /// Shown in results and `vidctl nodes`; empty means the host name.
  std::string node_name;
  /// Where the admission actor is published.
  std::string listen_host = "127.0.0.1";
  /// TCP port; 0 picks a free one.
  uint16_t listen_port = 7447;
  /// Devices to serve: "auto", "cpu:N[:MEMORY]" or "sim:N[:MEMORY]".
  std::string devices = "auto";
  /// Jobs running at once on one device.
  int32_t max_concurrency = 1;
  /// Jobs waiting in the queue at most (running jobs not counted).
  uint32_t queue_size = 1024;
  /// Longest (and default) time a job may wait in the queue.
  caf::timespan queue_timeout = std::chrono::minutes{10};
  /// Longest (and default) time one attempt of a job may run.
  caf::timespan run_timeout = std::chrono::minutes{10};
  /// Attempts a job gets when its device fails under it (out of memory, a
  /// worker crash); the last failure's reason is the job's error.
  int32_t max_attempts = 2;
  /// How dead device workers are restarted.
  restart_policy restarts;
  /// A queued job gains one priority level per interval waited, so low
  /// priorities cannot starve forever.
  caf::timespan aging_interval = std::chrono::seconds{30};
  /// How long finished jobs' results are kept for status, wait and list.
  caf::timespan result_ttl = std::chrono::hours{1};
  /// At most this many finished results are kept (oldest dropped first).
  uint32_t max_results = 10000;
  /// How long a lost worker node stays in `vidctl nodes` (as lost, with
  /// when and why) before the head forgets it.
  caf::timespan lost_node_ttl = std::chrono::minutes{10};
  /// How long the head keeps the attempts of a worker node it cannot reach
  /// (its connection dropped, or the head restarted from its journal while
  /// they ran) for that node: if the node rejoins within it, its attempts
  /// carry on and their results count; past it they are queued again,
  /// charged. The node stops them itself once the grace less its own node
  /// timeout has passed, so an attempt never runs twice at once. Zero:
  /// queued again at once (fastest failover; a partitioned node's attempt
  /// may then run beside its retry, and only the first result counts).
  caf::timespan lease_grace = std::chrono::seconds{30};
  /// Whether worker nodes may join (the head opened its cluster port,
  /// `--cluster-listen`). Without, a job that none of the node's own
  /// devices can run is refused at once instead of queued for a node that
  /// could never come.
  bool accepts_worker_nodes = false;
  /// Run device workers of sim devices on their own threads, like real
  /// devices (sim pipelines never block, so by default they share the pool).
  bool detach_sim_workers = false;
  /// While the next job waits for memory or a slot on the devices that can
  /// run it, jobs behind it that fit now may start first: at most this many
  /// on devices it could run on over its whole wait (those on devices it
  /// cannot run on delay it in nothing and are not counted; 0: strictly in
  /// order).
  int32_t max_bypass = 16;
  /// Whether a gang (a job of several ranks) may be spread over several
  /// nodes when no one node has enough free devices. Off: every gang runs
  /// on one node, and one larger than every node is refused (too_large).
  /// A head's setting.
  bool gang_across_nodes = false;
  /// The address other nodes reach this one at for a gang's collectives
  /// (rank 0's rendezvous: Gloo's store, then the ranks' own connections).
  /// A worker node's setting; 127.0.0.1 serves gangs within one machine.
  std::string collective_host = "127.0.0.1";
  /// Longest wait for every rank of a gang to join its collectives, for
  /// one collective to make progress, and for a rank that the others wait
  /// for to finish its step: a rank that never comes, or hangs, fails the
  /// attempt instead of hanging it (1s to 1h).
  caf::timespan gang_timeout = std::chrono::seconds{60};
  /// Added to a job shape's measured peak memory to make its next estimate
  /// (0.1 = 10%).
  double memory_headroom = 0.10;
  /// After an out-of-memory failure, the job's reservation is multiplied by
  /// this for its retry (and for later jobs of its shape).
  double oom_estimate_growth = 1.5;
  /// Memory kept out of each CUDA device's budget (a device may take jobs
  /// up to its free memory at start, less this, less its loaded models).
  uint64_t cuda_reserve_bytes = 2ull << 30;
  /// Where finished videos are written (created if missing), as
  /// `job-ID.mp4`.
  std::string output_dir = "/tmp/vidnode-output";
  /// Where a head keeps its journal (actors/journal_store.hpp): every job
  /// it accepted, so that a head restarted after a crash resumes them.
  /// Empty: no journal, jobs live in memory only. (`vidnode --state-dir`
  /// has a default directory: README, "The journal".)
  std::string state_dir;
  /// How journal commits reach the disk: "full" (each is fsynced before the
  /// jobs in it are acknowledged) or "normal" (fsynced at checkpoints: a
  /// crash of the process loses nothing, a power failure may lose the
  /// latest commits).
  std::string journal_sync = "full";
  /// Weights file of the built-in tiny-t2v model; empty: fixed-seed weights.
  std::string tiny_t2v_weights;
  /// Tries a webhook gets in all (a failed try, any answer but 2xx, is
  /// repeated `webhook_retry_delay` later).
  int32_t webhook_attempts = 5;
  /// Time between two tries of a webhook.
  caf::timespan webhook_retry_delay = std::chrono::seconds{10};
  /// When the node stops: how long videos being written or uploaded and
  /// webhooks still being delivered may take before they are aborted
  /// (queued and running jobs are cancelled at once).
  caf::timespan shutdown_grace = std::chrono::seconds{20};
  /// Models loaded on start, before the node reports ready: each
  /// `MODEL[@DEVICES]` (`--preload`; actors/preload.hpp says what DEVICES
  /// may be and which errors a node refuses to start with). A worker that
  /// restarts after a crash loads them again in the background.
  std::vector<std::string> preload;
  /// Longest time one preload may take before the node gives up on it (at
  /// start: the node does not start; after a restart: logged).
  caf::timespan preload_timeout = std::chrono::minutes{10};
  /// Users' TorchScript models served by name: (name, path). Checked
  /// against the contract when the node starts.
  std::vector<std::pair<std::string, std::string>> torchscript_models;
  /// The longest message, in bytes, this node's process accepts
  /// (--max-message-size). It must equal what the process's middleman
  /// enforces (net::process_config::max_message_size, net::load_middleman):
  /// the node asks its peers for chunks of files that fit in it
  /// (chunk_bytes_within in protocol.hpp), and nothing checks that the two
  /// agree.
  uint64_t max_message_size = default_max_message_size;
};

/// Why `name` cannot be a node's name (1 to 64 letters, digits and - _ .),
/// or nothing.
std::optional<std::string> invalid_node_name(const std::string& name);

/// Checks every value of `settings`; returns errc::invalid_request naming
/// the setting and the reason, or none.
caf::error validate(const node_settings& settings);

} // namespace vidnode::runtime
