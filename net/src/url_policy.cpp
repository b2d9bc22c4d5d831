#include "vidnode/net/url_policy.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

#include <curl/curl.h>

namespace vidnode::net {

namespace {

namespace fs = std::filesystem;

constexpr const char* allows_private = "vidnode --allow-private-urls allows it";

struct url_deleter {
  void operator()(CURLU* x) const {
    curl_url_cleanup(x);
  }
};

/// One part of a parsed URL, or nothing if it has none (or cannot decode).
std::optional<std::string> part_of(CURLU* url, CURLUPart part,
                                   unsigned flags = 0) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, flags) != CURLUE_OK)
    return std::nullopt;
  std::string result{text};
  curl_free(text);
  return result;
}

/// True if `path` is below `root` (both resolved), not `root` itself.
bool inside(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    // "/a/b/" ends in an empty element; it matches the end of the root.
    if (r->empty() && std::next(r) == root.end())
      break;
    if (p == path.end() || *p != *r)
      return false;
  }
  return std::any_of(p, path.end(),
                     [](const fs::path& x) { return !x.empty(); });
}

/// "localhost" and names under it, which libcurl (and RFC 6761) never asks
/// the resolver about: they are the loopback interface.
bool is_localhost(std::string host) {
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (!host.empty() && host.back() == '.')
    host.pop_back();
  const std::string suffix = ".localhost";
  return host == "localhost"
         || (host.size() > suffix.size()
             && host.compare(host.size() - suffix.size(), suffix.size(), suffix)
                  == 0);
}

} // namespace

url_policy::url_policy(std::set<address_class> allowed,
                       const std::string& file_root)
  : allowed_(std::move(allowed)) {
  allowed_.erase(address_class::global);
  if (file_root.empty())
    return;
  std::error_code ec;
  auto absolute = fs::absolute(file_root, ec);
  file_root_ = fs::weakly_canonical(ec ? fs::path{file_root} : absolute, ec);
  if (ec || file_root_.empty())
    file_root_ = fs::path{file_root}.lexically_normal();
}

std::optional<std::string> url_policy::refusal(actors::url_use use,
                                               const std::string& url) const {
  std::unique_ptr<CURLU, url_deleter> parsed{curl_url()};
  if (!parsed)
    return "no memory to parse the URL";
  if (auto rc = curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0);
      rc != CURLUE_OK)
    return std::string{"not a URL libcurl accepts ("} + curl_url_strerror(rc)
           + ")";
  auto scheme = part_of(parsed.get(), CURLUPART_SCHEME).value_or("");
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (scheme == "file") {
    if (use != actors::url_use::fetch)
      return "file URLs are never allowed for uploads and webhooks";
    auto path = part_of(parsed.get(), CURLUPART_PATH, CURLU_URLDECODE);
    if (!path)
      return "the file URL's path cannot be decoded";
    return file_refusal(*path);
  }
  if (scheme != "http" && scheme != "https")
    return "'" + scheme + "' URLs are not allowed (only http and https"
           + (use == actors::url_use::fetch
                ? ", and file with vidnode --allow-file-urls DIR)"
                : ")");
  auto host = part_of(parsed.get(), CURLUPART_HOST);
  if (!host || host->empty())
    return "the URL names no host";
  if (auto x = classify_literal(*host)) {
    auto address = *host;
    if (address.size() >= 2 && address.front() == '[')
      address = address.substr(1, address.size() - 2);
    return refusal(address, *x);
  }
  if (is_localhost(*host) && allowed_.count(address_class::loopback) == 0)
    return *host + " is the loopback interface (" + allows_private + ")";
  return std::nullopt;
}

std::optional<std::string> url_policy::refusal(const std::string& address,
                                               address_class x) const {
  if (x == address_class::global || allowed_.count(x) != 0)
    return std::nullopt;
  return address + " is " + describe(x) + " (" + allows_private + ")";
}

std::optional<std::string>
url_policy::file_refusal(const std::string& path) const {
  if (file_root_.empty())
    return "file URLs are not allowed (vidnode --allow-file-urls DIR allows "
           "those of files inside DIR)";
  fs::path given{path};
  if (!given.is_absolute())
    return "the file URL's path '" + path + "' is not absolute";
  std::error_code ec;
  auto resolved = fs::weakly_canonical(given, ec);
  if (ec)
    return "cannot resolve '" + path + "': " + ec.message();
  if (inside(resolved, file_root_)) {
    // A FIFO or device would block the transfer's open() for good, where
    // no abort can reach it; a directory is not audio.
    auto status = fs::status(resolved, ec);
    if (!ec && fs::exists(status) && !fs::is_regular_file(status))
      return "'" + path + "' is not a regular file";
    return std::nullopt;
  }
  auto shown = "'" + path + "'";
  if (resolved != given)
    shown += " (resolved: '" + resolved.string() + "')";
  return shown + " is not inside '" + file_root_.string()
         + "', the directory vidnode --allow-file-urls allows";
}

} // namespace vidnode::net
