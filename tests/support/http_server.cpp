#include "support/http_server.hpp"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
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

} // namespace vidnode::test
