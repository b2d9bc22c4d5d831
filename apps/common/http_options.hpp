#pragma once

/// @file
/// vidnode's HTTP gateway flags (README, "HTTP gateway"): --http-listen,
/// --endpoint, --api-key-file and --http-public-url, and the gateway they
/// start on the head once its node runs.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include "common/cli_options.hpp"
#include "vidnode/net/client.hpp"
#include "vidnode/net/http_gateway.hpp"
#include "vidnode/net/tls.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::apps {

/// What the gateway flags say.
struct http_flags {
  /// HOST:PORT as given; empty: no gateway.
  std::string listen;
  std::vector<std::string> endpoints;
  std::string api_key_file;
  std::string public_url;
  uint32_t threads = net::http_gateway_options{}.threads;
};

/// Adds the gateway flags to `app` (and so keys of the same names to a
/// --config file; `endpoint` takes a list there).
inline void add_http_options(CLI::App& app, http_flags& flags) {
  app
    .add_option("--http-listen", flags.listen,
                "Serve Runpod's serverless API, the videos and the web "
                "console at http://HOST:PORT/ (off by default; suggested port "
                  + std::to_string(net::suggested_http_port)
                  + "; port 0 picks a free one; HTTPS with the node's "
                    "--tls-cert and --tls-key). Head only")
    ->type_name("HOST:PORT");
  app
    .add_option("--endpoint", flags.endpoints,
                "An endpoint of the HTTP gateway, /v2/ID/: ID=MODEL then "
                "defaults of its jobs as ,key=value (input fields such as "
                "width=256,num_inference_steps=20, priority=0-9, model "
                "options, extra_fields=options|ignore); repeatable")
    ->type_name("ID=MODEL[,k=v...]");
  app
    .add_option("--api-key-file", flags.api_key_file,
                "API keys the HTTP gateway accepts, one per line (read again "
                "when the file changes and on SIGHUP); required unless "
                "--http-listen binds a loopback address")
    ->type_name("FILE");
  app
    .add_option("--http-public-url", flags.public_url,
                "The base of the video URLs the gateway hands out, as "
                "clients reach it (default: its own scheme, address and "
                "port)")
    ->type_name("URL");
  add_number(app, "--http-threads", flags.threads, 2u, 1024u,
             "Requests the HTTP gateway serves at once, long polls "
             "(runsync, status-sync, stream) included; more wait their turn "
             "(2 to 1024)");
}

namespace detail {

/// The secret that signs video links: kept in STATE_DIR/http-link-secret
/// (made on first use, readable by the owner only) so that links outlive
/// a restart; random per process without a state directory.
inline std::string link_secret(const std::string& state_dir) {
  if (state_dir.empty())
    return {};
  auto path = std::filesystem::path{state_dir} / "http-link-secret";
  {
    std::ifstream in{path};
    std::string secret;
    if (in && std::getline(in, secret) && secret.size() >= 32)
      return secret;
  }
  std::random_device source;
  std::string secret;
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 0; i < 64; ++i)
    secret += digits[source() & 0xf];
  auto old_mask = ::umask(077);
  std::ofstream out{path, std::ios::trunc};
  out << secret << '\n';
  ::umask(old_mask);
  return secret;
}

} // namespace detail

/// Checks the gateway flags into `opts`; 0, or 2 after printing why to
/// stderr. `is_worker`: --join was given (the gateway runs on the head
/// only).
inline int check_http_flags(const CLI::App& app, const http_flags& flags,
                            bool is_worker, const net::tls_files& tls,
                            const std::string& state_dir,
                            net::http_gateway_options& opts) {
  auto usage = [](const std::string& text) {
    std::fprintf(stderr, "vidnode: %s\n", text.c_str());
    return 2;
  };
  if (app.count("--http-listen") == 0) {
    for (const char* flag : {"--endpoint", "--api-key-file",
                             "--http-public-url", "--http-threads"})
      if (app.count(flag) > 0)
        return usage(std::string{flag} + " needs --http-listen");
    return 0;
  }
  if (is_worker)
    return usage("--http-listen: the HTTP gateway runs on the head only, not "
                 "with --join");
  if (!net::parse_endpoint(flags.listen, opts.host, opts.port)
      || opts.host.empty())
    return usage("--http-listen: '" + flags.listen
                 + "' is not HOST:PORT (e.g. 127.0.0.1:"
                 + std::to_string(net::suggested_http_port) + ")");
  if (flags.endpoints.empty())
    return usage("--http-listen: give at least one --endpoint ID=MODEL "
                 "(e.g. --endpoint sim=sim)");
  for (const auto& text : flags.endpoints) {
    auto endpoint = net::parse_http_endpoint(text);
    if (!endpoint)
      return usage("--" + runtime::detail_of(endpoint.error()));
    opts.endpoints.push_back(std::move(*endpoint));
  }
  opts.api_key_file = flags.api_key_file;
  if (!flags.public_url.empty()
      && ((flags.public_url.rfind("http://", 0) != 0
           && flags.public_url.rfind("https://", 0) != 0)
          || flags.public_url.find_first_of("?#") != std::string::npos))
    return usage("--http-public-url: '" + flags.public_url
                 + "' is not an http or https URL without a query or "
                   "fragment");
  opts.public_url = flags.public_url;
  opts.threads = flags.threads;
  opts.tls_certificate = tls.certificate;
  opts.tls_key = tls.key;
  opts.tls_passphrase = tls.passphrase;
  if (auto err = net::http_gateway::check(opts))
    return usage("--" + runtime::detail_of(err));
  opts.links =
    std::make_shared<net::http_links>(detail::link_secret(state_dir));
  return 0;
}

/// Starts the gateway `opts` describe into `gateway` (nothing when
/// --http-listen was not given). Returns 0, or 2 after printing why.
inline int start_http_gateway(caf::actor_system& sys,
                              runtime::admission_actor admission,
                              const CLI::App& app,
                              net::http_gateway_options opts,
                              std::unique_ptr<net::http_gateway>& gateway) {
  if (app.count("--http-listen") == 0)
    return 0;
  auto started =
    net::http_gateway::start(sys, std::move(admission), std::move(opts));
  if (!started) {
    std::fprintf(stderr, "vidnode: --%s\n",
                 runtime::detail_of(started.error()).c_str());
    return 2;
  }
  gateway = std::move(*started);
  return 0;
}

/// Tells where the gateway serves: "vidnode HTTP gateway on URL" (tests
/// read the port from it).
inline void print_http_address(const net::http_gateway& gateway) {
  std::printf("vidnode HTTP gateway on %s\n", gateway.listen_url().c_str());
  std::fflush(stdout);
}

} // namespace vidnode::apps
