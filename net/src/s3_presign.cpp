#include "vidnode/net/s3_presign.hpp"

#include <algorithm>
#include <ctime>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "hex.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

namespace {

using runtime::errc;

constexpr const char* algorithm = "AWS4-HMAC-SHA256";
constexpr const char* service = "s3";
constexpr size_t max_key_bytes = 1024;
constexpr size_t max_bucket_bytes = 255;
constexpr std::chrono::seconds max_expiry{604800};

struct url_deleter {
  void operator()(CURLU* x) const {
    curl_url_cleanup(x);
  }
};

std::optional<std::string> part_of(CURLU* url, CURLUPart part) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, 0) != CURLUE_OK)
    return std::nullopt;
  std::string result{text};
  curl_free(text);
  return result;
}

bool ascii_lower(unsigned char c) {
  return c >= 'a' && c <= 'z';
}

bool ascii_alnum(unsigned char c) {
  return ascii_lower(c) || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string lower(std::string text) {
  for (auto& c : text)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return text;
}

/// An endpoint URL taken apart: the scheme, the host (lower case, IPv6 in
/// brackets) and the port, empty when it is the scheme's default.
struct endpoint {
  std::string scheme;
  std::string host;
  std::string port;

  /// The host header libcurl sends for it.
  std::string authority() const {
    return port.empty() ? host : host + ":" + port;
  }
};

/// The endpoint `url` names, or why it names none.
std::optional<endpoint> parse_endpoint(const std::string& url,
                                       std::string& why) {
  why = "must be an http or https URL";
  std::unique_ptr<CURLU, url_deleter> parsed{curl_url()};
  if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0))
    return std::nullopt;
  endpoint result;
  result.scheme = lower(part_of(parsed.get(), CURLUPART_SCHEME).value_or(""));
  if (result.scheme != "http" && result.scheme != "https")
    return std::nullopt;
  auto host = part_of(parsed.get(), CURLUPART_HOST);
  if (!host || host->empty())
    return std::nullopt;
  result.host = lower(*host);
  if (part_of(parsed.get(), CURLUPART_USER)
      || part_of(parsed.get(), CURLUPART_PASSWORD)) {
    why = "must not hold credentials";
    return std::nullopt;
  }
  auto path = part_of(parsed.get(), CURLUPART_PATH).value_or("/");
  if ((path != "/" && !path.empty()) || part_of(parsed.get(), CURLUPART_QUERY)
      || part_of(parsed.get(), CURLUPART_FRAGMENT)) {
    why = "must be scheme://host[:port] with no path, query or fragment";
    return std::nullopt;
  }
  auto port = part_of(parsed.get(), CURLUPART_PORT).value_or("");
  auto default_port = result.scheme == "https" ? "443" : "80";
  result.port = port == default_port ? "" : port;
  return result;
}

endpoint endpoint_of(const s3_config& cfg) {
  std::string why;
  auto result = parse_endpoint(cfg.endpoint_url, why);
  if (!result)
    throw std::invalid_argument("s3_config::endpoint_url " + why);
  return *result;
}

/// RFC 3986 percent-encoding as SigV4 defines it: unreserved characters
/// kept, every other byte as %XX in upper case; '/' kept if `keep_slash`.
std::string uri_encode(const std::string& text, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string result;
  result.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
        || (keep_slash && c == '/')) {
      result += static_cast<char>(c);
    } else {
      result += '%';
      result += digits[c >> 4];
      result += digits[c & 0xF];
    }
  }
  return result;
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr)
      != 1)
    throw std::runtime_error("SHA-256 failed");
  return detail::to_hex(digest, size);
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t size = 0;
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(),
                 key.size(),
                 reinterpret_cast<const unsigned char*>(data.data()),
                 data.size(), mac, sizeof mac, &size))
    throw std::runtime_error("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), size);
}

std::string utc(std::chrono::system_clock::time_point t, const char* format) {
  auto seconds = std::chrono::system_clock::to_time_t(t);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[32];
  std::strftime(text, sizeof text, format, &parts);
  return text;
}

caf::error bad(const std::string& field, const std::string& why) {
  return runtime::make_error(errc::invalid_request,
                             "s3Config." + field + ": " + why);
}

/// The string at `value[field]` into `out`; an error if it is missing (when
/// `required`), not a string, or empty when required. null counts as
/// missing.
caf::error string_field(const nlohmann::json& value, const char* field,
                        bool required, std::string& out) {
  auto i = value.find(field);
  if (i == value.end() || i->is_null())
    return required ? bad(field, "missing") : caf::none;
  if (!i->is_string())
    return bad(field, "must be a string");
  out = i->get<std::string>();
  if (required && out.empty())
    return bad(field, "must not be empty");
  return caf::none;
}

bool valid_bucket(const std::string& bucket) {
  return !bucket.empty() && bucket.size() <= max_bucket_bytes
         && std::all_of(bucket.begin(), bucket.end(), [](unsigned char c) {
              return ascii_alnum(c) || c == '.' || c == '-' || c == '_';
            });
}

bool valid_region(const std::string& region) {
  return region.size() <= 64
         && std::all_of(region.begin(), region.end(), [](unsigned char c) {
              return ascii_lower(c) || (c >= '0' && c <= '9') || c == '-';
            });
}

/// Whether `path` has a "." or ".." segment, which libcurl would resolve
/// before sending, so the object written would not be the one signed.
bool has_dot_segment(const std::string& path) {
  size_t begin = 0;
  while (begin <= path.size()) {
    auto end = path.find('/', begin);
    if (end == std::string::npos)
      end = path.size();
    auto segment = path.substr(begin, end - begin);
    if (segment == "." || segment == "..")
      return true;
    begin = end + 1;
  }
  return false;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> result;
  size_t begin = 0;
  for (;;) {
    auto end = text.find(separator, begin);
    result.push_back(text.substr(begin, end - begin));
    if (end == std::string::npos)
      return result;
    begin = end + 1;
  }
}

} // namespace

caf::expected<s3_config> parse_s3_config(const nlohmann::json& value) {
  if (!value.is_object())
    return runtime::make_error(errc::invalid_request,
                               "s3Config: must be an object");
  s3_config cfg;
  if (auto err = string_field(value, "accessId", true, cfg.access_id))
    return err;
  if (auto err = string_field(value, "accessSecret", true, cfg.access_secret))
    return err;
  if (auto err = string_field(value, "bucketName", true, cfg.bucket))
    return err;
  if (!valid_bucket(cfg.bucket))
    return bad("bucketName", "must be at most 255 of letters, digits, '.', "
                             "'-' and '_'");
  std::string url;
  if (auto err = string_field(value, "endpointUrl", true, url))
    return err;
  std::string why;
  auto where = parse_endpoint(url, why);
  if (!where)
    return bad("endpointUrl", why);
  cfg.endpoint_url = where->scheme + "://" + where->authority();
  if (auto err = string_field(value, "objectPath", false, cfg.object_path))
    return err;
  cfg.object_path.erase(0, cfg.object_path.find_first_not_of('/'));
  if (cfg.object_path.size() > max_key_bytes)
    return bad("objectPath",
               "longer than " + std::to_string(max_key_bytes) + " bytes");
  if (has_dot_segment(cfg.object_path))
    return bad("objectPath", "must not have '.' or '..' segments");
  if (auto err = string_field(value, "region", false, cfg.region))
    return err;
  if (!valid_region(cfg.region))
    return bad("region", "must be at most 64 of lower-case letters, digits "
                         "and '-'");
  return cfg;
}

std::string s3_object_key(const s3_config& cfg, const std::string& object_key) {
  if (cfg.object_path.empty())
    return object_key;
  if (cfg.object_path.back() == '/')
    return cfg.object_path + object_key;
  return cfg.object_path;
}

std::string s3_region(const s3_config& cfg) {
  if (!cfg.region.empty())
    return cfg.region;
  auto labels = split(endpoint_of(cfg).host, '.');
  auto n = labels.size();
  if (n >= 4 && labels[0] == "s3" && labels[n - 2] == "amazonaws"
      && labels[n - 1] == "com") {
    if (n == 4 && !labels[1].empty())
      return labels[1];
    if (n == 5 && labels[1] == "dualstack" && !labels[2].empty())
      return labels[2];
  }
  return "us-east-1";
}

std::string presigned_url(const s3_config& cfg, const std::string& method,
                          s3_addressing addressing, const std::string& key,
                          std::chrono::seconds expires,
                          std::chrono::system_clock::time_point now) {
  auto where = endpoint_of(cfg);
  auto path = "/" + uri_encode(key, true);
  if (addressing == s3_addressing::virtual_host)
    where.host = cfg.bucket + "." + where.host;
  else
    path = "/" + uri_encode(cfg.bucket, false) + path;
  auto region = s3_region(cfg);
  auto date = utc(now, "%Y%m%d");
  auto timestamp = utc(now, "%Y%m%dT%H%M%SZ");
  auto scope = date + "/" + region + "/" + service + "/aws4_request";
  expires = std::clamp(expires, std::chrono::seconds{1}, max_expiry);
  auto query =
    std::string{"X-Amz-Algorithm="} + algorithm
    + "&X-Amz-Credential=" + uri_encode(cfg.access_id + "/" + scope, false)
    + "&X-Amz-Date=" + timestamp + "&X-Amz-Expires="
    + std::to_string(expires.count()) + "&X-Amz-SignedHeaders=host";
  auto canonical_request = method + "\n" + path + "\n" + query + "\nhost:"
                           + where.authority() + "\n\nhost\nUNSIGNED-PAYLOAD";
  auto string_to_sign = std::string{algorithm} + "\n" + timestamp + "\n" + scope
                        + "\n" + sha256_hex(canonical_request);
  auto signing_key = hmac_sha256(
    hmac_sha256(
      hmac_sha256(hmac_sha256("AWS4" + cfg.access_secret, date), region),
      service),
    "aws4_request");
  auto signature = hmac_sha256(signing_key, string_to_sign);
  return where.scheme + "://" + where.authority() + path + "?" + query
         + "&X-Amz-Signature="
         + detail::to_hex(
           reinterpret_cast<const unsigned char*>(signature.data()),
           signature.size());
}

std::string presigned_put_url(const s3_config& cfg,
                              const std::string& object_key,
                              std::chrono::seconds expires,
                              std::chrono::system_clock::time_point now) {
  return presigned_url(cfg, "PUT", s3_addressing::path_style,
                       s3_object_key(cfg, object_key), expires, now);
}

} // namespace vidnode::net
