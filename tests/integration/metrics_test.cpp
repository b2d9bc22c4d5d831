/// `vidnode --metrics-listen` with real processes: the counts after jobs run
/// with vidctl, promtool's check of the exposition, a port that cannot be
/// bound, and a real Prometheus server scraping the node.

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "support/cluster_process.hpp"
#include "support/node_process.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/net/metrics.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using nlohmann::json;
using test::child_process;
using test::node_process;
using test::run_command;

namespace {

namespace fs = std::filesystem;

constexpr const char* promtool_bin = "/usr/bin/promtool";
constexpr const char* prometheus_bin = "/usr/bin/prometheus";

/// An HTTP answer: its status (0: no answer) and body.
struct http_answer {
  long status = 0;
  std::string body;
};

size_t append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

/// GETs `url`, giving up after two seconds.
http_answer http_get(const std::string& url) {
  http_answer answer;
  auto easy = curl_easy_init();
  REQUIRE(easy != nullptr);
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer.body);
  if (curl_easy_perform(easy) == CURLE_OK)
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_easy_cleanup(easy);
  return answer;
}

/// One sample of an exposition: its name, labels and value.
struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// The samples of a Prometheus text exposition.
std::vector<sample> parse(const std::string& text) {
  std::vector<sample> result;
  size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#')
      continue;
    sample s;
    auto brace = line.find('{');
    auto space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    s.value = std::stod(line.substr(space + 1));
    if (brace == std::string::npos || brace > space) {
      s.name = line.substr(0, space);
    } else {
      s.name = line.substr(0, brace);
      auto i = brace + 1;
      while (i < line.size() && line[i] != '}') {
        auto eq = line.find('=', i);
        auto key = line.substr(i, eq - i);
        std::string value;
        auto j = eq + 2;
        for (; line[j] != '"'; ++j) {
          if (line[j] == '\\')
            ++j;
          value += line[j];
        }
        s.labels[key] = value;
        i = j + 1;
        if (line[i] == ',')
          ++i;
      }
    }
    result.push_back(std::move(s));
  }
  return result;
}

/// The sum of the samples named `name` whose labels include `match`;
/// nothing if there is none.
std::optional<double>
sum_of(const std::vector<sample>& samples, const std::string& name,
       const std::map<std::string, std::string>& match = {}) {
  std::optional<double> total;
  for (const auto& s : samples) {
    if (s.name != name)
      continue;
    bool matches = true;
    for (const auto& [key, value] : match) {
      auto i = s.labels.find(key);
      matches = matches && i != s.labels.end() && i->second == value;
    }
    if (matches)
      total = total.value_or(0) + s.value;
  }
  return total;
}

/// A head with two sim devices and its metrics endpoint on a free port,
/// with no journal unless `state_dir` is given.
struct metered_node {
  node_process node;
  std::string url;

  explicit metered_node(const std::string& state_dir = "none")
    : node({"--devices", "sim:2", "--state-dir", state_dir, "--metrics-listen",
            "127.0.0.1:0"}) {
    // After "listening on" and "accepting worker nodes on".
    auto prefix = std::string{"vidnode metrics on "};
    for (int i = 0; i < 3 && url.empty(); ++i) {
      auto line = node.process->read_line(10s);
      INFO(node.process->stderr_text());
      REQUIRE(line);
      if (line->rfind(prefix, 0) == 0)
        url = line->substr(prefix.size());
    }
    REQUIRE(!url.empty());
  }

  std::vector<sample> scrape() const {
    auto answer = http_get(url);
    REQUIRE(answer.status == 200);
    return parse(answer.body);
  }

  /// Runs a short sim job to its end; returns its state.
  std::string run_job(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"submit",   "--steps",    "2",
                                  "--option", "step_ms=20", "--wait"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--json");
    // vidctl exits 1 for a job that did not succeed.
    auto result = node.vidctl(args);
    INFO(result.err);
    REQUIRE(!result.out.empty());
    return json::parse(result.out)["state"].get<std::string>();
  }
};

/// promtool's verdict on an exposition: its exit status and what it said.
test::command_result promtool_check(const std::string& exposition) {
  test::temp_directory dir{"metrics-test"};
  auto file = fs::path{dir.path()} / "metrics.txt";
  test::write_file(file, exposition);
  return run_command(
    {"/bin/sh", "-c",
     std::string{promtool_bin} + " check metrics < " + file.string()});
}

} // namespace

TEST_CASE("vidnode's metrics count the jobs vidctl ran, show an empty queue "
          "after them and pass promtool's check",
          "[metrics]") {
  metered_node m;
  auto before = m.scrape();
  CHECK(sum_of(before, "vidnode_snapshot_ok") == 1);
  CHECK(sum_of(before, "vidnode_device_slots") == 2);
  CHECK(sum_of(before, "vidnode_device_state", {{"state", "idle"}}) == 2);
  CHECK(sum_of(before, "vidnode_nodes", {{"state", "up"}}) == 1);
  for (int i = 0; i < 3; ++i)
    CHECK(m.run_job() == "succeeded");
  CHECK(m.run_job({"--priority", "8"}) == "succeeded");
  // A job that waits longer than it may: five seconds of work on each
  // device, then one that may queue for 100 ms.
  auto a =
    m.node.vidctl_json({"submit", "--steps", "50", "--option", "step_ms=100"});
  auto b =
    m.node.vidctl_json({"submit", "--steps", "50", "--option", "step_ms=100"});
  auto during = m.scrape();
  CHECK(sum_of(during, "vidnode_device_slots_in_use") == 2);
  CHECK(sum_of(during, "vidnode_running_jobs") == 2);
  CHECK(m.run_job({"--queue-timeout", "100ms"}) == "timed_out");
  for (auto& job : {a, b})
    m.node.vidctl({"cancel", std::to_string(job["id"].get<uint64_t>())});
  auto after = m.scrape();
  INFO(http_get(m.url).body);
  CHECK(sum_of(after, "vidnode_jobs_accepted_total") == 7);
  CHECK(sum_of(after, "vidnode_jobs_accepted_total", {{"priority", "8"}}) == 1);
  CHECK(sum_of(after, "vidnode_jobs_ended_total") == 7);
  CHECK(sum_of(after, "vidnode_jobs_ended_total",
               {{"state", "succeeded"}, {"error", "none"}})
        == 4);
  CHECK(sum_of(after, "vidnode_jobs_ended_total",
               {{"state", "timed_out"}, {"error", "queue_timeout"}})
        == 1);
  CHECK(sum_of(after, "vidnode_jobs_ended_total",
               {{"state", "cancelled"}, {"error", "cancelled"}})
        == 2);
  CHECK(
    sum_of(after, "vidnode_job_queue_wait_seconds_count", {{"model", "sim"}})
    == 7);
  CHECK(sum_of(after, "vidnode_job_run_seconds_count", {{"model", "sim"}})
        == 6);
  auto run_sum = sum_of(after, "vidnode_job_run_seconds_sum");
  REQUIRE(run_sum);
  CHECK(*run_sum > 4 * 2 * 0.02);
  CHECK(sum_of(after, "vidnode_queue_jobs") == 0);
  CHECK(sum_of(after, "vidnode_queue_jobs", {{"priority", "9"}}) == 0);
  CHECK(sum_of(after, "vidnode_running_jobs") == 0);
  CHECK(sum_of(after, "vidnode_device_slots_in_use") == 0);
  CHECK(sum_of(after, "vidnode_device_model_loads_total", {{"model", "sim"}})
        >= 1);
  CHECK(sum_of(after, "vidnode_transfers_total") == 0);
  // Each succeeded attempt's phases, one observation per phase.
  CHECK(sum_of(after, "vidnode_job_phase_seconds_count",
               {{"phase", "steps"}, {"kind", "sim"}})
        == 4);
  CHECK(sum_of(after, "vidnode_job_phase_seconds_count", {{"kind", "sim"}})
        == 4 * 8);
  auto check = promtool_check(http_get(m.url).body);
  INFO(check.out << check.err);
  CHECK(check.status == 0);
  CHECK(check.out.empty());
  CHECK(check.err.empty());
  // Scraped, it still stops at once on SIGTERM (it hung until its exit
  // watchdog, 40 s, and exited 1 while the HTTP server outlived the actor
  // system).
  m.node.process->signal(SIGTERM);
  CHECK(m.node.process->wait(10s) == 0);
}

TEST_CASE("a metrics port that cannot be bound, or a malformed one, is a "
          "usage error",
          "[metrics]") {
  auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto in_use =
    run_command({VIDNODE_BIN, "--devices", "sim:1", "--listen", "127.0.0.1:0",
                 "--state-dir", "none", "--metrics-listen", taken},
                10s);
  ::close(fd);
  CHECK(in_use.status == 2);
  CHECK_THAT(in_use.err,
             Catch::Contains("--metrics-listen: cannot listen on " + taken));
  for (auto bad : {"nonsense", "127.0.0.1:99999", ":9447", ""}) {
    auto r = run_command({VIDNODE_BIN, "--devices", "sim:1", "--listen",
                          "127.0.0.1:0", "--metrics-listen", bad},
                         10s);
    INFO(bad);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::Contains("--metrics-listen"));
  }
}

TEST_CASE("a real Prometheus server scrapes vidnode and counts the jobs it "
          "ran",
          "[metrics][prometheus]") {
  if (!fs::exists(prometheus_bin) || !fs::exists(promtool_bin)) {
    WARN("SKIPPED: " << prometheus_bin << " or " << promtool_bin
                     << " is missing (Debian's prometheus package)");
    return;
  }
  metered_node m;
  for (int i = 0; i < 3; ++i)
    CHECK(m.run_job() == "succeeded");
  test::temp_directory dir{"metrics-prometheus"};
  auto target = m.url.substr(std::string{"http://"}.size());
  target = target.substr(0, target.find('/'));
  auto config = fs::path{dir.path()} / "prometheus.yml";
  test::write_file(config, "global:\n"
                           "  scrape_interval: 1s\n"
                           "  scrape_timeout: 1s\n"
                           "scrape_configs:\n"
                           "  - job_name: vidnode\n"
                           "    static_configs:\n"
                           "      - targets: ['"
                             + target + "']\n");
  auto port = test::free_loopback_ports(1).front();
  auto api = "http://127.0.0.1:" + std::to_string(port) + "/api/v1/query";
  child_process prometheus{
    {prometheus_bin, "--config.file=" + config.string(),
     "--storage.tsdb.path=" + (fs::path{dir.path()} / "data").string(),
     "--web.listen-address=127.0.0.1:" + std::to_string(port),
     "--log.level=warn"}};
  auto query = api
               + "?query=sum(vidnode_jobs_ended_total%7Bstate%3D%22"
                 "succeeded%22%7D)";
  std::optional<double> seen;
  std::string last;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto answer = http_get(query);
    last = answer.body;
    if (answer.status == 200) {
      auto body = json::parse(answer.body);
      auto& result = body["data"]["result"];
      if (!result.empty()) {
        seen = std::stod(result[0]["value"][1].get<std::string>());
        break;
      }
    }
    // Prometheus starts, then scrapes once a second: poll until then.
    prometheus.poll_output(200ms);
  }
  INFO(last << prometheus.stderr_text());
  REQUIRE(seen);
  CHECK(*seen == 3);
  auto up = json::parse(http_get(api + "?query=up").body);
  REQUIRE(!up["data"]["result"].empty());
  CHECK(up["data"]["result"][0]["value"][1] == "1");
  prometheus.signal(SIGTERM);
  CHECK(prometheus.wait(10s));
}

TEST_CASE("each phase of a succeeded attempt lands in its bucket of "
          "vidnode_job_phase_seconds, by phase and device kind",
          "[metrics]") {
  auto endpoint = net::metrics_endpoint::start("127.0.0.1", 0);
  REQUIRE(endpoint);
  auto events = (*endpoint)->observer();
  actors::job_phases phases;
  phases.prepare = 3ms;
  phases.steps = 30ms;
  phases.kernel = 30ms;
  phases.decode = 200us;
  phases.handoff = 50us;
  phases.encode = 2s;
  events->attempt_phases("tiny-t2v", runtime::device_kind::cpu, phases);
  events->attempt_phases("tiny-t2v", runtime::device_kind::cpu, phases);
  auto text = (*endpoint)->render();
  INFO(text);
  auto samples = parse(text);
  // The count of observations of `phase` on cpu devices at most `le`
  // seconds (the bucket whose bound is `le`).
  auto bucket = [&](const std::string& phase, double le) {
    std::optional<double> count;
    for (const auto& x : samples) {
      if (x.name != "vidnode_job_phase_seconds_bucket"
          || x.labels.at("phase") != phase || x.labels.at("kind") != "cpu")
        continue;
      auto bound = x.labels.at("le");
      if (bound != "+Inf" && std::abs(std::stod(bound) - le) < le * 1e-9)
        count = x.value;
    }
    REQUIRE(count);
    return *count;
  };
  CHECK(bucket("steps", 0.025) == 0);
  CHECK(bucket("steps", 0.05) == 2);
  CHECK(bucket("kernel", 0.05) == 2);
  CHECK(bucket("prepare", 0.0025) == 0);
  CHECK(bucket("prepare", 0.005) == 2);
  CHECK(bucket("decode", 0.0001) == 0);
  CHECK(bucket("decode", 0.00025) == 2);
  CHECK(bucket("handoff", 0.0001) == 2);
  CHECK(bucket("encode", 1) == 0);
  CHECK(bucket("encode", 2.5) == 2);
  // Zero phases are observed too (the worker did not time them).
  CHECK(bucket("load", 0.0001) == 2);
  CHECK(bucket("memory_measurement", 0.0001) == 2);
  CHECK(bucket("encode", 300) == 2);
  auto sum = sum_of(samples, "vidnode_job_phase_seconds_sum",
                    {{"phase", "encode"}, {"kind", "cpu"}});
  REQUIRE(sum);
  CHECK(std::abs(*sum - 4.0) < 1e-9);
  CHECK(sum_of(samples, "vidnode_job_phase_seconds_count", {{"kind", "cpu"}})
        == 2 * 8);
  // A kind with no attempt yet has no series.
  CHECK(!sum_of(samples, "vidnode_job_phase_seconds_count", {{"kind", "cuda"}}));
  if (fs::exists(promtool_bin)) {
    auto check = promtool_check(text);
    INFO(check.out << check.err);
    CHECK(check.status == 0);
  }
}

TEST_CASE("a head with a journal times its commits", "[metrics]") {
  test::temp_directory state{"metrics-journal"};
  metered_node m{state.path()};
  CHECK(m.run_job() == "succeeded");
  auto after = m.scrape();
  // The acceptance, the dispatch and the end: at least one commit each
  // unless they were grouped.
  auto commits = sum_of(after, "vidnode_journal_commit_seconds_count");
  REQUIRE(commits);
  CHECK(*commits >= 1);
  CHECK(sum_of(after, "vidnode_journal_commit_seconds_bucket", {{"le", "+Inf"}})
        == *commits);
  CHECK(sum_of(after, "vidnode_journal_commit_failures_total") == 0);
}

TEST_CASE("a head shows its worker nodes' devices and a worker node serves "
          "its own devices' state",
          "[metrics][cluster]") {
  auto ports = test::free_loopback_ports(2);
  auto head_url = "http://127.0.0.1:" + std::to_string(ports[0]) + "/metrics";
  auto worker_url = "http://127.0.0.1:" + std::to_string(ports[1]) + "/metrics";
  test::cluster_programs programs{VIDNODE_BIN, VIDCTL_BIN};
  test::head_process::options head_options;
  head_options.args = {"--metrics-listen",
                       "127.0.0.1:" + std::to_string(ports[0])};
  test::head_process head{programs, head_options};
  test::worker_process::options worker_options;
  worker_options.join = head.cluster_address();
  worker_options.name = "w1";
  worker_options.args = {"--metrics-listen",
                         "127.0.0.1:" + std::to_string(ports[1])};
  test::worker_process worker{programs, worker_options};
  REQUIRE(worker.await_joins(1, 15s));
  for (int i = 0; i < 2; ++i)
    CHECK(head.vidctl_json({"submit", "--steps", "2", "--option", "step_ms=20",
                            "--wait"})["state"]
          == "succeeded");
  auto from_head = parse(http_get(head_url).body);
  CHECK(sum_of(from_head, "vidnode_device_slots", {{"node", "w1"}}) == 2);
  CHECK(sum_of(from_head, "vidnode_node_joins_total", {{"node", "w1"}}) == 1);
  CHECK(sum_of(from_head, "vidnode_nodes", {{"state", "up"}}) == 2);
  CHECK(sum_of(from_head, "vidnode_jobs_ended_total", {{"state", "succeeded"}})
        == 2);
  worker.pump();
  auto answer = http_get(worker_url);
  REQUIRE(answer.status == 200);
  auto from_worker = parse(answer.body);
  CHECK(sum_of(from_worker, "vidnode_snapshot_ok") == 1);
  CHECK(sum_of(from_worker, "vidnode_device_slots", {{"node", "w1"}}) == 2);
  CHECK(sum_of(from_worker, "vidnode_device_state",
               {{"node", "w1"}, {"state", "idle"}})
        == 2);
  CHECK(sum_of(from_worker, "vidnode_device_restarts_total") == 0);
  CHECK_FALSE(sum_of(from_worker, "vidnode_queue_jobs"));
  for (const auto& body : {http_get(head_url).body, answer.body}) {
    auto check = promtool_check(body);
    INFO(check.out << check.err);
    CHECK(check.status == 0);
    CHECK(check.out.empty());
  }
  worker.process().signal(SIGTERM);
  CHECK(worker.process().wait(10s) == 0);
}
