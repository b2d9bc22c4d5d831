#pragma once

#include <cstdint>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>

namespace vidnode::net {

/// The PEM files that make a process a member of a cluster under mutual
/// TLS: its own certificate and key, and the cluster CA that every peer's
/// certificate must be signed by. CAF checks no host names: any holder of a
/// certificate from this CA is trusted, so the CA must be one made for the
/// cluster alone (scripts/make-certs.sh makes one).
struct tls_files {
  /// This process's certificate (PEM); intermediate CA certificates may
  /// follow it in the same file.
  std::string certificate;

  /// The certificate's private key (PEM, encrypted or not).
  std::string key;

  /// The CA certificates (PEM, one or more in one file) trusted to sign
  /// peers' certificates. Several are all trusted, which is how a CA is
  /// replaced without stopping the cluster (README, "TLS").
  std::string ca;

  /// Decrypts `key` when it is encrypted; ignored when it is not.
  std::string passphrase;

  /// Whether any of certificate, key or ca is set: TLS is asked for.
  bool any() const noexcept {
    return !certificate.empty() || !key.empty() || !ca.empty();
  }
};

/// How a process uses its certificate, which decides the extended key
/// usages the certificate must allow (when it names any).
enum class tls_role : uint8_t {
  /// Connects only (vidctl, net::client): TLS client authentication.
  client,
  /// Publishes and connects (vidnode): TLS server and client
  /// authentication.
  node,
};

/// The environment variable vidnode and vidctl read the key's passphrase
/// from (a passphrase given as a flag would be visible to every user in
/// `ps`; a process's environment is readable only by its owner and root).
constexpr const char* tls_passphrase_variable = "VIDNODE_TLS_PASSPHRASE";

/// Loads and checks `files` with OpenSSL the way CAF will use them, so that
/// a process refuses bad files at start instead of hanging in its first
/// connect or terminating at its first accepted connection (CAF 0.17.6 does
/// both). Checks, in order: all three files are given; each can be read;
/// the certificate is a PEM certificate valid now (not expired, not yet
/// valid); the key is a PEM private key (decrypted with `passphrase` when it
/// is encrypted) that matches the certificate; the CA file holds at least
/// one PEM certificate; the certificate is signed by one of them (through
/// the intermediates that follow it) and allows the TLS usages `role`
/// needs. Returns nothing when all hold, else runtime::errc::invalid_request
/// whose context starts with the setting at fault (`tls-cert`, `tls-key` or
/// `tls-ca`), then the file and the reason, e.g. "tls-key: '/etc/vidnode/
/// node.key': does not match the certificate '/etc/vidnode/node.pem'".
/// Reads the files and changes nothing; takes milliseconds.
caf::error check_tls_files(const tls_files& files, tls_role role);

/// Makes every port the actor system built from `cfg` opens, and every
/// connection it makes, through transport_handle (net/transport.hpp) use
/// mutual TLS (1.3) with `files`. Checks the files first (check_tls_files,
/// for `role`) and returns its error, changing nothing, when they are
/// refused; else loads them into one TLS context and adds vidnode's TLS
/// transport to `cfg`, which keeps the protections of hardened_multiplexer
/// (fresh descriptor numbers, the message size limit, the connect deadline;
/// net/src/tls_transport.hpp says why CAF's own OpenSSL transport is not
/// used). Also loads CAF's OpenSSL module with the same files in
/// `openssl.*`, so that `sys.openssl_manager()` works, but vidnode never
/// connects through it (do not load caf::openssl::manager yourself as
/// well). The files are read here only: replacing them takes a restart.
/// Call it after load_middleman (process_config does that) and before the
/// actor system starts; starting the actor system throws std::logic_error
/// when its middleman was not loaded with load_middleman.
caf::error use_tls(caf::actor_system_config& cfg, const tls_files& files,
                   tls_role role);

/// Whether connections of `sys` made through transport_handle use TLS
/// (use_tls was called, or CAF's OpenSSL module was loaded otherwise).
bool tls_enabled(caf::actor_system& sys);

} // namespace vidnode::net
