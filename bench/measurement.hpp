#pragma once

/// @file
/// What every vidnode benchmark shares: the scheduler configurations it
/// compares, latency statistics, markdown tables, the summary rows that
/// scripts/bench.sh collects, and the process's memory. Header-only; each
/// benchmark is one executable.

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/config_value.hpp>

#include "vidnode/net/process_config.hpp"

namespace vidnode::bench {

using clock_type = std::chrono::steady_clock;

// -- scale ---------------------------------------------------------------

/// The factor every benchmark multiplies its iteration counts by: the first
/// command-line argument if given, else the environment variable
/// VIDNODE_BENCH_SCALE, else 1. Values outside (0, 100] fall back to 1.
inline double scale(int argc, char** argv) {
  const char* text = argc > 1 ? argv[1] : std::getenv("VIDNODE_BENCH_SCALE");
  if (text == nullptr)
    return 1.0;
  char* end = nullptr;
  auto value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(value > 0.0) || value > 100.0)
    return 1.0;
  return value;
}

/// `count` times `factor`, at least `minimum`.
inline size_t scaled(size_t count, double factor, size_t minimum = 1) {
  auto result = static_cast<size_t>(static_cast<double>(count) * factor);
  return std::max(result, minimum);
}

// -- scheduler configurations --------------------------------------------

/// One way of configuring CAF's scheduler. Each needs a fresh actor_system:
/// the scheduler is fixed when the system is created.
struct scheduler_choice {
  /// Shown in tables.
  std::string name;
  /// Sets the choice's options on a config before the system exists.
  std::function<void(caf::actor_system_config&)> apply;
};

/// The configurations the benchmarks compare: vidnode's default (what
/// `vidnode` runs with, net::process_config), CAF's default work stealing,
/// work sharing with CAF's default thread count, and work stealing that
/// polls 100,000 times before it backs off into sleeps.
inline std::vector<scheduler_choice> scheduler_choices() {
  return {
    {"vidnode default (sharing, 1 thread per core)",
     [](caf::actor_system_config& cfg) {
       net::process_config::apply_default_scheduler(cfg);
     }},
    {"CAF default (stealing)", [](caf::actor_system_config&) {}},
    {"sharing, CAF's thread count",
     [](caf::actor_system_config& cfg) {
       cfg.set("scheduler.policy", caf::atom("sharing"));
     }},
    {"stealing, aggressive-poll-attempts=100000",
     [](caf::actor_system_config& cfg) {
       cfg.set("work-stealing.aggressive-poll-attempts",
               caf::config_value::integer{100000});
     }},
  };
}

// -- latency -------------------------------------------------------------

/// Percentiles of a set of latencies, in microseconds.
struct latency_summary {
  size_t samples = 0;
  double p50_us = 0;
  double p99_us = 0;
  double mean_us = 0;
  double max_us = 0;
};

/// Summarises `nanos` (sorted in place). Percentile p is the sample at rank
/// ceil(p * n) (nearest rank); an empty input gives all zeros.
inline latency_summary summarize(std::vector<int64_t>& nanos) {
  latency_summary result;
  if (nanos.empty())
    return result;
  std::sort(nanos.begin(), nanos.end());
  auto rank = [&](double p) {
    auto n = nanos.size();
    auto i = static_cast<size_t>(p * static_cast<double>(n) + 0.999999);
    return static_cast<double>(nanos[std::min(n, std::max<size_t>(i, 1)) - 1])
           / 1000.0;
  };
  double sum = 0;
  for (auto x : nanos)
    sum += static_cast<double>(x);
  result.samples = nanos.size();
  result.p50_us = rank(0.50);
  result.p99_us = rank(0.99);
  result.mean_us = sum / static_cast<double>(nanos.size()) / 1000.0;
  result.max_us = static_cast<double>(nanos.back()) / 1000.0;
  return result;
}

/// Nanoseconds from `from` to `to`.
inline int64_t nanos_between(clock_type::time_point from,
                             clock_type::time_point to) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(to - from)
    .count();
}

// -- formatting ------------------------------------------------------------

/// `x` with `digits` digits after the point.
inline std::string fixed(double x, int digits = 1) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << x;
  return out.str();
}

/// `x` with thousands separated by commas ("1,234,567").
inline std::string grouped(double x) {
  auto digits = std::to_string(static_cast<long long>(x + 0.5));
  std::string result;
  auto n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    result += digits[i];
    auto left = n - i - 1;
    if (left > 0 && left % 3 == 0 && digits[i] != '-')
      result += ',';
  }
  return result;
}

/// "yes" or "NO".
inline const char* verdict(bool met) {
  return met ? "yes" : "NO";
}

/// A markdown table, printed with `print`.
class markdown_table {
public:
  /// A table with these column headers.
  explicit markdown_table(std::vector<std::string> headers)
    : headers_(std::move(headers)) {}

  /// Adds a row; it should have as many cells as there are headers.
  void add(std::vector<std::string> row) {
    rows_.push_back(std::move(row));
  }

  /// Prints the title as a heading, then the table, then a blank line.
  void print(const std::string& title, std::ostream& out = std::cout) const {
    out << "### " << title << "\n\n";
    print_row(out, headers_);
    std::vector<std::string> rule(headers_.size(), "---");
    print_row(out, rule);
    for (const auto& row : rows_)
      print_row(out, row);
    out << '\n' << std::flush;
  }

private:
  static void print_row(std::ostream& out,
                        const std::vector<std::string>& cells) {
    out << '|';
    for (const auto& cell : cells)
      out << ' ' << cell << " |";
    out << '\n';
  }

  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

/// A node's round trips against bare CAF's in one scheduler configuration,
/// from a scoped_actor and from an event-based client actor.
struct latency_comparison {
  std::string scheduler;
  latency_summary bare_scoped;
  latency_summary bare_actor;
  latency_summary node_scoped;
  latency_summary node_actor;

  double bare_p50() const {
    return std::min(bare_scoped.p50_us, bare_actor.p50_us);
  }

  double node_p50() const {
    return std::min(node_scoped.p50_us, node_actor.p50_us);
  }

  /// The node's fastest p50 over the fastest bare p50: the judged ratio.
  double ratio() const {
    return node_p50() / bare_p50();
  }
};

/// Prints one row per configuration and client: p50 and p99 of both sides,
/// the ratio to the same kind of client, and the judged ratio to the
/// fastest bare p50 against `target_ratio`.
template <class Comparison>
void print_latency_table(const std::vector<Comparison>& outcomes,
                         double target_ratio, const std::string& title) {
  markdown_table table{{"scheduler", "client", "bare p50 us", "bare p99 us",
                        "vidnode p50 us", "vidnode p99 us",
                        "vidnode p50 / same-client bare p50",
                        "vidnode p50 / fastest bare p50",
                        "met? (<= " + fixed(target_ratio, 0) + "x)"}};
  for (const latency_comparison& x : outcomes) {
    auto row = [&](const char* client, const latency_summary& bare,
                   const latency_summary& node) {
      auto ratio = node.p50_us / x.bare_p50();
      table.add({x.scheduler, client, fixed(bare.p50_us), fixed(bare.p99_us),
                 fixed(node.p50_us), fixed(node.p99_us),
                 fixed(node.p50_us / bare.p50_us, 2) + "x",
                 fixed(ratio, 2) + "x", verdict(ratio <= target_ratio)});
    };
    row("scoped_actor", x.bare_scoped, x.node_scoped);
    row("event-based actor", x.bare_actor, x.node_actor);
  }
  table.print(title);
}

/// One row of the final summary table of scripts/bench.sh.
struct summary_row {
  std::string benchmark;
  std::string measured;
  std::string baseline;
  std::string ratio;
  std::string target;
  bool met = false;
};

/// Appends `row` as a markdown row to the file named by the environment
/// variable VIDNODE_BENCH_SUMMARY (scripts/bench.sh sets it); does nothing
/// when the variable is not set.
inline void record_summary(const summary_row& row) {
  const char* path = std::getenv("VIDNODE_BENCH_SUMMARY");
  if (path == nullptr || *path == '\0')
    return;
  std::ofstream out{path, std::ios::app};
  out << "| " << row.benchmark << " | " << row.measured << " | " << row.baseline
      << " | " << row.ratio << " | " << row.target << " | " << verdict(row.met)
      << " |\n";
}

// -- the process -------------------------------------------------------------

/// Resident memory of this process in bytes (from /proc/self/statm).
inline uint64_t resident_bytes() {
  std::ifstream in{"/proc/self/statm"};
  uint64_t pages = 0;
  uint64_t resident = 0;
  in >> pages >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

/// Bytes the heap has handed out and not taken back, over all malloc arenas
/// (glibc's mallinfo2).
inline uint64_t heap_in_use_bytes() {
  auto info = mallinfo2();
  return static_cast<uint64_t>(info.uordblks)
         + static_cast<uint64_t>(info.hblkhd);
}

/// Bounds a teardown that could hang (an actor_system destructor waiting for
/// an actor that did not end, see CAF.md): once armed, if it is not
/// destroyed within the limit, it calls `on_expiry` (which should print the
/// results measured so far) on its own thread and ends the process with
/// std::quick_exit(0). Declare it before the actor systems it guards, so it
/// is destroyed after them.
class teardown_watchdog {
public:
  /// A watchdog that does nothing until armed.
  explicit teardown_watchdog(std::function<void()> on_expiry)
    : on_expiry_(std::move(on_expiry)) {}

  teardown_watchdog(const teardown_watchdog&) = delete;
  teardown_watchdog& operator=(const teardown_watchdog&) = delete;

  /// Disarms the watchdog and waits for its thread.
  ~teardown_watchdog() {
    {
      std::lock_guard<std::mutex> guard{lock_};
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
      thread_.join();
  }

  /// Starts the countdown; call at most once.
  void arm(std::chrono::seconds limit) {
    thread_ = std::thread{[this, limit] {
      std::unique_lock<std::mutex> guard{lock_};
      if (cv_.wait_for(guard, limit, [this] { return done_; }))
        return;
      std::cerr << "watchdog: teardown took longer than " << limit.count()
                << " s; printing the results measured so far and exiting\n";
      on_expiry_();
      std::cout.flush();
      std::quick_exit(0);
    }};
  }

private:
  std::function<void()> on_expiry_;
  std::mutex lock_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

/// Hardware threads of this machine.
inline unsigned hardware_threads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

} // namespace vidnode::bench
