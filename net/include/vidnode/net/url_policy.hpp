#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "vidnode/actors/transfers.hpp"
#include "vidnode/net/address_class.hpp"

namespace vidnode::net {

/// Which URLs a node's transfers may use, so that a client cannot make the
/// node read its local files or reach addresses only the node can reach
/// (server-side request forgery). By default:
///
/// - audio URLs are http or https; output and webhook URLs too;
/// - file URLs are refused, unless a directory is allowed (`vidnode
///   --allow-file-urls DIR`): then an audio URL may name a file inside it,
///   judged after resolving symbolic links and `..`; uploads and webhooks
///   never go to file URLs;
/// - connections to an address that is not `global` (address_class:
///   loopback, private, link-local, ...) are refused, unless `vidnode
///   --allow-private-urls`.
///
/// refusal() judges what is known without the network (the scheme, a file
/// URL's path, a host that is a literal address or `localhost`);
/// refusal(address_class) judges each address a transfer is about to
/// connect to, after name resolution and after every redirect
/// (curl_transfers asks it from libcurl's socket callback).
///
/// Not guaranteed: a file URL's path is judged when refusal() runs, and the
/// file is opened later; someone who can change the directory tree in
/// between (swap a checked file for a symbolic link) can escape it. Through
/// a proxy (the http_proxy, https_proxy or all_proxy environment variables
/// of libcurl) the address connected to is the proxy's, so the target's
/// address is not checked: the proxy must enforce its own policy.
///
/// Immutable after construction; safe to use from several threads at once.
class url_policy {
public:
  /// A policy that allows connections to global addresses and to those of
  /// the classes in `allowed` (all_special_address_classes() for `vidnode
  /// --allow-private-urls`; tests allow loopback alone), and file URLs of
  /// files inside `file_root` unless it is empty (then none). `file_root`
  /// is resolved (symbolic links, `..`) here, once.
  url_policy(std::set<address_class> allowed, const std::string& file_root);

  /// Why `url` may not be used for `use`, judged without the network, or
  /// nothing if it may (so far: its host's addresses are judged when the
  /// transfer connects). The reason says what is refused and which setting
  /// allows it, e.g. "127.0.0.1 is a loopback address (vidnode
  /// --allow-private-urls allows it)".
  std::optional<std::string> refusal(actors::url_use use,
                                     const std::string& url) const;

  /// Why a connection to `address` (as text, e.g. "169.254.169.254") of
  /// class `x` is refused, or nothing if it is allowed.
  std::optional<std::string> refusal(const std::string& address,
                                     address_class x) const;

  /// Whether connections to every address are allowed, as with `vidnode
  /// --allow-private-urls`.
  bool allows_every_address() const noexcept {
    return allowed_.size() == all_special_address_classes().size();
  }

  /// Whether file URLs are allowed (inside file_root()).
  bool allows_file_urls() const noexcept {
    return !file_root_.empty();
  }

  /// The directory whose files file URLs may name, resolved; empty if none.
  const std::filesystem::path& file_root() const noexcept {
    return file_root_;
  }

private:
  std::optional<std::string> file_refusal(const std::string& path) const;

  std::set<address_class> allowed_;
  std::filesystem::path file_root_;
};

} // namespace vidnode::net
