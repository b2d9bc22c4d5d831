#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "vidnode/net/process_config.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::net {

/// How client::fetch_output reads a video.
struct fetch_options {
  /// Bytes asked for per read, cut to what fits in a message the client
  /// accepts (runtime::chunk_bytes_within(options::max_message_size)).
  uint32_t chunk_bytes = runtime::default_chunk_bytes;
  /// Reads in flight at once (at least 1): the most chunks held in memory.
  uint32_t window = 2;
};

/// A blocking client of a remote vidnode, for programs that do not speak
/// CAF (vidctl is one). It owns its own actor_system.
///
/// Every call returns a value or a typed error: vidnode's refusals
/// (runtime::errc), `node_lost` when the connection dropped, the node
/// stopped answering within the request timeout or the actor published
/// there has ended, or CAF's connection errors.
/// No call blocks forever: waits on a job are split into polls of
/// `poll_interval`, so a node that hangs is noticed too.
///
/// Thread-safety: calls may come from several threads at once.
class client {
public:
  /// How to reach the node and how long to wait for it.
  struct options {
    std::string host = "127.0.0.1";
    uint16_t port = 7447;
    /// Longest time to connect (including CAF's handshake).
    caf::timespan connect_timeout = std::chrono::seconds{5};
    /// Longest time for any single reply.
    caf::timespan request_timeout = std::chrono::seconds{30};
    /// Longest single wait the node is asked for; longer waits repeat it.
    caf::timespan poll_interval = std::chrono::seconds{5};
    /// Longest message accepted from the node, in bytes (a `list` of many
    /// jobs with long prompts can be large); a longer one closes the
    /// connection.
    size_t max_message_size = size_t{1} << 30;
    /// How often heartbeats are sent to the node (process_config::heartbeat).
    caf::timespan heartbeat_interval =
      process_config::default_heartbeat_interval;
    /// How long the node may stay silent before the connection counts as
    /// lost (node_lost), also while a reply or a long poll is awaited.
    caf::timespan node_timeout = process_config::default_node_timeout;
    /// Mutual TLS with these files (see net/tls.hpp); none: plain TCP.
    tls_files tls;
  };

  /// Connects to the node at `opts.host:opts.port` and checks that it speaks
  /// vidnode's protocol. Bad heartbeat settings or TLS files (see
  /// process_config::check_heartbeat and check_tls_files) are refused with
  /// invalid_request before anything is started. Fails with node_lost when
  /// the node cannot be reached, does not answer the handshake within
  /// `opts.node_timeout` (it is hung; CAF drops an attempt that got no
  /// answer by the next heartbeat, and connect tries again until then), or
  /// closes the connection during the handshake (TLS at one end only, or a
  /// certificate the other end does not trust, which the error says); in
  /// any case within `opts.connect_timeout`.
  static caf::expected<std::unique_ptr<client>> connect(const options& opts);

  /// Closes the connection.
  ~client();

  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Submits a job; its id, or the refusal.
  caf::expected<runtime::job_id> submit(const runtime::job_spec& spec);

  /// Where a job stands now.
  caf::expected<runtime::job_result> status(runtime::job_id id);

  /// Waits until the job has ended, or at most `max_wait` (zero: no limit),
  /// and returns its result (not terminal if `max_wait` ran out).
  caf::expected<runtime::job_result>
  wait(runtime::job_id id, caf::timespan max_wait = caf::timespan{0});

  /// Like wait, but calls `on_event` with every event of the job until it
  /// has ended: first with the job's state when the watch began (the
  /// subscription's answer, its `at` set to now), then with every later
  /// event in the order the node sent them; all from one CAF thread, one
  /// call at a time, and none after watch has returned. If the node goes
  /// away after the job's last event arrived but before the wait returned,
  /// the result is built from that event. `max_wait` bounds the wait as for
  /// wait (zero: no limit); when it runs out the result is not terminal.
  caf::expected<runtime::job_result>
  watch(runtime::job_id id,
        std::function<void(const runtime::job_event&)> on_event,
        caf::timespan max_wait = caf::timespan{0});

  /// Cancels a job; returns its result (already ended jobs unchanged).
  caf::expected<runtime::job_result> cancel(runtime::job_id id);

  /// Queues a failed or timed-out job again under its id; returns its
  /// result, queued (see `retry` in runtime/protocol.hpp for the refusals).
  caf::expected<runtime::job_result> retry(runtime::job_id id);

  /// The jobs the node knows (see runtime::list_query).
  caf::expected<std::vector<runtime::job_result>>
  list(const runtime::list_query& query);

  /// The devices of the node.
  caf::expected<std::vector<runtime::device_status>> nodes();

  /// Told how far a download got: bytes written so far, of the file's size.
  /// Called on the caller's thread after each chunk.
  using progress_function =
    std::function<void(uint64_t written, uint64_t size)>;

  /// Receives a download's bytes in order, one chunk per call, on the
  /// caller's thread; an error stops the download, which then returns it.
  using chunk_sink = std::function<caf::error(const std::vector<uint8_t>&)>;

  /// Downloads job `id`'s video (see `read_output` in runtime/protocol.hpp)
  /// from the node that holds it, through the node this client talks to,
  /// handing every byte to `sink` in order. Memory: at most
  /// `options.window` chunks. Each read waits at most the request timeout.
  /// Returns the size of the file.
  ///
  /// Errors: those of read_output (unknown_job, no_output,
  /// output_unavailable...); node_lost as for every call; output_unavailable
  /// when the file changed size during the download; the sink's error
  /// unchanged.
  caf::expected<uint64_t> fetch_output(runtime::job_id id,
                                       const chunk_sink& sink,
                                       progress_function progress = nullptr,
                                       fetch_options options = {});

  /// Downloads job `id`'s video as above into `path` through a
  /// net::download_file: a temporary file created exclusively beside it
  /// (never a file that was there, never through a link), renamed over
  /// `path` once every byte arrived, replacing a regular file or link
  /// there; on any failure the temporary file is removed and `path` is
  /// left alone. Errors: as above, and invalid_request when `path` cannot
  /// be written (a directory, a missing directory, a full disk; the
  /// context names the path and the cause).
  caf::expected<uint64_t> fetch_output(runtime::job_id id,
                                       const std::string& path,
                                       progress_function progress = nullptr,
                                       fetch_options options = {});

  /// Sets how long each later call waits for a reply (see
  /// options::request_timeout).
  void request_timeout(caf::timespan timeout) noexcept {
    opts_.request_timeout = timeout;
  }

  /// The admission actor's handle, for callers that speak CAF.
  const runtime::admission_actor& admission() const noexcept {
    return admission_;
  }

private:
  explicit client(const options& opts);

  /// Sets the message limit and connect timeout of `opts` in `cfg` before
  /// the actor system reads it.
  static process_config& configure(process_config& cfg, const options& opts);

  /// Sends one request; the future holds its answer, or node_lost when the
  /// connection dropped or no answer came within `timeout`.
  template <class T, class... Ts>
  std::future<caf::expected<T>> start_call(caf::timespan timeout, Ts... xs);

  template <class T, class... Ts>
  caf::expected<T> call(caf::timespan timeout, Ts... xs);

  options opts_;
  process_config cfg_;
  caf::actor_system sys_;
  runtime::admission_actor admission_;
};

/// A submission's outcome: the job's id and the connection it was made on.
struct submission {
  std::unique_ptr<client> connection;
  runtime::job_id id;
};

/// Connects to the node and submits `spec`; when the connection drops or the
/// reply does not come, connects again and submits again (after 50 ms,
/// doubling up to 1 s) until `deadline`. A node that cannot be reached at
/// the first try is reported at once. Safe to retry: if
/// `spec.idempotency_key` is empty it is set to a fresh random key
/// ("auto-" and 32 hex digits) first, so every attempt names the same job
/// and the node makes at most one. Each attempt connects within
/// `opts.connect_timeout` and waits `opts.request_timeout` for the reply,
/// both cut to what is left before `deadline`. Returns the id, or
/// the last error (node_lost once the deadline has passed; a refusal at
/// once).
/// `on_retry`, if set, is called with the error of each attempt that is
/// retried.
caf::expected<submission> submit_with_retries(
  client::options opts, runtime::job_spec& spec,
  std::chrono::steady_clock::time_point deadline,
  const std::function<void(const caf::error&)>& on_retry = nullptr);

/// How wait_with_reconnect and watch_with_reconnect ride out a lost
/// connection (the node restarted, or stopped answering), and whom they
/// tell.
struct reconnect_policy {
  /// How long to keep connecting again after a loss, counted from when the
  /// loss was noticed (at once for a node that exited; within
  /// client::options::node_timeout for one that hangs). Every loss gets the
  /// whole span again.
  caf::timespan outage_limit = std::chrono::seconds{30};
  /// Pause before the first attempt after a loss; it doubles after every
  /// failed attempt, up to `max_pause`.
  caf::timespan first_pause = std::chrono::milliseconds{50};
  caf::timespan max_pause = std::chrono::seconds{1};
  /// Called once per loss, on the caller's thread, before the first
  /// attempt: the error that ended the connection (node_lost) and when the
  /// attempts stop.
  std::function<void(const caf::error& cause,
                     std::chrono::steady_clock::time_point until)>
    on_lost;
  /// Called once per loss, on the caller's thread, when a new connection is
  /// made (before the job is asked about again).
  std::function<void()> on_reconnected;
};

/// A job's answer at the end of a wait, and the connection it came on: the
/// one given, or a new one if the connection was lost on the way (a
/// download of the job's video can use it).
struct job_outcome {
  std::unique_ptr<client> connection;
  runtime::job_result result;
};

/// Waits for job `id` like client::wait, on `connection` (none: connects
/// with `opts` first, and a node that cannot be reached then is reported at
/// once), and rides out lost connections: when a call fails with node_lost
/// it connects again with `opts` (each attempt within
/// `opts.connect_timeout`, cut to what is left) after the pauses of
/// `policy`, until `policy.outage_limit` after the loss or `deadline`,
/// whichever comes first, and waits again.
///
/// Returns the job's result once it has ended, or at `deadline`
/// (time_point::max(): no limit) the latest result, which is then not
/// terminal. Errors: node_lost when no connection could be made again in
/// time (its context names the address, the time tried and the last
/// attempt's error); the node's answer unchanged otherwise, e.g.
/// unknown_job from a node that restarted without its journal, or
/// invalid_request from one that speaks another version of the protocol.
///
/// Not guaranteed: that the job a restarted node answers for under `id` is
/// the one waited for if the node lost its journal and has given the id to
/// a new job since.
caf::expected<job_outcome>
wait_with_reconnect(const client::options& opts,
                    std::unique_ptr<client> connection, runtime::job_id id,
                    std::chrono::steady_clock::time_point deadline,
                    const reconnect_policy& policy);

/// Watches job `id` like client::watch, on `connection` (none: connects
/// with `opts` first, and a node that cannot be reached then is reported at
/// once), and rides out lost connections as wait_with_reconnect does,
/// subscribing again after each new connection. A new subscription's first
/// event is the job's state at that moment: it is passed to `on_event` only if
/// it differs from the last event passed (in state, step, steps or attempt), so
/// the state a lost connection left off at is not passed twice (a job the node
/// runs again passes its steps again, under a new attempt if the node counts
/// it). `on_event` is called one call at a time, in the order the node sent
/// the events, from a CAF thread, never after this returns.
///
/// Returns the job's result once it has ended, or at `deadline`
/// (time_point::max(): no limit) the latest result, which is then not
/// terminal; as for wait_with_reconnect, `deadline` also ends the attempts
/// to connect again. Errors as for wait_with_reconnect.
caf::expected<job_outcome> watch_with_reconnect(
  const client::options& opts, std::unique_ptr<client> connection,
  runtime::job_id id,
  const std::function<void(const runtime::job_event&)>& on_event,
  const reconnect_policy& policy,
  std::chrono::steady_clock::time_point deadline =
    std::chrono::steady_clock::time_point::max());

/// A fresh random idempotency key: "auto-" and 32 hex digits (128 bits from
/// std::random_device).
std::string make_idempotency_key();

/// Splits "HOST:PORT" (or ":PORT", or "PORT") into its parts; false if the
/// port is missing or not 0-65535.
bool parse_endpoint(const std::string& text, std::string& host, uint16_t& port);

} // namespace vidnode::net
