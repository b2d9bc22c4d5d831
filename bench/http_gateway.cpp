/// The HTTP gateway against vidctl's CAF protocol, on one real vidnode
/// process (4 sim devices) on loopback:
///
/// - Submit-to-status round trip: POST /v2/sim/run then GET
///   /v2/sim/status/{id} over one kept-alive connection (cpp-httplib's
///   client), against net::client's submit then status to the same head, in
///   alternating rounds of the same run. Target: HTTP at most 1.5x CAF (p50).
/// - Status under load: `wrk` (a second process) GETs a job's status for
///   DURATION seconds while the 4 devices run jobs: requests/s and p99
///   (targets: >= 5,000 req/s, p99 < 20 ms), and the jobs' makespan with and
///   without the load (target: within 2%). Skipped with the reason without
///   wrk (Debian: apt-get install wrk).
///
/// Usage: bench_http_gateway [SCALE [round-trip|load]]

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "measurement.hpp"
#include "support/process.hpp"
#include "support/temp_directory.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;

namespace vidnode::bench {
namespace {

using nlohmann::json;

constexpr const char* api_key = "bench-key-0123456789";

/// Thrown on any failure, so that main's destructors stop vidnode, wrk and
/// the temporary directory.
struct bench_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) {
  throw bench_failure{what};
}

/// A vidnode head with 4 sim devices, its HTTP gateway and CAF port.
class gateway_head {
public:
  explicit gateway_head(const std::string& dir) {
    test::write_file(dir + "/keys", std::string{api_key} + "\n");
    node_ = std::make_unique<test::child_process>(std::vector<std::string>{
      VIDNODE_BIN,
      "--devices",
      "sim:4",
      "--state-dir",
      "none",
      "--listen",
      "127.0.0.1:0",
      "--cluster-listen",
      "127.0.0.1:0",
      "--http-listen",
      "127.0.0.1:0",
      "--endpoint",
      "sim=sim,width=64,height=64,num_frames=8,num_inference_steps=5",
      "--api-key-file",
      dir + "/keys",
      "--queue-size",
      "1000000",
      "--max-results",
      "1000000",
      "--log-level",
      "warn"});
    const std::string caf_prefix = "vidnode listening on 127.0.0.1:";
    const std::string http_prefix = "vidnode HTTP gateway on http://"
                                    "127.0.0.1:";
    auto until = clock_type::now() + 30s;
    while ((caf_port == 0 || http_port == 0) && clock_type::now() < until) {
      auto line = node_->read_line(1s);
      if (!line)
        continue;
      if (line->rfind(caf_prefix, 0) == 0)
        caf_port =
          static_cast<uint16_t>(std::stoi(line->substr(caf_prefix.size())));
      if (line->rfind(http_prefix, 0) == 0)
        http_port = std::stoi(line->substr(http_prefix.size()));
    }
    if (caf_port == 0 || http_port == 0)
      fail("vidnode did not start: " + node_->stderr_text());
  }

  ~gateway_head() {
    node_->signal(SIGTERM);
    node_->wait(10s);
  }

  uint16_t caf_port = 0;
  int http_port = 0;

private:
  std::unique_ptr<test::child_process> node_;
};

std::unique_ptr<net::client> connect_caf(uint16_t port) {
  net::client::options opts;
  opts.port = port;
  auto result = net::client::connect(opts);
  if (!result)
    fail("cannot connect: " + runtime::describe(result.error()));
  return std::move(*result);
}

runtime::job_spec sim_job(int32_t steps, int step_ms) {
  runtime::job_spec spec;
  spec.model = "sim";
  spec.prompt = "a red fox in the snow";
  spec.width = 64;
  spec.height = 64;
  spec.frames = 8;
  spec.steps = steps;
  spec.options["step_ms"] = std::to_string(step_ms);
  return spec;
}

/// Waits until the head runs and queues nothing (jobs of earlier tables).
void wait_until_idle(httplib::Client& http) {
  auto until = clock_type::now() + 300s;
  while (clock_type::now() < until) {
    auto health = http.Get("/v2/sim/health");
    if (!health || health->status != 200)
      fail("GET health");
    auto jobs = json::parse(health->body).at("jobs");
    if (jobs.at("inQueue") == 0 && jobs.at("inProgress") == 0)
      return;
    std::this_thread::sleep_for(100ms);
  }
  fail("the head did not become idle within 300 s");
}

/// `count` HTTP run+status round trips on `http`; nanoseconds each.
std::vector<int64_t> http_round_trips(httplib::Client& http, size_t count) {
  std::vector<int64_t> nanos;
  const std::string body =
    R"({"input":{"prompt":"a red fox in the snow","step_ms":0}})";
  for (size_t i = 0; i < count; ++i) {
    auto sent = clock_type::now();
    auto run = http.Post("/v2/sim/run", body, "application/json");
    if (!run || run->status != 200)
      fail("POST run: " + (run ? run->body : httplib::to_string(run.error())));
    auto id = json::parse(run->body).at("id").get<std::string>();
    auto status = http.Get(("/v2/sim/status/" + id).c_str());
    if (!status || status->status != 200)
      fail("GET status: "
           + (status ? status->body : httplib::to_string(status.error())));
    nanos.push_back(nanos_between(sent, clock_type::now()));
  }
  return nanos;
}

/// `count` CAF submit+status round trips on `client`; nanoseconds each.
std::vector<int64_t> caf_round_trips(net::client& client, size_t count) {
  std::vector<int64_t> nanos;
  auto spec = sim_job(5, 0);
  for (size_t i = 0; i < count; ++i) {
    auto sent = clock_type::now();
    auto id = client.submit(spec);
    if (!id)
      fail("submit: " + runtime::describe(id.error()));
    auto status = client.status(*id);
    if (!status)
      fail("status: " + runtime::describe(status.error()));
    nanos.push_back(nanos_between(sent, clock_type::now()));
  }
  return nanos;
}

std::unique_ptr<httplib::Client> http_client(int port) {
  auto http = std::make_unique<httplib::Client>("127.0.0.1", port);
  http->set_keep_alive(true);
  http->set_tcp_nodelay(true);
  http->set_read_timeout(30, 0);
  http->set_default_headers(
    {{"Authorization", std::string{"Bearer "} + api_key}});
  return http;
}

void round_trip_table(const gateway_head& head, double factor) {
  auto iterations = scaled(2000, factor, 200);
  size_t rounds = 4;
  auto per_round = iterations / rounds;
  auto http = http_client(head.http_port);
  auto caf = connect_caf(head.caf_port);
  http_round_trips(*http, 100);
  caf_round_trips(*caf, 100);
  std::vector<int64_t> http_nanos, caf_nanos;
  for (size_t r = 0; r < rounds; ++r) {
    auto h = http_round_trips(*http, per_round);
    http_nanos.insert(http_nanos.end(), h.begin(), h.end());
    auto c = caf_round_trips(*caf, per_round);
    caf_nanos.insert(caf_nanos.end(), c.begin(), c.end());
  }
  auto h = summarize(http_nanos);
  auto c = summarize(caf_nanos);
  markdown_table table{
    {"client", "round trips", "p50 (us)", "p99 (us)", "mean (us)", "max (us)"}};
  auto row = [&](const char* name, const latency_summary& s) {
    table.add({name, grouped(static_cast<double>(s.samples)), fixed(s.p50_us),
               fixed(s.p99_us), fixed(s.mean_us), fixed(s.max_us)});
  };
  row("HTTP: POST run + GET status (kept alive)", h);
  row("CAF: net::client submit + status", c);
  table.print("HTTP gateway: submit-to-status round trip against CAF, same "
              "head, alternating rounds");
  auto ratio50 = c.p50_us > 0 ? h.p50_us / c.p50_us : 0;
  auto ratio99 = c.p99_us > 0 ? h.p99_us / c.p99_us : 0;
  std::cout << "HTTP/CAF: p50 " << fixed(ratio50, 2) << "x, p99 "
            << fixed(ratio99, 2) << "x (target p50 <= 1.5x)\n\n";
  record_summary({"HTTP submit+status round trip p50 (vs CAF)",
                  fixed(h.p50_us) + " us", fixed(c.p50_us) + " us",
                  fixed(ratio50, 2) + "x", "<= 1.5x", ratio50 <= 1.5});
}

/// What wrk measured.
struct wrk_figures {
  double requests_per_s = 0;
  double p99_ms = 0;
  double p50_ms = 0;
  long requests = 0;
  long non_2xx = 0;
  std::string output;
};

double to_ms(const std::string& value, const std::string& unit) {
  auto x = std::stod(value);
  if (unit == "us")
    return x / 1000;
  if (unit == "s")
    return x * 1000;
  if (unit == "m")
    return x * 60000;
  return x;
}

wrk_figures parse_wrk(const std::string& text) {
  wrk_figures result;
  result.output = text;
  std::smatch m;
  if (std::regex_search(text, m, std::regex{R"(Requests/sec:\s+([0-9.]+))"}))
    result.requests_per_s = std::stod(m[1]);
  if (std::regex_search(text, m,
                        std::regex{R"(\n\s+99%\s+([0-9.]+)(us|ms|s|m)\b)"}))
    result.p99_ms = to_ms(m[1], m[2]);
  if (std::regex_search(text, m,
                        std::regex{R"(\n\s+50%\s+([0-9.]+)(us|ms|s|m)\b)"}))
    result.p50_ms = to_ms(m[1], m[2]);
  if (std::regex_search(text, m, std::regex{R"((\d+) requests in)"}))
    result.requests = std::stol(m[1]);
  if (std::regex_search(text, m,
                        std::regex{R"(Non-2xx or 3xx responses:\s+(\d+))"}))
    result.non_2xx = std::stol(m[1]);
  return result;
}

std::optional<std::string> find_wrk() {
  if (const char* given = std::getenv("WRK"); given != nullptr && *given)
    return std::string{given};
  for (const char* path : {"/usr/bin/wrk", "/usr/local/bin/wrk"})
    if (::access(path, X_OK) == 0)
      return std::string{path};
  return std::nullopt;
}

/// Seconds from submitting `jobs` jobs (each `steps` steps of `step_ms`) to
/// the end of the last, all run on the head's 4 devices.
double makespan(net::client& client, size_t jobs, int32_t steps, int step_ms) {
  auto spec = sim_job(steps, step_ms);
  auto started = clock_type::now();
  std::vector<runtime::job_id> ids;
  for (size_t i = 0; i < jobs; ++i) {
    auto id = client.submit(spec);
    if (!id)
      fail("submit: " + runtime::describe(id.error()));
    ids.push_back(*id);
  }
  for (auto id : ids) {
    auto result = client.wait(id, 60s);
    if (!result)
      fail("wait: " + runtime::describe(result.error()));
    if (result->state != runtime::job_state::succeeded)
      fail(std::string{"a makespan job ended "}
           + runtime::to_string(result->state) + ": "
           + runtime::describe(result->error));
  }
  return std::chrono::duration<double>(clock_type::now() - started).count();
}

void load_table(const gateway_head& head, double factor) {
  auto wrk = find_wrk();
  if (!wrk) {
    std::cout << "### HTTP gateway: status under load\n\nSKIPPED: wrk is not "
                 "installed (apt-get install wrk, or set WRK)\n\n";
    return;
  }
  auto duration = std::max(5, static_cast<int>(10 * factor));
  // 4 devices, 8 jobs each of 25 steps of 40 ms: about 8 s of device time
  // per device, inside wrk's run.
  size_t jobs = static_cast<size_t>(std::max(8.0, 32 * factor));
  int32_t steps = 25;
  int step_ms = 40;
  auto caf = connect_caf(head.caf_port);
  auto http = http_client(head.http_port);
  auto run = http->Post("/v2/sim/run", R"({"input":{"prompt":"target"}})",
                        "application/json");
  if (!run || run->status != 200)
    fail("POST run for the load's target");
  auto id = json::parse(run->body).at("id").get<std::string>();
  wait_until_idle(*http);

  makespan(*caf, 4, steps, step_ms);
  auto quiet = makespan(*caf, jobs, steps, step_ms);

  auto url = "http://127.0.0.1:" + std::to_string(head.http_port)
             + "/v2/sim/status/" + id;
  test::child_process load{
    {*wrk, "-t2", "-c32", "-d" + std::to_string(duration) + "s", "--latency",
     "-H", std::string{"Authorization: Bearer "} + api_key, url}};
  std::this_thread::sleep_for(500ms);
  auto loaded = makespan(*caf, jobs, steps, step_ms);
  auto status = load.wait(std::chrono::seconds{duration + 30});
  auto figures = parse_wrk(load.rest_of_stdout());
  if (!status || *status != 0 || figures.requests == 0)
    fail("wrk failed: " + figures.output + load.stderr_text());

  markdown_table table{{"figure", "measured", "target", "met?"}};
  table.add(
    {"status requests/s (wrk -t2 -c32, " + std::to_string(duration) + " s)",
     grouped(figures.requests_per_s), ">= 5,000",
     verdict(figures.requests_per_s >= 5000)});
  table.add(
    {"status p50 / p99 latency",
     fixed(figures.p50_ms, 2) + " / " + fixed(figures.p99_ms, 2) + " ms",
     "p99 < 20 ms", verdict(figures.p99_ms < 20)});
  table.add({"non-2xx answers", grouped(static_cast<double>(figures.non_2xx)),
             "0", verdict(figures.non_2xx == 0)});
  auto change = quiet > 0 ? (loaded - quiet) / quiet * 100 : 0;
  table.add({"makespan of " + std::to_string(jobs) + " jobs ("
               + std::to_string(steps) + " x " + std::to_string(step_ms)
               + " ms) without / with load",
             fixed(quiet, 3) + " s / " + fixed(loaded, 3) + " s ("
               + (change >= 0 ? "+" : "") + fixed(change, 2) + "%)",
             "within 2%", verdict(std::abs(change) <= 2)});
  table.print("HTTP gateway: status under load from wrk while 4 sim devices "
              "run jobs");
  record_summary({"HTTP status under load (wrk)",
                  grouped(figures.requests_per_s) + " req/s, p99 "
                    + fixed(figures.p99_ms, 2) + " ms",
                  "-", "-", ">= 5,000 req/s, p99 < 20 ms",
                  figures.requests_per_s >= 5000 && figures.p99_ms < 20});
  record_summary({"jobs' makespan under HTTP load", fixed(loaded, 3) + " s",
                  fixed(quiet, 3) + " s", fixed(loaded / quiet, 3) + "x",
                  "within 2%", std::abs(change) <= 2});
}

} // namespace
} // namespace vidnode::bench

int main(int argc, char** argv) {
  using namespace vidnode::bench;
  auto factor = scale(argc, argv);
  std::string only = argc > 2 ? argv[2] : "";
  try {
    vidnode::test::temp_directory dir{"bench-http-gateway"};
    gateway_head head{dir.path()};
    if (only.empty() || only == "round-trip")
      round_trip_table(head, factor);
    if (only.empty() || only == "load")
      load_table(head, factor);
  } catch (const bench_failure& failure) {
    std::cerr << "bench_http_gateway: " << failure.what() << "\n";
    return 1;
  }
  return 0;
}
