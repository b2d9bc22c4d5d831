#include "support/cluster_process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <stdexcept>

namespace vidnode::test {

namespace {

using clock_type = std::chrono::steady_clock;

std::chrono::milliseconds left_until(clock_type::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
    deadline - clock_type::now());
  return std::max(left, std::chrono::milliseconds{0});
}

/// The port at the end of `line` if it starts with `prefix` ("...:PORT").
std::optional<uint16_t> port_after(const std::string& line,
                                   const std::string& prefix) {
  if (line.rfind(prefix, 0) != 0)
    return std::nullopt;
  auto colon = line.rfind(':');
  if (colon == std::string::npos)
    return std::nullopt;
  return static_cast<uint16_t>(std::stoi(line.substr(colon + 1)));
}

[[noreturn]] void start_failed(const std::string& what, child_process& p) {
  p.signal(SIGKILL);
  p.wait(std::chrono::seconds{5});
  throw std::runtime_error(what + " did not start; its stderr:\n"
                           + p.stderr_text());
}

} // namespace

std::vector<uint16_t> free_loopback_ports(size_t count) {
  std::vector<int> sockets;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < count; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      break;
    sockets.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
        || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0)
      break;
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : sockets)
    ::close(fd);
  if (ports.size() != count)
    throw std::runtime_error("cannot find free ports on 127.0.0.1");
  return ports;
}

head_process::head_process(cluster_programs programs, options opts)
  : programs_(std::move(programs)), opts_(std::move(opts)) {
  std::vector<std::string> argv = {
    programs_.vidnode,
    "--listen",
    opts_.host + ":" + std::to_string(opts_.port),
    "--cluster-listen",
    opts_.cluster_host + ":" + std::to_string(opts_.cluster_port),
    "--log-level",
    opts_.log_level};
  if (std::find(opts_.args.begin(), opts_.args.end(), "--devices")
      == opts_.args.end()) {
    argv.push_back("--devices");
    argv.push_back("none");
  }
  argv.insert(argv.end(), opts_.args.begin(), opts_.args.end());
  process_ = std::make_unique<child_process>(argv);
  auto deadline = clock_type::now() + process_start_timeout;
  auto first = process_->read_line(left_until(deadline));
  auto port =
    first ? port_after(*first, "vidnode listening on ") : std::nullopt;
  if (!port)
    start_failed("the head", *process_);
  auto second = process_->read_line(left_until(deadline));
  auto cluster_port =
    second ? port_after(*second, "vidnode accepting worker nodes on ")
           : std::nullopt;
  if (!cluster_port)
    start_failed("the head's cluster port", *process_);
  port_ = *port;
  cluster_port_ = *cluster_port;
}

std::string head_process::address() const {
  return opts_.host + ":" + std::to_string(port_);
}

std::string head_process::cluster_address() const {
  return opts_.cluster_host + ":" + std::to_string(cluster_port_);
}

command_result head_process::vidctl(std::vector<std::string> args,
                                    std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = {programs_.vidctl, "--connect", address()};
  argv.insert(argv.end(), opts_.vidctl_args.begin(), opts_.vidctl_args.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout);
}

nlohmann::json head_process::vidctl_json(std::vector<std::string> args) const {
  std::string command;
  for (const auto& arg : args)
    command += " " + arg;
  args.push_back("--json");
  auto result = vidctl(args);
  if (result.status != 0)
    throw std::runtime_error("vidctl" + command + " exited "
                             + std::to_string(result.status) + ": "
                             + result.err);
  return nlohmann::json::parse(result.out);
}

std::optional<int> head_process::stop(std::chrono::milliseconds timeout) {
  process_->signal(SIGTERM);
  return process_->wait(timeout);
}

worker_process::worker_process(cluster_programs programs, options opts)
  : opts_(std::move(opts)) {
  auto argv = opts_.wrapper;
  argv.insert(argv.end(), {programs.vidnode, "--join", opts_.join,
                           "--node-name", opts_.name, "--devices",
                           opts_.devices, "--log-level", opts_.log_level});
  argv.insert(argv.end(), opts_.args.begin(), opts_.args.end());
  joined_line_ = "vidnode joined " + opts_.join + " as " + opts_.name;
  process_ = std::make_unique<child_process>(argv);
}

void worker_process::count_lines() {
  while (auto line = process_->read_line(std::chrono::milliseconds{0}))
    if (*line == joined_line_)
      ++joins_;
}

void worker_process::pump() {
  process_->poll_output(std::chrono::milliseconds{0});
  count_lines();
}

int worker_process::joins() {
  pump();
  return joins_;
}

bool worker_process::await_joins(int count, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  count_lines();
  while (joins_ < count) {
    auto left = left_until(deadline);
    if (left.count() == 0)
      return false;
    auto line = process_->read_line(left);
    if (!line)
      return false;
    if (*line == joined_line_)
      ++joins_;
  }
  return true;
}

size_t count_devices(const nlohmann::json& nodes, const std::string& node,
                     const std::vector<std::string>& states) {
  size_t n = 0;
  for (const auto& device : nodes) {
    if (!node.empty() && device.value("node", "") != node)
      continue;
    auto state = device.value("state", "");
    if (std::find(states.begin(), states.end(), state) != states.end())
      ++n;
  }
  return n;
}

std::optional<std::chrono::system_clock::time_point>
logged_at(const std::string& log, const std::string& needle) {
  auto at = log.find(needle);
  if (at == std::string::npos)
    return std::nullopt;
  auto line = log.rfind('\n', at);
  line = line == std::string::npos ? 0 : line + 1;
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(log.c_str() + line, "[%d-%d-%d %d:%d:%d.%d]", &tm.tm_year,
                  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
                  &millis)
      != 7)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  return std::chrono::system_clock::from_time_t(std::mktime(&tm))
         + std::chrono::milliseconds{millis};
}

bool poll_until(const std::function<bool()>& probe,
                std::chrono::milliseconds timeout,
                const std::function<void()>& between) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (probe())
      return true;
    if (clock_type::now() >= deadline)
      return false;
    if (between)
      between();
  }
}

std::chrono::system_clock::time_point parse_time(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year,
                  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
                  &millis)
      != 7)
    throw std::runtime_error("not a timestamp: '" + text + "'");
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm))
         + std::chrono::milliseconds{millis};
}

std::chrono::system_clock::time_point time_of(const nlohmann::json& result,
                                              const char* field) {
  return parse_time(result.at(field).get<std::string>());
}

} // namespace vidnode::test
