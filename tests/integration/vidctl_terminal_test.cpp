/// vidctl on a terminal (a tmux window of the test's own) against a real
/// vidnode: the live progress bar of submit --wait, wait and watch, `vidctl
/// top`, the terminal given back however they end; and on a pipe, the same
/// commands printing what they printed before there was a bar.

#include <signal.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/node_process.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"
#include "support/tmux_session.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using test::node_process;
using test::shell_command;
using test::tmux_session;

namespace {

/// A node with two sim devices and no journal.
std::unique_ptr<node_process> start_node() {
  return std::make_unique<node_process>(
    std::vector<std::string>{"--devices", "sim:2", "--state-dir", "none"});
}

/// vidctl's command line against `node`, plus `args`.
std::vector<std::string> vidctl(const node_process& node,
                                std::vector<std::string> args) {
  std::vector<std::string> argv = {VIDCTL_BIN, "--connect", node.address};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

/// tmux, or nothing after saying why the test is skipped.
std::optional<std::string> tmux_or_skip() {
  auto tmux = test::find_tmux();
  if (tmux.empty()) {
    WARN("SKIPPED: tmux is not installed (scripts/setup.sh installs it)");
    return std::nullopt;
  }
  return tmux;
}

/// Whether a line of `screen` matches `pattern`.
bool has_line(const std::string& screen, const std::string& pattern) {
  std::regex re{pattern};
  std::istringstream lines{screen};
  for (std::string line; std::getline(lines, line);) {
    // capture-pane -J keeps the blanks a line ends with.
    line.erase(line.find_last_not_of(' ') + 1);
    if (std::regex_search(line, re))
      return true;
  }
  return false;
}

/// `argv` run on a terminal of its own: a tmux window `columns` x `rows`
/// whose shell runs `argv` between two `stty -g` and writes its exit status
/// to a file, then stays, so that the terminal can be looked at after it
/// (tmux 3.3 sometimes never learns the exit status of a pane's command).
/// Ctrl-C reaches `argv`, not the shell.
class terminal_run {
public:
  terminal_run(const std::string& tmux, const std::vector<std::string>& argv,
               int columns = 120, int rows = 40)
    : term(tmux,
           "stty -g > " + file("before") + "; trap true INT; "
             + shell_command(argv) + "; s=$?; stty -g > " + file("after")
             + "; echo $s > " + file("status") + "; exec sleep 600",
           columns, rows) {}

  /// Waits up to `timeout` for `argv` to end; its exit status ("0"), or
  /// empty if it has not ended.
  std::string await_status(std::chrono::milliseconds timeout) const {
    std::string status;
    term.await_screen(
      [&](const std::string&) {
        status = test::read_file(dir.path() + "/status");
        return !status.empty() && status.back() == '\n';
      },
      timeout);
    return status.empty() ? status : status.substr(0, status.size() - 1);
  }

  /// Whether the terminal's modes (stty -g) after `argv` are those before.
  bool modes_kept() const {
    auto before = test::read_file(dir.path() + "/before");
    return !before.empty() && test::read_file(dir.path() + "/after") == before;
  }

  test::temp_directory dir{"vidctl-terminal"};
  tmux_session term;

private:
  std::string file(const char* name) const {
    return test::shell_quote(dir.path() + "/" + name);
  }
};

/// The characters in `line` (UTF-8), as the cells it takes.
size_t cells(const std::string& line) {
  return static_cast<size_t>(std::count_if(
    line.begin(), line.end(), [](char c) { return (c & 0xc0) != 0x80; }));
}

/// The id a `submit` without --wait printed.
std::string submitted(const test::command_result& r) {
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out.substr(0, r.out.find('\n'));
}

} // namespace

TEST_CASE("on a terminal, submit --wait draws a progress bar of the job's "
          "steps, a line when it is retried, then prints its result",
          "[integration][terminal]") {
  auto tmux = tmux_or_skip();
  if (!tmux)
    return;
  auto node = start_node();
  terminal_run run{
    *tmux, vidctl(*node, {"submit", "--steps", "20", "--option", "step_ms=100",
                          "--option", "fault=oom@2", "--wait"})};
  auto& term = run.term;
  INFO(term.screen());
  // The second attempt's bar at step 3 or later, with its elapsed time, an
  // estimate, the device, node and attempt.
  CHECK(term.await_screen(
    [](const std::string& screen) {
      return has_line(screen, R"(^job 1  \S.*\S  ([3-9]|1[0-9])/20  elapsed )"
                              R"(\d+\.\ds  ETA \d+\.\ds  sim:[01] on \S+  )"
                              R"(attempt 2$)");
    },
    30s));
  CHECK(has_line(term.screen(),
                 R"(^job 1: attempt 1 \(sim:[01] on \S+\) failed after 1/20 )"
                 R"(steps: out_of_memory: .*; queued again for attempt 2)"));
  CHECK(run.await_status(30s) == "0");
  CHECK(run.modes_kept());
  auto screen = term.screen();
  INFO(screen);
  // The bar's last frame stays, the result follows it.
  CHECK(has_line(screen, R"(^job 1  \S.*\S  20/20  succeeded after \d+\.\ds  )"
                         R"(sim:[01] on \S+  attempt 2$)"));
  CHECK(screen.find("20/20  succeeded after")
        < screen.find("job 1: succeeded"));
  CHECK(has_line(screen, R"(^  device    sim:[01] on \S+, attempt 2$)"));
  CHECK(has_line(screen, R"(^  progress  20/20 steps$)"));
}

TEST_CASE("on a terminal, wait and watch draw the bar too, watch with a line "
          "for each change of state, and wait --max-wait still ends the wait",
          "[integration][terminal]") {
  auto tmux = tmux_or_skip();
  if (!tmux)
    return;
  auto node = start_node();
  auto id = submitted(node->vidctl({"submit", "--steps", "30", "--option",
                                    "step_ms=100", "--option", "load_ms=0"}));

  SECTION("watch") {
    terminal_run run{*tmux, vidctl(*node, {"watch", id})};
    auto& term = run.term;
    INFO(term.screen());
    CHECK(term.await_screen(
      [&](const std::string& screen) {
        return has_line(screen, "^job " + id + R"(  \S.*\S  \d+/30  elapsed )");
      },
      30s));
    CHECK(run.await_status(30s) == "0");
    auto screen = term.screen();
    INFO(screen);
    CHECK(has_line(screen, R"(Z  job )" + id
                             + R"(  running on sim:[01] \(attempt 1\)  step)"));
    CHECK(has_line(screen, R"(Z  job )" + id
                             + R"(  succeeded on sim:[01] \(attempt 1\)  )"
                               R"(step 30/30$)"));
    // No line per step: the steps are in the bar.
    CHECK_FALSE(has_line(screen, R"(Z  job .*  running .*step 20/30$)"));
    CHECK(has_line(screen, "^job " + id + ": succeeded$"));
  }
  SECTION("wait --max-wait") {
    terminal_run run{*tmux, vidctl(*node, {"wait", id, "--max-wait", "1s"})};
    CHECK(run.await_status(30s) == "1");
    auto screen = run.term.screen();
    INFO(screen);
    CHECK(has_line(screen, "^job " + id + R"(  \S.*\S  \d+/30  elapsed )"));
    CHECK(has_line(screen, "^job " + id + ": running$"));
  }
}

TEST_CASE("with NO_COLOR the bar has no colors; with TERM=dumb or --json "
          "there is no bar",
          "[integration][terminal]") {
  auto tmux = tmux_or_skip();
  if (!tmux)
    return;
  auto node = start_node();
  std::vector<std::string> job = {"submit",   "--steps",    "3",
                                  "--option", "step_ms=20", "--wait"};

  SECTION("NO_COLOR") {
    auto argv = vidctl(*node, job);
    argv.insert(argv.begin(), {"env", "NO_COLOR=1"});
    terminal_run run{*tmux, argv};
    CHECK(run.await_status(30s) == "0");
    auto screen = run.term.screen(true);
    INFO(screen);
    CHECK(has_line(screen, R"(^job 1  \S.*\S  3/3  succeeded after)"));
    CHECK(screen.find('\x1b') == std::string::npos);
  }
  SECTION("TERM=dumb") {
    auto argv = vidctl(*node, job);
    argv.insert(argv.begin(), {"env", "TERM=dumb"});
    terminal_run run{*tmux, argv};
    CHECK(run.await_status(30s) == "0");
    auto screen = run.term.screen(true);
    INFO(screen);
    CHECK(screen.rfind("job 1: succeeded\n", 0) == 0);
    CHECK(screen.find('\x1b') == std::string::npos);
  }
  SECTION("--json") {
    job.push_back("--json");
    terminal_run run{*tmux, vidctl(*node, job), 200, 40};
    CHECK(run.await_status(30s) == "0");
    auto screen = run.term.screen();
    INFO(screen);
    auto doc = nlohmann::json::parse(screen.substr(0, screen.find('\n')));
    CHECK(doc["state"] == "succeeded");
  }
}

TEST_CASE("on a pipe, submit --wait, wait and watch print what they printed "
          "before the progress bar, with no escape sequence",
          "[integration][terminal]") {
  auto node = start_node();
  auto done = node->vidctl(
    {"submit", "--steps", "3", "--option", "step_ms=20", "--wait"});
  INFO(done.err);
  CHECK(done.status == 0);
  CHECK(done.out.rfind("job 1: succeeded\n  model     sim (priority 5)\n", 0)
        == 0);
  CHECK(has_line(done.out, R"(^  progress  3/3 steps$)"));
  auto waited = node->vidctl({"wait", "1"});
  CHECK(waited.status == 0);
  CHECK(waited.out == done.out);

  auto id = submitted(node->vidctl({"submit", "--steps", "3", "--option",
                                    "step_ms=500", "--option", "load_ms=0"}));
  auto watched = node->vidctl({"watch", id});
  INFO(watched.out);
  CHECK(watched.status == 0);
  // Every step is a line of its own, as before.
  for (auto step : {"1/3", "2/3", "3/3"})
    CHECK(has_line(watched.out, R"(^\S+Z  job )" + id
                                  + R"(  running on sim:[01] \(attempt 1\)  )"
                                    "step "
                                  + step + "$"));
  CHECK(has_line(watched.out, "^job " + id + ": succeeded$"));
  for (const auto& out : {done.out, waited.out, watched.out}) {
    CHECK(out.find('\x1b') == std::string::npos);
    CHECK(out.find('\r') == std::string::npos);
  }
}

TEST_CASE("vidctl top shows the node's devices and a running job; q ends it "
          "with status 0 and gives the terminal back",
          "[integration][terminal]") {
  auto tmux = tmux_or_skip();
  if (!tmux)
    return;
  auto node = start_node();
  auto running = submitted(node->vidctl(
    {"submit", "--steps", "600", "--option", "step_ms=50", "--priority", "7"}));
  submitted(node->vidctl({"submit", "--steps", "5", "--option",
                          "fault=oom-always@1", "--option", "step_ms=1"}));
  terminal_run run{*tmux, vidctl(*node, {"top", "--interval", "200ms"})};
  auto& top = run.term;
  INFO(top.screen());
  CHECK(top.await_screen(
    [&](const std::string& screen) {
      return has_line(screen, R"(^\S+\s+sim:0\s+(busy|idle)\s+[01]/1 )")
             && has_line(screen, R"(^\S+\s+sim:1\s+(busy|idle)\s+[01]/1 )")
             && has_line(screen,
                         "busy .*  " + running + R"( \S.*\S [1-9]\d*/600 )")
             && has_line(screen, R"(^\d+\s+failed\s+sim\s+sim:[01] .*)"
                                 R"(out_of_memory)");
    },
    30s));
  CHECK(top.format("#{alternate_on} #{cursor_flag}") == "1 0");
  // A narrower window is drawn again at once, every line cut to it.
  top.resize(60, 30);
  CHECK(top.await_screen(
    [](const std::string& screen) {
      std::istringstream lines{screen};
      auto rows = 0;
      auto devices = 0;
      for (std::string line; std::getline(lines, line); ++rows) {
        line.erase(line.find_last_not_of(' ') + 1);
        if (cells(line) > 59)
          return false;
        devices += has_line(line, R"(^\S+\s+sim:[01]\s)") ? 1 : 0;
      }
      return rows == 30 && devices == 2;
    },
    10s));
  top.send_keys("q");
  CHECK(run.await_status(10s) == "0");
  CHECK(top.format("#{alternate_on} #{cursor_flag}") == "0 1");
  CHECK(run.modes_kept());
}

TEST_CASE("vidctl top says when the node is unreachable and keeps asking; "
          "Ctrl-C gives the terminal back",
          "[integration][terminal]") {
  auto tmux = tmux_or_skip();
  if (!tmux)
    return;
  auto node = start_node();
  terminal_run run{*tmux, vidctl(*node, {"top", "--interval", "200ms"})};
  auto& top = run.term;
  INFO(top.screen());
  REQUIRE(top.await_screen(
    [](const std::string& screen) { return has_line(screen, "sim:1"); }, 30s));
  node->process->signal(SIGKILL);
  CHECK(top.await_screen(
    [](const std::string& screen) {
      return has_line(screen, "^UNREACHABLE since .*, asking again every "
                              "200ms; below: what it said at ")
             && has_line(screen, "^  node_lost: ");
    },
    10s));
  CHECK(has_line(top.screen(), "sim:1"));
  CHECK(run.await_status(0ms).empty());
  top.send_keys("C-c");
  // Ended by SIGINT, as every vidctl command is.
  CHECK(run.await_status(10s) == std::to_string(128 + SIGINT));
  CHECK(top.format("#{alternate_on} #{cursor_flag}") == "0 1");
  CHECK(run.modes_kept());
}

TEST_CASE("vidctl top refuses a bad --interval, --json and a stdout that is "
          "not a terminal with usage errors",
          "[integration][terminal][cli]") {
  auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), {VIDCTL_BIN, "--connect", "127.0.0.1:1"});
    return test::run_command(args, 10s);
  };
  for (auto interval : {"0s", "50ms", "2h"}) {
    auto r = run({"top", "--interval", interval});
    INFO(r.err);
    CHECK(r.status == 2);
    CHECK(r.err
          == std::string{"vidctl: --interval: must be from 100ms to 1h, "
                         "got "}
               + interval + "\n");
  }
  auto bad = run({"top", "--interval", "1"});
  CHECK(bad.status == 2);
  CHECK_THAT(bad.err, Catch::Contains("--interval") && Catch::Contains("unit"));
  auto json = run({"--json", "top"});
  CHECK(json.status == 2);
  CHECK_THAT(json.err, Catch::StartsWith("vidctl: top: has no --json form"));
  auto piped = run({"top"});
  CHECK(piped.status == 2);
  CHECK_THAT(piped.err,
             Catch::StartsWith("vidctl: top: needs a terminal on stdout"));
}
