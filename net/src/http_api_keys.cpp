#include "http_api_keys.hpp"

#include <fstream>

#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::net::detail {

namespace {

std::string digest_of(const std::string& key) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(),
         reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string trimmed(const std::string& text) {
  auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos)
    return {};
  auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

bool same_file_state(const struct stat& x, const struct stat& y) {
  return x.st_ino == y.st_ino && x.st_dev == y.st_dev && x.st_size == y.st_size
         && x.st_mtim.tv_sec == y.st_mtim.tv_sec
         && x.st_mtim.tv_nsec == y.st_mtim.tv_nsec;
}

} // namespace

api_keys::api_keys(std::string path) : path_(std::move(path)) {}

caf::error api_keys::reload() {
  if (path_.empty())
    return caf::none;
  auto fail = [&](const std::string& why) {
    return runtime::make_error(runtime::errc::invalid_request,
                               "api-key-file: '" + path_ + "': " + why);
  };
  struct stat before {};
  if (::stat(path_.c_str(), &before) != 0)
    return fail("cannot be read");
  std::ifstream in{path_};
  if (!in)
    return fail("cannot be read");
  std::vector<std::string> digests;
  std::string line;
  while (std::getline(in, line)) {
    auto key = trimmed(line);
    if (key.empty() || key[0] == '#')
      continue;
    digests.push_back(digest_of(key));
  }
  if (in.bad())
    return fail("cannot be read");
  std::lock_guard<std::mutex> guard{mutex_};
  read_stat_ = before;
  if (digests.empty())
    return fail("holds no key (one per line; lines starting with # are "
                "comments)");
  digests_ = std::move(digests);
  return caf::none;
}

void api_keys::refresh_if_changed() {
  auto now = std::chrono::steady_clock::now();
  struct stat current {};
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (now < next_check_)
      return;
    next_check_ = now + std::chrono::seconds{1};
    if (::stat(path_.c_str(), &current) == 0
        && same_file_state(current, read_stat_))
      return;
  }
  if (auto err = reload())
    spdlog::warn("HTTP gateway: keeping the API keys in use: {}",
                 runtime::detail_of(err));
  else
    spdlog::info("HTTP gateway: API keys read again from {}", path_);
}

bool api_keys::admits(const std::string& authorization) {
  if (path_.empty())
    return true;
  refresh_if_changed();
  auto key = authorization;
  // The scheme is case-insensitive (RFC 9110, 11.1).
  if (key.size() > 7 && key[6] == ' '
      && strncasecmp(key.c_str(), "bearer", 6) == 0)
    key = trimmed(key.substr(7));
  if (key.empty())
    return false;
  auto digest = digest_of(key);
  std::lock_guard<std::mutex> guard{mutex_};
  auto found = false;
  for (const auto& known : digests_)
    found |= CRYPTO_memcmp(known.data(), digest.data(), digest.size()) == 0;
  return found;
}

} // namespace vidnode::net::detail
