#pragma once

/// @file
/// A vidnode cluster made of real processes on this machine, for
/// integration tests and benchmarks: a head (`vidnode` with --listen and
/// --cluster-listen) and worker nodes (`vidnode --join`), each a
/// child_process that is killed (SIGKILL) and reaped when its object goes,
/// and a temporary directory for their outputs, removed with the cluster.
///
/// Needs no test framework: a process that does not start throws
/// std::runtime_error carrying what it wrote on stderr. The programs' paths
/// are given, not compiled in.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/temp_directory.hpp"

namespace vidnode::test {

/// The programs a cluster runs.
struct cluster_programs {
  std::string vidnode;
  std::string vidctl;
};

/// How long a vidnode process may take to print its ready line.
inline constexpr std::chrono::seconds process_start_timeout{15};

/// `count` distinct TCP ports of 127.0.0.1 that were free a moment ago (all
/// bound to port 0 at once, then closed): for a process that must be started
/// again on the same ports. Not a reservation: another process may take one
/// before the caller binds it.
std::vector<uint16_t> free_loopback_ports(size_t count);

/// A head node: admission and the published gateway and registry, started
/// with `--devices none` unless `args` says otherwise.
class head_process {
public:
  struct options {
    /// vidnode arguments beyond the addresses (--devices none is added
    /// unless --devices is given).
    std::vector<std::string> args;
    /// Where clients connect; port 0 picks a free one.
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    /// Where worker nodes join; port 0 picks a free one.
    std::string cluster_host = "127.0.0.1";
    uint16_t cluster_port = 0;
    /// vidctl arguments put before every command (e.g. --heartbeat).
    std::vector<std::string> vidctl_args;
    /// --log-level of the process.
    std::string log_level = "warn";
  };

  /// Starts the head and waits until it printed both ready lines ("vidnode
  /// listening on ..." and "vidnode accepting worker nodes on ..."); throws
  /// std::runtime_error if it did not within process_start_timeout.
  head_process(cluster_programs programs, options opts);

  /// The client port and the cluster port it listens on.
  uint16_t port() const noexcept {
    return port_;
  }
  uint16_t cluster_port() const noexcept {
    return cluster_port_;
  }

  /// HOST:PORT for `vidctl --connect`.
  std::string address() const;

  /// HOST:PORT for `vidnode --join`.
  std::string cluster_address() const;

  /// Runs vidctl against the head (killed after `timeout`, status -1).
  command_result
  vidctl(std::vector<std::string> args,
         std::chrono::milliseconds timeout = std::chrono::seconds{30}) const;

  /// Runs vidctl with --json and parses its stdout; throws
  /// std::runtime_error, with vidctl's stderr, if it did not exit 0.
  nlohmann::json vidctl_json(std::vector<std::string> args) const;

  /// Sends SIGTERM and waits up to `timeout` for the exit; the exit status,
  /// or nothing if it still runs.
  std::optional<int> stop(std::chrono::milliseconds timeout);

  child_process& process() noexcept {
    return *process_;
  }

private:
  cluster_programs programs_;
  options opts_;
  std::unique_ptr<child_process> process_;
  uint16_t port_ = 0;
  uint16_t cluster_port_ = 0;
};

/// A worker node: `vidnode --join`, optionally run through a wrapper
/// command (`ip netns exec NS`).
class worker_process {
public:
  struct options {
    /// HOST:PORT of the head's cluster port.
    std::string join;
    /// --node-name.
    std::string name;
    std::string devices = "sim:2";
    /// Further vidnode arguments.
    std::vector<std::string> args;
    /// A command that runs vidnode (e.g. {"ip", "netns", "exec", "ns1"});
    /// its first word must be an absolute path or found on PATH by the
    /// caller.
    std::vector<std::string> wrapper;
    std::string log_level = "warn";
  };

  /// Starts the worker; does not wait for it to join (see await_joins).
  worker_process(cluster_programs programs, options opts);

  /// Times it has printed "vidnode joined HOST:PORT as NAME" so far (reads
  /// what it wrote without waiting).
  int joins();

  /// Waits until it has printed the joined line `count` times in all; false
  /// if that did not happen within `timeout` or the process closed its
  /// stdout (exited).
  bool await_joins(int count, std::chrono::milliseconds timeout);

  /// Reads what the process wrote so far, without waiting, so that its
  /// pipes never fill up.
  void pump();

  const std::string& name() const noexcept {
    return opts_.name;
  }

  child_process& process() noexcept {
    return *process_;
  }

private:
  void count_lines();

  options opts_;
  std::unique_ptr<child_process> process_;
  int joins_ = 0;
  std::string joined_line_;
};

/// Where a device stands in `vidctl nodes --json` output: the entries of
/// node `node` (every node if empty) whose state is one of `states`.
size_t count_devices(const nlohmann::json& nodes, const std::string& node,
                     const std::vector<std::string>& states);

/// When a vidnode process logged the first line of `log` (its stderr) that
/// contains `needle`: spdlog prefixes each line with "[2026-12-01
/// 05:55:55.212]", in local time. Nothing if no line contains it.
std::optional<std::chrono::system_clock::time_point>
logged_at(const std::string& log, const std::string& needle);

/// Calls `probe` until it returns true or `timeout` has passed (each call
/// runs a vidctl or reads output, which paces the loop); calls `between`
/// after every failed probe (to pump processes). True if `probe` did.
bool poll_until(const std::function<bool()>& probe,
                std::chrono::milliseconds timeout,
                const std::function<void()>& between = nullptr);

/// A time vidctl printed ("2026-11-26T23:08:24.719Z"); throws
/// std::runtime_error for anything else.
std::chrono::system_clock::time_point parse_time(const std::string& text);

/// The time in field `field` of a job result vidctl printed as JSON.
std::chrono::system_clock::time_point time_of(const nlohmann::json& result,
                                              const char* field);

} // namespace vidnode::test
