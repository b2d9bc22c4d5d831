#pragma once

/// @file
/// Certificates for TLS tests, made at test time in a temporary directory
/// with scripts/make-certs.sh and the openssl command-line tool. Needs
/// MAKE_CERTS_SCRIPT (the script's path).

#include <string>
#include <vector>

#include "support/temp_directory.hpp"

namespace vidnode::test {

/// A temporary directory of certificates, removed when it goes. Throws
/// std::runtime_error when a certificate cannot be made.
class certificates {
public:
  /// Runs scripts/make-certs.sh with `args` into a fresh directory: ca.pem,
  /// ca.key, node.pem, node.key, client.pem, client.key by default.
  explicit certificates(const std::vector<std::string>& args = {});

  certificates(const certificates&) = delete;
  certificates& operator=(const certificates&) = delete;

  /// The path of `file` in the directory.
  std::string path(const std::string& file) const;

  /// Runs scripts/make-certs.sh again into the same directory with `args`
  /// (the existing CA signs what it makes).
  void make(const std::vector<std::string>& args) const;

  /// Makes NAME.pem and NAME.key, signed by this directory's CA for TLS
  /// server and client use, valid from `not_before` to `not_after`
  /// ("YYYYMMDDHHMMSSZ", in the past or the future: `openssl ca` takes any).
  void issue_with_dates(const std::string& name, const std::string& not_before,
                        const std::string& not_after) const;

  /// Writes `text` to `file` in the directory.
  void write(const std::string& file, const std::string& text) const;

  /// The vidnode or vidctl flags for `name`.pem, `name`.key and ca.pem.
  std::vector<std::string> flags(const std::string& name) const;

  /// flags(name), but trusting `other`'s CA as well as this one: a CA file
  /// `both.pem` of the two.
  std::vector<std::string> flags_trusting_also(const std::string& name,
                                               const certificates& other) const;

private:
  temp_directory dir_{"vidnode-certs"};
};

} // namespace vidnode::test
