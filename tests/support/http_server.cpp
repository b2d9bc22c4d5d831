#include "support/http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <atomic>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace vidnode::test {

namespace {

std::atomic<int> next_server{0};

} // namespace

http_server::http_server() {
  root_ = std::filesystem::temp_directory_path()
          / ("vidnode-http-" + std::to_string(getpid()) + "-"
             + std::to_string(next_server++));
  std::filesystem::create_directories(root_ / "files");
  process_ = std::make_unique<child_process>(std::vector<std::string>{
    "/usr/bin/python3", HTTP_TEST_SERVER, root_.string()});
  auto line = process_->read_line(std::chrono::seconds{10});
  const std::string prefix = "listening on ";
  if (!line || line->rfind(prefix, 0) != 0)
    throw std::runtime_error("the test HTTP server did not start: "
                             + process_->stderr_text());
  port_ = std::stoi(line->substr(prefix.size()));
}

http_server::~http_server() {
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

std::string http_server::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void http_server::serve(const std::string& name,
                        const std::string& content) const {
  std::ofstream{root_ / "files" / name, std::ios::binary} << content;
}

std::string http_server::read(const std::string& relative) const {
  std::ifstream in{root_ / relative, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

template <class Predicate>
bool http_server::wait_until(std::chrono::milliseconds limit, Predicate done) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done())
      return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return false;
    auto line = process_->read_line(left);
    if (!line)
      return done();
    events_.push_back(std::move(*line));
  }
}

int http_server::requests_seen(const std::string& path) const {
  int n = 0;
  for (const auto& event : events_) {
    auto space = event.find(' ');
    if (space != std::string::npos && event.compare(0, space, "CLOSED") != 0
        && event.compare(0, space, "ANSWERED") != 0
        && event.compare(space + 1, std::string::npos, path) == 0)
      ++n;
  }
  return n;
}

int http_server::requests_for(const std::string& path) {
  // Takes in what the server printed by now (and keeps its pipe empty):
  // those lines are in the pipe already, so the read returns at once until
  // none is left.
  while (auto line = process_->read_line(std::chrono::milliseconds{10}))
    events_.push_back(std::move(*line));
  return requests_seen(path);
}

bool http_server::wait_for_requests(const std::string& path, int count,
                                    std::chrono::seconds limit) {
  return wait_until(limit, [&] { return requests_seen(path) >= count; });
}

bool http_server::wait_until_closed(const std::string& path,
                                    std::chrono::seconds limit) {
  return wait_until(limit, [&] {
    return std::find(events_.begin(), events_.end(), "CLOSED " + path)
           != events_.end();
  });
}

std::string http_server::wait_for_file(const std::string& relative,
                                       std::chrono::seconds limit) {
  // The file is written before its request is answered, so each event is
  // a moment to look again.
  std::string content;
  wait_until(limit, [&] { return !(content = read(relative)).empty(); });
  return content;
}

void http_server::release(const std::string& name) const {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port_));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0
      || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address))
           != 0)
    throw std::runtime_error("cannot reach the test HTTP server");
  auto request = "GET /release/" + name
                 + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                   "close\r\n\r\n";
  if (write(fd, request.data(), request.size())
      != static_cast<ssize_t>(request.size()))
    throw std::runtime_error("cannot write to the test HTTP server");
  char buffer[512];
  while (::read(fd, buffer, sizeof(buffer)) > 0)
    ;
  close(fd);
}

} // namespace vidnode::test
