/// End-to-end tests of the head's journal: real `vidnode` processes on
/// 127.0.0.1 with a --state-dir, killed with SIGKILL and started again on
/// the same directory; real `vidctl` processes as clients.

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/node_process.hpp"
#include "support/process.hpp"
#include "support/process_stats.hpp"
#include "support/temp_directory.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::child_process;
using test::node_process;
using test::run_command;
using test::temp_directory;

namespace {

/// A head on sim devices journaling into `dir`.
std::unique_ptr<node_process> start_head(const std::string& dir,
                                         std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--devices", "sim:1", "--state-dir", dir};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<node_process>(args);
}

/// Kills `node` with SIGKILL and reaps it.
void kill_hard(node_process& node) {
  node.process->signal(SIGKILL);
  REQUIRE(node.process->wait(10s));
}

/// Submits and returns the job's id.
std::string submit(const node_process& node, std::vector<std::string> args) {
  args.insert(args.begin(), "submit");
  auto r = node.vidctl(args);
  INFO(r.err);
  REQUIRE(r.status == 0);
  return r.out.substr(0, r.out.find('\n'));
}

json status(const node_process& node, const std::string& id) {
  return node.vidctl_json({"status", id});
}

json wait_for(const node_process& node, const std::string& id) {
  auto r = node.vidctl({"wait", id, "--json"});
  INFO("vidctl wait " << id << ": " << r.err);
  INFO("vidnode: " << node.process->stderr_text());
  REQUIRE(!r.out.empty());
  return json::parse(r.out);
}

/// Waits up to 10 s until `device` of `node` is idle (a crashed worker is
/// back).
void wait_until_idle(const node_process& node, const std::string& device) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    for (const auto& d : node.vidctl_json({"nodes"}))
      if (d["device"] == device && d["state"] == "idle")
        return;
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(50ms);
  }
}

/// Starts a head on `dir`, submits a 2 s job that takes its only device
/// and one that waits behind it, and kills the head with SIGKILL; returns
/// the two jobs' ids.
std::pair<std::string, std::string> kill_with_jobs(const std::string& dir) {
  auto head = start_head(dir);
  auto blocker = submit(*head, {"--steps", "40", "--option", "step_ms=50"});
  auto queued = submit(*head, {"--steps", "1"});
  kill_hard(*head);
  return {blocker, queued};
}

} // namespace

TEST_CASE("a head killed with SIGKILL keeps its jobs: queued ones run by "
          "priority, results and idempotency keys are kept",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto head = start_head(dir.path());
  auto done = submit(*head, {"--steps", "1", "--idempotency-key", "first"});
  CHECK(wait_for(*head, done)["state"] == "succeeded");
  // One job holds the only device for 2 s; three wait behind it.
  auto blocker = submit(*head, {"--steps", "40", "--option", "step_ms=50"});
  auto low = submit(*head, {"--steps", "1", "--priority", "1"});
  auto high = submit(
    *head, {"--steps", "1", "--priority", "9", "--idempotency-key", "high"});
  auto mid = submit(*head, {"--steps", "1", "--priority", "5"});
  CHECK(status(*head, blocker)["state"] == "running");
  // Commits are made in order: once a job submitted now is acknowledged,
  // the blocker's dispatch is journaled too.
  auto last = submit(*head, {"--steps", "0", "--priority", "0"});
  kill_hard(*head);

  head = start_head(dir.path());
  // The finished result and its key survive.
  auto before = status(*head, done);
  CHECK(before["state"] == "succeeded");
  CHECK(submit(*head, {"--steps", "1", "--idempotency-key", "first"}) == done);
  CHECK(submit(*head,
               {"--steps", "1", "--priority", "9", "--idempotency-key", "high"})
        == high);
  // The interrupted job goes first (its attempt is charged), then the
  // queued ones by priority.
  auto b = wait_for(*head, blocker);
  auto h = wait_for(*head, high);
  auto m = wait_for(*head, mid);
  auto l = wait_for(*head, low);
  for (auto* r : {&h, &m, &l})
    CHECK((*r)["state"] == "succeeded");
  CHECK(wait_for(*head, last)["state"] == "succeeded");
  CHECK(b["attempts"] == 2);
  CHECK(h["started_at"].get<std::string>()
        < m["started_at"].get<std::string>());
  CHECK(m["started_at"].get<std::string>()
        < l["started_at"].get<std::string>());
  // A new job gets a new id.
  auto fresh = std::stoull(submit(*head, {"--steps", "0"}));
  CHECK(fresh > std::stoull(low));
}

TEST_CASE("a retried job is journaled: a head killed while it waits runs it "
          "after the restart, under its id",
          "[journal][retry]") {
  temp_directory dir{"vidnode-journal"};
  std::vector<std::string> args = {"--devices", "sim:2",          "--state-dir",
                                   dir.path(),  "--max-attempts", "1"};
  auto head = std::make_unique<node_process>(args);
  // A long job takes sim:0, so the job that crashes on sim:1 fails there;
  // another long job then takes sim:1, and the retry waits in the queue.
  std::vector<std::string> long_job = {"--steps", "600", "--option",
                                       "step_ms=100"};
  auto first_blocker = submit(*head, long_job);
  REQUIRE(status(*head, first_blocker)["device"] == "sim:0");
  auto failed =
    head->vidctl({"submit", "--steps", "2", "--option", "step_ms=1", "--option",
                  "fault=crash-on-sim:1@1", "--wait", "--json"});
  INFO(failed.err);
  REQUIRE(failed.status == 1);
  auto id = std::to_string(json::parse(failed.out)["id"].get<uint64_t>());
  wait_until_idle(*head, "sim:1");
  auto second_blocker = submit(*head, long_job);
  REQUIRE(status(*head, second_blocker)["device"] == "sim:1");
  auto retried = head->vidctl_json({"retry", id});
  CHECK(retried["state"] == "queued");
  kill_hard(*head);

  // Only sim:0 now; the long jobs' attempts were interrupted and charged,
  // which ends them at --max-attempts 1.
  args[1] = "sim:1";
  head = std::make_unique<node_process>(args);
  auto result = wait_for(*head, id);
  CHECK(result["state"] == "succeeded");
  CHECK(result["attempts"] == 1);
  CHECK(result["device"] == "sim:0");
  CHECK(result["accepted_at"] == retried["accepted_at"]);
  CHECK(status(*head, first_blocker)["state"] == "failed");
  CHECK(status(*head, second_blocker)["state"] == "failed");
}

TEST_CASE("a queue timeout runs from the job's first acceptance across a "
          "head restart",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto head = start_head(dir.path());
  auto blocker = submit(*head, {"--steps", "1000", "--option", "step_ms=50"});
  auto waiting = submit(*head, {"--steps", "1", "--queue-timeout", "3s"});
  auto accepted = status(*head, waiting)["accepted_at"].get<std::string>();
  kill_hard(*head);
  head = start_head(dir.path());
  auto r = wait_for(*head, waiting);
  CHECK(r["state"] == "timed_out");
  CHECK(r["accepted_at"] == accepted);
  CHECK(r["error"]["code"] == "queue_timeout");
  // 3 s from acceptance, not from the restart: the whole wait is 3 s plus
  // the time the head took to notice (measured in vidctl's result).
  auto queued = r["queue_time_s"].get<double>();
  CHECK(queued >= 2.9);
  CHECK(queued < 6.0);
  head->vidctl({"cancel", blocker});
}

TEST_CASE("memory estimates learned before a head restart are used after "
          "it",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto head = start_head(dir.path());
  std::vector<std::string> shape = {"--steps",     "1",        "--option",
                                    "mem_mb=1000", "--option", "peak_mb=3000"};
  auto first = submit(*head, shape);
  auto r1 = wait_for(*head, first);
  CHECK(r1["state"] == "succeeded");
  auto declared = r1["reserved_bytes"].get<uint64_t>();
  kill_hard(*head);
  head = start_head(dir.path());
  auto second = submit(*head, shape);
  auto r2 = wait_for(*head, second);
  CHECK(r2["state"] == "succeeded");
  // The measured peak (3000 MiB) plus the 10% headroom.
  CHECK(r2["reserved_bytes"].get<uint64_t>() > declared);
  auto learned = static_cast<double>(r2["reserved_bytes"].get<uint64_t>());
  CHECK(learned == Approx(static_cast<double>((3000ull << 20) * 11 / 10)));
}

TEST_CASE("a journal that is not a vidnode journal is refused: vidnode "
          "exits 2 naming the file and leaves it unchanged",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto file = std::filesystem::path{dir.path()} / "journal.db";
  std::string garbage(8192, '\0');
  for (size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<char>((i * 2654435761u) >> 13);
  test::write_file(file, garbage);
  auto r = run_command({VIDNODE_BIN, "--devices", "sim:1", "--listen",
                        "127.0.0.1:0", "--state-dir", dir.path()},
                       10s);
  INFO(r.err);
  CHECK(r.status == 2);
  CHECK(r.err.find(file.string()) != std::string::npos);
  CHECK(r.err.find("journal_unavailable") != std::string::npos);
  CHECK(test::read_file(file) == garbage);
}

TEST_CASE("two heads cannot share a state directory", "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto head = start_head(dir.path());
  auto r = run_command({VIDNODE_BIN, "--devices", "sim:1", "--listen",
                        "127.0.0.1:0", "--state-dir", dir.path()},
                       10s);
  INFO(r.err);
  CHECK(r.status == 2);
  CHECK(r.err.find("journal.db") != std::string::npos);
  // The first head is unharmed.
  auto id = submit(*head, {"--steps", "1"});
  CHECK(wait_for(*head, id)["state"] == "succeeded");
}

TEST_CASE("a head with --state-dir none keeps jobs in memory only",
          "[journal]") {
  auto head = std::make_unique<node_process>(
    std::vector<std::string>{"--devices", "sim:1", "--state-dir", "none"});
  auto id = submit(*head, {"--steps", "0"});
  kill_hard(*head);
  head = std::make_unique<node_process>(
    std::vector<std::string>{"--devices", "sim:1", "--state-dir", "none"});
  auto r = head->vidctl({"status", id});
  CHECK(r.status != 0);
  CHECK(r.err.find("unknown_job") != std::string::npos);
}

TEST_CASE("on a full disk new jobs are refused with journal_unavailable and "
          "running jobs carry on",
          "[journal]") {
  temp_directory mount_point{"vidnode-full"};
  if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, "size=1m")
      != 0) {
    WARN("SKIPPED: cannot mount a small tmpfs here (needs root or "
         "CAP_SYS_ADMIN): "
         << std::strerror(errno));
    return;
  }
  struct unmount {
    std::string path;
    ~unmount() {
      ::umount2(path.c_str(), MNT_DETACH);
    }
  } unmount_at_end{mount_point.path()};
  auto dir = mount_point.path() + "/state";
  auto head = start_head(dir);
  auto running = submit(*head, {"--steps", "40", "--option", "step_ms=50"});
  // Fill what is left of the file system.
  {
    auto filler = mount_point.path() + "/filler";
    std::string block(4096, 'x');
    auto f = std::fopen(filler.c_str(), "wb");
    REQUIRE(f != nullptr);
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()
           && std::fflush(f) == 0) {
    }
    std::fclose(f);
  }
  // Long prompts make the record need pages the disk no longer has.
  std::string prompt(3000, 'p');
  int refused = 0;
  for (int i = 0; i < 20 && refused == 0; ++i) {
    auto r = head->vidctl({"submit", "--steps", "0", "--prompt", prompt});
    if (r.status != 0) {
      INFO(r.err);
      CHECK(r.err.find("journal_unavailable") != std::string::npos);
      ++refused;
    }
  }
  CHECK(refused == 1);
  // The running job ends (about 2 s after it started) while its end cannot
  // be journaled: nobody is told of it yet, and the head retries the
  // journal with a backoff, not in a busy loop.
  auto cpu_before = test::cpu_seconds(head->process->pid());
  auto wall_before = std::chrono::steady_clock::now();
  auto waited = head->vidctl({"wait", running, "--max-wait", "4s", "--json"});
  INFO(waited.err);
  REQUIRE(!waited.out.empty());
  CHECK(json::parse(waited.out)["state"] == "running");
  CHECK(status(*head, running)["state"] == "running");
  // ... though its device is done with it.
  auto devices = head->vidctl_json({"nodes"});
  REQUIRE(devices.size() == 1);
  CHECK(devices[0]["running"].empty());
  auto cpu = test::cpu_seconds(head->process->pid()) - cpu_before;
  auto wall = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                            - wall_before)
                .count();
  CHECK(cpu < 0.5 * wall);
  // Space again: the end is journaled and told, and jobs are accepted again.
  std::filesystem::remove(mount_point.path() + "/filler");
  CHECK(wait_for(*head, running)["state"] == "succeeded");
  auto after = submit(*head, {"--steps", "0"});
  CHECK(wait_for(*head, after)["state"] == "succeeded");
}

TEST_CASE("a head stopped with SIGTERM keeps its queued and running jobs "
          "for its next start, charging no attempt",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto head = start_head(dir.path(), {"--max-attempts", "1"});
  auto running = submit(*head, {"--steps", "40", "--option", "step_ms=50"});
  auto queued = submit(*head, {"--steps", "1", "--priority", "9"});
  CHECK(status(*head, running)["state"] == "running");
  head->process->signal(SIGTERM);
  auto exit = head->process->wait(30s);
  REQUIRE(exit);
  CHECK(*exit == 0);

  head = start_head(dir.path(), {"--max-attempts", "1"});
  // With one attempt allowed, a charged stop would have failed the job.
  auto r = wait_for(*head, running);
  CHECK(r["state"] == "succeeded");
  CHECK(r["attempts"] == 2);
  CHECK(wait_for(*head, queued)["state"] == "succeeded");
}

TEST_CASE("a head that cannot listen exits 1 and leaves its journaled jobs "
          "for the next start",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto [blocker, queued] = kill_with_jobs(dir.path());
  // Another process holds the port the head is told to listen on.
  auto other = std::make_unique<node_process>(
    std::vector<std::string>{"--devices", "sim:1", "--state-dir", "none"});
  auto r = run_command({VIDNODE_BIN, "--devices", "sim:1", "--listen",
                        other->address, "--state-dir", dir.path()},
                       30s);
  INFO(r.err);
  CHECK(r.status == 1);
  CHECK(r.err.find("cannot listen") != std::string::npos);
  auto head = start_head(dir.path());
  CHECK(wait_for(*head, queued)["state"] == "succeeded");
  CHECK(wait_for(*head, blocker)["state"] == "succeeded");
}

TEST_CASE("a head restarted without a device that can run its queued jobs, "
          "and without a cluster port, fails them at once",
          "[journal]") {
  temp_directory dir{"vidnode-journal"};
  auto [blocker, queued] = kill_with_jobs(dir.path());
  child_process bare{{VIDNODE_BIN, "--devices", "none", "--listen",
                      "127.0.0.1:0", "--state-dir", dir.path(), "--log-level",
                      "warn"}};
  auto line = bare.read_line(10s);
  INFO(bare.stderr_text());
  REQUIRE(line);
  auto address = line->substr(line->rfind(' ') + 1);
  for (const auto& id : {blocker, queued}) {
    auto r =
      run_command({VIDCTL_BIN, "--connect", address, "wait", id, "--json"});
    INFO(r.err);
    REQUIRE(!r.out.empty());
    auto result = json::parse(r.out);
    CHECK(result["state"] == "failed");
    CHECK(result["error"]["code"] == "unknown_model");
  }
}
