#include "support/http_server.hpp"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
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

int http_server::requests_for(const std::string& path) const {
  std::istringstream log{read("requests.log")};
  int n = 0;
  for (std::string line; std::getline(log, line);) {
    auto space = line.find(' ');
    if (space != std::string::npos && line.compare(0, space, "CLOSED") != 0
        && line.compare(space + 1, std::string::npos, path) == 0)
      ++n;
  }
  return n;
}

namespace {

/// Polls `done` every 10 ms until it is true or `limit` passed.
template <class Predicate>
bool poll_until(std::chrono::seconds limit, Predicate done) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return true;
}

} // namespace

bool http_server::wait_for_requests(const std::string& path, int count,
                                    std::chrono::seconds limit) const {
  return poll_until(limit, [&] { return requests_for(path) >= count; });
}

bool http_server::wait_until_closed(const std::string& path,
                                    std::chrono::seconds limit) const {
  return poll_until(limit, [&] {
    return read("requests.log").find("CLOSED " + path + "\n")
           != std::string::npos;
  });
}

std::string http_server::wait_for_file(const std::string& relative,
                                       std::chrono::seconds limit) const {
  std::string content;
  poll_until(limit, [&] { return !(content = read(relative)).empty(); });
  return content;
}

} // namespace vidnode::test
