#include "vidnode/net/tls.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "vidnode/runtime/errc.hpp"

#include "tls_transport.hpp"

namespace vidnode::net {

namespace {

/// Longest PEM file read: far above any certificate bundle, and a bound on
/// what a mistaken path (a disk image, say) makes the process read.
constexpr long max_pem_file_size = 1 << 20;

template <auto Free>
struct openssl_free {
  template <class T>
  void operator()(T* x) const {
    Free(x);
  }
};

using bio_ptr = std::unique_ptr<BIO, openssl_free<BIO_free_all>>;
using x509_ptr = std::unique_ptr<X509, openssl_free<X509_free>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_free<EVP_PKEY_free>>;
using store_ptr = std::unique_ptr<X509_STORE, openssl_free<X509_STORE_free>>;
using store_ctx_ptr =
  std::unique_ptr<X509_STORE_CTX, openssl_free<X509_STORE_CTX_free>>;

struct x509_stack_free {
  void operator()(STACK_OF(X509) * x) const {
    sk_X509_pop_free(x, X509_free);
  }
};

using x509_stack_ptr = std::unique_ptr<STACK_OF(X509), x509_stack_free>;

caf::error refuse(const char* setting, const std::string& path,
                  const std::string& reason) {
  ERR_clear_error();
  return runtime::make_error(runtime::errc::invalid_request,
                             std::string{setting} + ": '" + path
                               + "': " + reason);
}

/// The contents of the regular file at `path` as a memory BIO, or nothing
/// and `reason` set. Never opens anything but a regular file, so a FIFO or
/// a device cannot block the start.
bio_ptr read_file(const std::string& path, std::string& reason) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    reason = std::string{"cannot read it: "} + std::strerror(errno);
    return nullptr;
  }
  if (!S_ISREG(info.st_mode)) {
    reason = "is not a regular file";
    return nullptr;
  }
  if (info.st_size > max_pem_file_size) {
    reason = "is larger than 1 MiB, too large for a PEM file";
    return nullptr;
  }
  std::unique_ptr<FILE, int (*)(FILE*)> file{std::fopen(path.c_str(), "rb"),
                                             &std::fclose};
  if (!file) {
    reason = std::string{"cannot read it: "} + std::strerror(errno);
    return nullptr;
  }
  std::vector<char> bytes(static_cast<size_t>(info.st_size));
  auto n = std::fread(bytes.data(), 1, bytes.size(), file.get());
  if (std::ferror(file.get())) {
    reason = std::string{"cannot read it: "} + std::strerror(errno);
    return nullptr;
  }
  bio_ptr bio{BIO_new(BIO_s_mem())};
  if (!bio || BIO_write(bio.get(), bytes.data(), static_cast<int>(n)) < 0) {
    reason = "out of memory";
    return nullptr;
  }
  return bio;
}

/// Every PEM certificate in `bio`, in file order.
std::vector<x509_ptr> read_certificates(BIO* bio) {
  std::vector<x509_ptr> result;
  while (auto cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr))
    result.emplace_back(cert);
  ERR_clear_error();
  return result;
}

/// `t` as "2026-11-27 08:00:00 UTC".
std::string format_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1)
    return "an unreadable date";
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

/// The subject of `cert` in OpenSSL's one-line form ("CN = node, O = x").
std::string subject_of(X509* cert) {
  bio_ptr out{BIO_new(BIO_s_mem())};
  if (!out || cert == nullptr)
    return "?";
  X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0,
                     XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  auto n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

/// What the passphrase callback was given and whether OpenSSL asked for it.
struct passphrase_request {
  const std::string* passphrase;
  bool asked = false;
};

int give_passphrase(char* buf, int size, int, void* user) {
  auto request = static_cast<passphrase_request*>(user);
  request->asked = true;
  const auto& passphrase = *request->passphrase;
  // CAF's own callback cuts a longer passphrase to size - 1 bytes; refusing
  // it here keeps the two from disagreeing.
  if (passphrase.empty() || passphrase.size() >= static_cast<size_t>(size))
    return -1;
  std::memcpy(buf, passphrase.data(), passphrase.size());
  return static_cast<int>(passphrase.size());
}

caf::error check_validity(const tls_files& files, X509* cert) {
  auto not_before = X509_get0_notBefore(cert);
  auto not_after = X509_get0_notAfter(cert);
  auto starts = X509_cmp_current_time(not_before);
  auto ends = X509_cmp_current_time(not_after);
  if (starts == 0 || ends == 0)
    return refuse("tls-cert", files.certificate,
                  "has an unreadable validity period");
  if (starts > 0)
    return refuse("tls-cert", files.certificate,
                  "is not valid yet: valid from " + format_time(not_before)
                    + " (is this machine's clock right?)");
  if (ends < 0)
    return refuse("tls-cert", files.certificate,
                  "has expired: valid until " + format_time(not_after));
  return caf::none;
}

caf::error check_key(const tls_files& files, X509* cert) {
  std::string reason;
  auto bio = read_file(files.key, reason);
  if (!bio)
    return refuse("tls-key", files.key, reason);
  passphrase_request request{&files.passphrase};
  pkey_ptr key{
    PEM_read_bio_PrivateKey(bio.get(), nullptr, give_passphrase, &request)};
  if (!key) {
    if (!request.asked)
      return refuse("tls-key", files.key, "holds no PEM private key");
    if (files.passphrase.empty())
      return refuse("tls-key", files.key,
                    std::string{"is encrypted and no passphrase was given "
                                "(set "}
                      + tls_passphrase_variable + ")");
    return refuse("tls-key", files.key,
                  "cannot be decrypted with the passphrase given (wrong "
                  "passphrase?)");
  }
  if (X509_check_private_key(cert, key.get()) != 1)
    return refuse("tls-key", files.key,
                  "does not match the certificate '" + files.certificate + "'");
  return caf::none;
}

/// Why `cert` (with the intermediates in `chain`) does not verify against
/// `store` for `purpose`, or nothing.
caf::error verify(const tls_files& files, X509_STORE* store, X509* cert,
                  STACK_OF(X509) * chain, int purpose, const char* usage) {
  store_ctx_ptr ctx{X509_STORE_CTX_new()};
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, cert, chain) != 1)
    return refuse("tls-cert", files.certificate, "out of memory");
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  if (X509_verify_cert(ctx.get()) == 1)
    return caf::none;
  auto code = X509_STORE_CTX_get_error(ctx.get());
  auto depth = X509_STORE_CTX_get_error_depth(ctx.get());
  std::string openssl_says = X509_verify_cert_error_string(code);
  switch (code) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return refuse("tls-cert", files.certificate,
                    "is not signed by a CA in '" + files.ca + "' ("
                      + openssl_says + ")");
    case X509_V_ERR_INVALID_PURPOSE:
      return refuse("tls-cert", files.certificate,
                    std::string{"does not allow "} + usage);
    default:
      break;
  }
  if (depth > 0)
    return refuse("tls-ca", files.ca,
                  "the CA certificate '"
                    + subject_of(X509_STORE_CTX_get_current_cert(ctx.get()))
                    + "' is not usable: " + openssl_says);
  return refuse("tls-cert", files.certificate, openssl_says);
}

} // namespace

caf::error check_tls_files(const tls_files& files, tls_role role) {
  for (auto [value, setting] :
       {std::pair{&files.certificate, "tls-cert"},
        std::pair{&files.key, "tls-key"}, std::pair{&files.ca, "tls-ca"}})
    if (value->empty())
      return runtime::make_error(runtime::errc::invalid_request,
                                 std::string{setting}
                                   + ": missing (tls-cert, tls-key and "
                                     "tls-ca go together)");
  std::string reason;
  auto cert_bio = read_file(files.certificate, reason);
  if (!cert_bio)
    return refuse("tls-cert", files.certificate, reason);
  auto certs = read_certificates(cert_bio.get());
  if (certs.empty())
    return refuse("tls-cert", files.certificate, "holds no PEM certificate");
  auto cert = certs.front().get();
  if (auto err = check_validity(files, cert))
    return err;
  if (auto err = check_key(files, cert))
    return err;
  auto ca_bio = read_file(files.ca, reason);
  if (!ca_bio)
    return refuse("tls-ca", files.ca, reason);
  auto authorities = read_certificates(ca_bio.get());
  if (authorities.empty())
    return refuse("tls-ca", files.ca, "holds no PEM certificate");
  store_ptr store{X509_STORE_new()};
  x509_stack_ptr chain{sk_X509_new_null()};
  if (!store || !chain)
    return refuse("tls-ca", files.ca, "out of memory");
  for (auto& authority : authorities)
    X509_STORE_add_cert(store.get(), authority.get());
  for (size_t i = 1; i < certs.size(); ++i) {
    sk_X509_push(chain.get(), certs[i].get());
    X509_up_ref(certs[i].get());
  }
  if (auto err =
        verify(files, store.get(), cert, chain.get(), X509_PURPOSE_SSL_CLIENT,
               "TLS client authentication (extended key usage "
               "clientAuth), which every process needs to connect"))
    return err;
  if (role == tls_role::node)
    if (auto err =
          verify(files, store.get(), cert, chain.get(), X509_PURPOSE_SSL_SERVER,
                 "TLS server authentication (extended key usage "
                 "serverAuth), which a node needs to accept "
                 "connections: give it a node certificate "
                 "(scripts/make-certs.sh --node NAME)"))
      return err;
  ERR_clear_error();
  return caf::none;
}

namespace detail {

caf::expected<tls_context> make_tls_context(const tls_files& files) {
  auto fail = [&](const char* setting, const std::string& path,
                  const char* what) {
    char text[256] = "unknown error";
    if (auto code = ERR_peek_last_error(); code != 0)
      ERR_error_string_n(code, text, sizeof(text));
    return refuse(setting, path, std::string{what} + ": " + text);
  };
  tls_context context{SSL_CTX_new(TLS_method()), SSL_CTX_free};
  if (!context)
    return fail("tls-cert", files.certificate, "cannot make a TLS context");
  auto ctx = context.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate.c_str()) != 1)
    return fail("tls-cert", files.certificate, "cannot load it");
  passphrase_request request{&files.passphrase};
  SSL_CTX_set_default_passwd_cb(ctx, give_passphrase);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &request);
  auto key_loaded =
    SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) == 1;
  SSL_CTX_set_default_passwd_cb(ctx, nullptr);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
  if (!key_loaded || SSL_CTX_check_private_key(ctx) != 1)
    return fail("tls-key", files.key, "cannot load it");
  if (SSL_CTX_load_verify_locations(ctx, files.ca.c_str(), nullptr) != 1)
    return fail("tls-ca", files.ca, "cannot load it");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                          | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  ERR_clear_error();
  return context;
}

} // namespace detail

caf::error use_tls(caf::actor_system_config& cfg, const tls_files& files,
                   tls_role role) {
  if (auto err = check_tls_files(files, role))
    return err;
  auto context = detail::make_tls_context(files);
  if (!context)
    return std::move(context.error());
  cfg.set("openssl.certificate", files.certificate);
  cfg.set("openssl.key", files.key);
  cfg.set("openssl.cafile", files.ca);
  if (!files.passphrase.empty())
    cfg.set("openssl.passphrase", files.passphrase);
  detail::tls_transport::load(cfg, std::move(*context));
  return caf::none;
}

bool tls_enabled(caf::actor_system& sys) {
  return sys.has_openssl_manager();
}

} // namespace vidnode::net
