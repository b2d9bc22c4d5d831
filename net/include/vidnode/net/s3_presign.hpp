#pragma once

/// @file
/// A Runpod request's `s3Config` (../shared/anchors/RUNPOD.md) and the
/// presigned URL the gateway turns it into (AWS Signature Version 4, query
/// string authentication), so that a job's video is PUT to the bucket with
/// `job_spec::output_url` and the secret never enters the job, the journal
/// or a log.

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

namespace vidnode::net {

/// Where a client wants its video: an S3 bucket and the credentials that
/// may write to it. `access_secret` is a secret: nothing vidnode logs,
/// journals or answers contains it.
struct s3_config {
  /// The access key id (`accessId`); appears in presigned URLs.
  std::string access_id;
  /// The secret access key (`accessSecret`); only ever used to sign.
  std::string access_secret;
  /// The bucket (`bucketName`): 1 to 255 of [A-Za-z0-9._-].
  std::string bucket;
  /// `endpointUrl`, as `scheme://host[:port]` (http or https, host in lower
  /// case, no path; a port only when it is not the scheme's default).
  std::string endpoint_url;
  /// `objectPath`, without leading '/': the object's key, or, when it ends
  /// with '/', the prefix of the key; empty if not given.
  std::string object_path;
  /// `region`; empty if not given (presigned_put_url then derives one).
  std::string region;
};

/// Parses a Runpod request's `s3Config` object: `accessId`, `accessSecret`,
/// `bucketName`, `endpointUrl` (strings, required), `objectPath` and
/// `region` (strings, optional); other fields are ignored. Errors:
/// invalid_request whose context names the field and why, e.g.
/// "s3Config.bucketName: missing" or "s3Config.endpointUrl: must be an http
/// or https URL". No error contains the value of any field.
caf::expected<s3_config> parse_s3_config(const nlohmann::json& value);

/// The key an object is stored under: `cfg.object_path` if set and not a
/// prefix, `cfg.object_path + object_key` if it ends with '/', `object_key`
/// otherwise.
std::string s3_object_key(const s3_config& cfg, const std::string& object_key);

/// The signing region: `cfg.region` if set; else REGION of an endpoint host
/// `s3.REGION.amazonaws.com` (or `s3.dualstack.REGION.amazonaws.com`); else
/// "us-east-1".
std::string s3_region(const s3_config& cfg);

/// A URL that lets whoever holds it PUT one object, the key s3_object_key()
/// names, until `now + expires`: path style
/// (`{endpoint_url}/{bucket}/{key}`), signed for the host header alone with
/// an unsigned payload, so any client that sends the body as is (libcurl's
/// upload, `curl -T`) may use it. `expires` is clamped to 1 s .. 7 days
/// (SigV4's bounds). The key is percent-encoded per RFC 3986 ('/' kept).
/// Requires `cfg` as parse_s3_config() returns it (throws
/// std::invalid_argument if its endpoint_url is not an http or https URL).
/// The result holds the access id, never the secret.
std::string presigned_put_url(const s3_config& cfg,
                              const std::string& object_key,
                              std::chrono::seconds expires,
                              std::chrono::system_clock::time_point now);

/// How a presigned URL names the bucket.
enum class s3_addressing : uint8_t {
  /// `https://host/BUCKET/KEY`: works with every S3-compatible store.
  path_style,
  /// `https://BUCKET.host/KEY`: AWS's preferred form.
  virtual_host,
};

/// The signer presigned_put_url() uses, for any method and addressing
/// (tests check it against AWS's published example); `key` is the object's
/// key itself, not combined with `cfg.object_path`.
std::string presigned_url(const s3_config& cfg, const std::string& method,
                          s3_addressing addressing, const std::string& key,
                          std::chrono::seconds expires,
                          std::chrono::system_clock::time_point now);

} // namespace vidnode::net
