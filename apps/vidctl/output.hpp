#pragma once

/// @file
/// What vidctl prints on stdout and stderr, and the exit status each outcome
/// stands for (README, "vidctl").

#include <iostream>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <nlohmann/json.hpp>

#include "vidnode/net/client.hpp"
#include "vidnode/net/json.hpp"
#include "vidnode/runtime/protocol.hpp"

namespace vidnode::vidctl {

/// vidctl's exit statuses.
enum exit_status : int {
  exit_success = 0,
  /// The job ended but did not succeed (wait, watch, submit --wait).
  exit_not_succeeded = 1,
  /// Bad usage, found before anything was sent: a malformed value, or a
  /// download destination that cannot be written.
  exit_usage = 2,
  /// The node cannot be reached or was lost.
  exit_unreachable = 3,
  /// The node refused the request.
  exit_refused = 4,
  /// The downloaded video could not be written to its file here (a write
  /// failed, or the file appeared meanwhile); nothing is left of it.
  exit_local_file = 5,
};

/// Set by --json: results and errors are printed as JSON documents, one a
/// line.
extern bool json_output;

/// Prints `err`, an answer of the node or a lost connection, on stderr and
/// returns the exit status it stands for (3 or 4).
int fail(const caf::error& err);

/// As fail, for an error that came after the node accepted job `id`
/// (under `idempotency_key`): also says which job it was, so that the user
/// can find it rather than submit it again (with --json the document has
/// `id` and `idempotency_key` beside `error`).
int fail_after_accept(const caf::error& err, runtime::job_id id,
                      const std::string& idempotency_key);

/// Prints a local problem with the downloaded file (`detail`, which names
/// the file) on stderr and returns exit_local_file. With --json the
/// document is `{"error": {"code": "local_file", "message": ...}}`.
int fail_local_file(const std::string& detail);

/// Prints a job's result (a table, or its JSON document).
void print_result(const runtime::job_result& r);

/// Prints a job's result and returns 0 if it succeeded, else 1.
int finish_with(const runtime::job_result& r);

/// Prints one event of `watch` on stdout (a line, or its JSON document)
/// and flushes it.
void print_event(const runtime::job_event& e);

/// The line print_event prints without --json: "TIME  job ID  STATE on
/// DEVICE (attempt N)  step I/N  ERROR".
std::string event_line(const runtime::job_event& e);

/// How wait and watch ride out a lost connection to the node at
/// `options.host:options.port`: they connect again for up to
/// `options.request_timeout` (--timeout) after each loss (less if
/// --max-wait ends first), and say on stderr once when the connection is
/// lost and once when it is back: "vidctl: lost the connection to
/// HOST:PORT; reconnecting for up to 30s (--timeout)" and "vidctl:
/// reconnected to HOST:PORT". With --json each is a document:
/// `{"notice": "connection_lost", "address", "error", "reconnecting_for",
/// "limited_by"}` and `{"notice": "reconnected", "address"}`.
net::reconnect_policy reconnect_notices(const net::client::options& options);

/// Prints rows as left-aligned columns.
void print_table(const std::vector<std::vector<std::string>>& rows);

/// Prints `items` as one JSON array.
template <class T>
void print_json_array(const std::vector<T>& items) {
  auto array = nlohmann::json::array();
  for (const auto& x : items)
    array.push_back(net::to_json(x));
  std::cout << net::to_json_text(array) << "\n";
}

/// `x`, or "-" if it is empty.
std::string or_dash(const std::string& x);

/// The models a node serves, for a table: "sim,sim-*,tiny-t2v", cut after
/// about 40 characters with how many more there are ("a,b,+3").
std::string compact_models(const std::vector<std::string>& models);

} // namespace vidnode::vidctl
