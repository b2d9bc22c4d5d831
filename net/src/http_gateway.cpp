#include "vidnode/net/http_gateway.hpp"

#include <atomic>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>

#include <caf/scoped_actor.hpp>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "http_api_keys.hpp"
#include "http_console.hpp"
#include "http_gateway_state.hpp"
#include "http_runpod.hpp"
#include "vidnode/net/address_class.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

using detail::gateway_state;
using runtime::errc;
using runtime::make_error;

struct http_gateway::impl {
  std::shared_ptr<gateway_state> state;
  std::unique_ptr<httplib::Server> server;
  std::thread listener;
  uint16_t port = 0;
  std::string listen_url;
  std::atomic<bool> stopped{false};
};

namespace {

/// Requests one kept-alive connection may carry before it is closed.
constexpr size_t keep_alive_requests = 1000;

caf::error bad_option(const std::string& what) {
  return make_error(errc::invalid_request, what);
}

caf::error check_options(const http_gateway_options& opts) {
  if (opts.endpoints.empty())
    return bad_option("http-listen: no --endpoint: give at least one "
                      "(ID=MODEL, e.g. --endpoint sim=sim)");
  for (size_t i = 0; i < opts.endpoints.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (opts.endpoints[i].id == opts.endpoints[j].id)
        return bad_option("endpoint: '" + opts.endpoints[i].id
                          + "' is given twice");
  if (opts.api_key_file.empty()) {
    auto kind = classify_literal(opts.host);
    if (opts.host != "localhost" && (!kind || *kind != address_class::loopback))
      return bad_option("http-listen: " + opts.host
                        + " is not a loopback address, and without "
                          "--api-key-file anyone who reaches it could run "
                          "and cancel jobs: give --api-key-file, or bind "
                          "127.0.0.1");
  }
  if (opts.tls_certificate.empty() != opts.tls_key.empty())
    return bad_option("http-listen: TLS needs both a certificate and a key");
  if (opts.threads < 2)
    return bad_option("http-threads: must be at least 2");
  return caf::none;
}

/// Makes every error answer, also those httplib makes itself (no route,
/// a body too large), a JSON body.
void use_json_errors(httplib::Server& server) {
  server.set_error_handler(httplib::Server::HandlerWithResponse{
    [](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty())
        return httplib::Server::HandlerResponse::Unhandled;
      nlohmann::json body;
      if (res.status == 404) {
        body = detail::error_body("not_found",
                                  "no route " + req.method + " " + req.path);
      } else if (res.status == 413) {
        res.status = 400;
        body = detail::error_body(
          "invalid_request",
          "body: larger than "
            + std::to_string(detail::max_runsync_body_bytes >> 20) + " MB");
      } else if (res.status == 400) {
        body = detail::error_body("invalid_request",
                                  "the request could not be read: malformed "
                                  "HTTP, or a body without Content-Length");
      } else {
        body = detail::error_body("http_" + std::to_string(res.status),
                                  "HTTP status " + std::to_string(res.status));
      }
      res.set_content(body.dump(), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }});
  server.set_exception_handler([](const httplib::Request& req,
                                  httplib::Response& res,
                                  std::exception_ptr thrown) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(thrown);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("HTTP gateway: {} {}: {}", req.method, req.path, what);
    res.status = 500;
    res.set_content(detail::error_body("internal", "internal error").dump(),
                    "application/json");
  });
}

} // namespace

caf::error http_gateway::check(const http_gateway_options& opts) {
  if (auto err = check_options(opts))
    return err;
  detail::api_keys keys{opts.api_key_file};
  if (auto err = keys.reload())
    return err;
  for (const auto* file : {&opts.tls_certificate, &opts.tls_key})
    if (!file->empty() && ::access(file->c_str(), R_OK) != 0)
      return bad_option("http-listen: the TLS file '" + *file
                        + "' cannot be read");
  return caf::none;
}

http_gateway::http_gateway(std::unique_ptr<impl> state)
  : impl_(std::move(state)) {}

http_gateway::~http_gateway() {
  stop();
}

uint16_t http_gateway::port() const noexcept {
  return impl_->port;
}

std::string http_gateway::listen_url() const {
  return impl_->listen_url;
}

std::string http_gateway::base_url() const {
  return impl_->state->links->base_url();
}

void http_gateway::reload_keys() {
  if (auto err = impl_->state->keys.reload())
    spdlog::warn("HTTP gateway: keeping the API keys in use: {}",
                 runtime::detail_of(err));
  else
    spdlog::info("HTTP gateway: API keys read again from {}",
                 impl_->state->options.api_key_file);
}

void http_gateway::stop() {
  if (impl_->stopped.exchange(true))
    return;
  impl_->state->hub.stop();
  impl_->server->stop();
  if (impl_->listener.joinable())
    impl_->listener.join();
}

caf::expected<std::unique_ptr<http_gateway>>
http_gateway::start(caf::actor_system& sys, runtime::admission_actor admission,
                    http_gateway_options opts) {
  if (auto err = check_options(opts))
    return err;
  if (!opts.links)
    opts.links = std::make_shared<http_links>();
  auto result = std::make_unique<impl>();
  auto tls = !opts.tls_certificate.empty();
  if (tls) {
    auto server = std::make_unique<httplib::SSLServer>(
      opts.tls_certificate.c_str(), opts.tls_key.c_str(), nullptr, nullptr,
      opts.tls_passphrase.empty() ? nullptr : opts.tls_passphrase.c_str());
    if (!server->is_valid())
      return bad_option("http-listen: the TLS certificate '"
                        + opts.tls_certificate + "' or key '" + opts.tls_key
                        + "' cannot be loaded");
    result->server = std::move(server);
  } else {
    result->server = std::make_unique<httplib::Server>();
  }
  auto state =
    std::make_shared<gateway_state>(sys, std::move(admission), std::move(opts));
  if (auto err = state->keys.reload())
    return err;
  auto& server = *result->server;
  auto threads = state->options.threads;
  server.new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  server.set_payload_max_length(detail::max_runsync_body_bytes);
  server.set_keep_alive_timeout(5);
  // Without it every answer waits for the client's delayed ACK (Nagle):
  // about 40 ms a request.
  server.set_tcp_nodelay(true);
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // process bind the same port and take half of the requests.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_keep_alive_max_count(keep_alive_requests);
  use_json_errors(server);
  detail::add_runpod_routes(server, state);
  detail::add_console_routes(server, detail::make_console_backend(state));
  const auto& host = state->options.host;
  int port =
    state->options.port == 0
      ? server.bind_to_any_port(host)
      : (server.bind_to_port(host, state->options.port) ? state->options.port
                                                        : -1);
  if (port <= 0)
    return bad_option("http-listen: cannot listen on " + host + ":"
                      + std::to_string(state->options.port)
                      + " (in use, or not an address of this machine)");
  result->port = static_cast<uint16_t>(port);
  auto shown_host =
    host.find(':') != std::string::npos ? "[" + host + "]" : host;
  result->listen_url = std::string{tls ? "https" : "http"} + "://" + shown_host
                       + ":" + std::to_string(port);
  auto base = state->options.public_url;
  if (base.empty()) {
    // Links to 0.0.0.0 lead nowhere: a wildcard address is shown as this
    // machine's name.
    auto linked_host = shown_host;
    char name[256] = {};
    if ((host == "0.0.0.0" || host == "::" || host == "[::]")
        && ::gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0')
      linked_host = name;
    base = std::string{tls ? "https" : "http"} + "://" + linked_host + ":"
           + std::to_string(port);
  }
  state->links->set_base_url(base);
  result->state = state;
  result->listener = std::thread{[&server] { server.listen_after_bind(); }};
  spdlog::info("HTTP gateway on {} (endpoints: {})", base,
               state->endpoint_names());
  return std::unique_ptr<http_gateway>{new http_gateway(std::move(result))};
}

} // namespace vidnode::net
