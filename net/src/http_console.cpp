#include "http_console.hpp"
#include "http_runpod.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <utility>

#include <caf/sec.hpp>

#include "console_assets.hpp"
#include "vidnode/net/json.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::net::detail {

namespace {

using std::chrono::steady_clock;

/// How often an event stream looks for a new state.
constexpr auto poll_interval = std::chrono::milliseconds{250};

/// How long a stream may stay silent before it sends a comment, so that
/// proxies keep it open and a client that went away is noticed.
constexpr auto keep_alive_interval = std::chrono::seconds{15};

/// Jobs the console shows: the queued and running ones, then the newest
/// finished ones.
constexpr uint32_t max_jobs = 200;

/// The page runs only its own script and style, talks only to the
/// gateway, may not be framed (its buttons cancel jobs), and plays videos
/// from wherever jobs uploaded them.
constexpr auto content_security_policy =
  "default-src 'self'; img-src 'self' data:; media-src 'self' http: https:; "
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// An answer of the console's JSON API: a status and its body.
struct reply {
  int status = 200;
  std::string body;
};

reply error_reply(int status, const std::string& code,
                  const std::string& message) {
  return {status, to_json_text(error_body(code, message))};
}

reply error_reply(const caf::error& err) {
  return error_reply(http_status_of(err), runtime::code_name(err),
                     runtime::describe(err));
}

/// The backend and what the routes share: the latest state, so that every
/// stream and page polling at once cost one round of backend calls per
/// poll interval, and the count of streams.
struct console {
  std::shared_ptr<const console_backend> backend;
  std::atomic<int> streams{0};
  std::mutex mtx;
  reply state;
  steady_clock::time_point state_at;

  nlohmann::json job_json(const runtime::job_result& result) const {
    auto doc = to_json(result);
    auto url = backend->video_url ? backend->video_url(result) : std::string{};
    doc["video_url"] =
      url.empty() ? nlohmann::json(nullptr) : nlohmann::json(url);
    return doc;
  }

  reply read_state() const {
    auto devices = backend->nodes();
    if (!devices)
      return error_reply(devices.error());
    runtime::list_query query;
    query.limit = max_jobs;
    auto results = backend->jobs(query);
    if (!results)
      return error_reply(results.error());
    nlohmann::json doc{{"nodes", nlohmann::json::array()},
                       {"jobs", nlohmann::json::array()},
                       {"endpoints", nlohmann::json::array()}};
    for (const auto& device : *devices)
      doc["nodes"].push_back(to_json(device));
    for (const auto& result : *results)
      doc["jobs"].push_back(job_json(result));
    for (const auto& endpoint : backend->endpoints)
      doc["endpoints"].push_back({{"id", endpoint.id},
                                  {"model", endpoint.model},
                                  {"defaults", endpoint.defaults}});
    return {200, to_json_text(doc)};
  }

  /// The state, read again when the one kept is older than a poll
  /// interval. Callers wait for one another's reads.
  reply current_state() {
    std::lock_guard<std::mutex> guard{mtx};
    auto now = steady_clock::now();
    if (state.body.empty() || now - state_at >= poll_interval) {
      state = read_state();
      state_at = steady_clock::now();
    }
    return state;
  }
};

void send(httplib::Response& res, const reply& answer) {
  res.status = answer.status;
  res.set_header("Cache-Control", "no-cache");
  res.set_content(answer.body, "application/json");
}

const char* content_type_of(std::string_view name) {
  auto ends_with = [name](std::string_view suffix) {
    return name.size() >= suffix.size()
           && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".html"))
    return "text/html; charset=utf-8";
  if (ends_with(".js"))
    return "text/javascript; charset=utf-8";
  if (ends_with(".css"))
    return "text/css; charset=utf-8";
  return "application/octet-stream";
}

void serve_asset(httplib::Server& server, const std::string& path,
                 std::string_view name) {
  auto bytes = console_asset(name);
  auto type = content_type_of(name);
  server.Get(
    path, [bytes, type](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Content-Security-Policy", content_security_policy);
      res.set_content(bytes.data(), bytes.size(), type);
    });
}

/// Sends the state whenever its text changes, a comment when nothing was
/// sent for keep_alive_interval, and ends when the client goes, its key
/// stops being valid or the server stops (httplib then calls it no more).
void stream_events(const std::shared_ptr<console>& self,
                   const httplib::Request& req, httplib::Response& res) {
  struct stream_state {
    std::string last;
    steady_clock::time_point sent_at;
  };
  auto progress = std::make_shared<stream_state>();
  progress->sent_at = steady_clock::now();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
    "text/event-stream",
    [self, &req, progress](size_t, httplib::DataSink& sink) {
      if (!self->backend->authorized(req)) {
        sink.done();
        return true;
      }
      auto answer = self->current_state();
      auto now = steady_clock::now();
      std::string text;
      if (answer.body != progress->last) {
        progress->last = answer.body;
        text = (answer.status == 200 ? "event: state\ndata: "
                                     : "event: failure\ndata: ")
               + answer.body + "\n\n";
      } else if (now - progress->sent_at >= keep_alive_interval) {
        text = ": keep-alive\n\n";
      }
      if (!text.empty()) {
        if (!sink.write(text.data(), text.size()))
          return false;
        progress->sent_at = now;
      }
      std::this_thread::sleep_for(poll_interval);
      return sink.is_writable();
    },
    [self](bool) { --self->streams; });
}

} // namespace

void add_console_routes(httplib::Server& server,
                        std::shared_ptr<const console_backend> backend) {
  auto self = std::make_shared<console>();
  self->backend = std::move(backend);
  serve_asset(server, "/", "index.html");
  serve_asset(server, "/console/console.js", "console.js");
  serve_asset(server, "/console/console.css", "console.css");
  auto refused = [self](const httplib::Request& req, httplib::Response& res) {
    if (self->backend->authorized(req))
      return false;
    send(res, error_reply(401, "unauthorized",
                          "this needs an API key (Authorization: Bearer KEY)"));
    return true;
  };
  server.Get("/console/api/state", [self, refused](const httplib::Request& req,
                                                   httplib::Response& res) {
    if (!refused(req, res))
      send(res, self->current_state());
  });
  server.Get("/console/api/events", [self, refused](const httplib::Request& req,
                                                    httplib::Response& res) {
    if (refused(req, res))
      return;
    if (++self->streams > self->backend->max_streams) {
      --self->streams;
      send(res,
           error_reply(503, "busy", "too many console event streams are open"));
      return;
    }
    stream_events(self, req, res);
  });
  server.Post(R"(/console/api/jobs/(\d+)/(cancel|retry))",
              bodiless([self, refused](const httplib::Request& req,
                                       httplib::Response& res) {
                if (refused(req, res))
                  return;
                auto id = parse_job_id(req.matches[1]);
                if (id.value == 0) {
                  send(res, error_reply(404, "unknown_job", "no such job"));
                  return;
                }
                const auto& backend = *self->backend;
                auto result = req.matches[2] == "cancel" ? backend.cancel(id)
                                                         : backend.retry(id);
                if (!result)
                  send(res, error_reply(result.error()));
                else
                  send(res, {200, to_json_text(self->job_json(*result))});
              }));
  server.Post(
    "/console/api/submit",
    [self, refused](const httplib::Request& req, httplib::Response& res) {
      if (refused(req, res))
        return;
      auto doc = nlohmann::json::parse(req.body, nullptr, false);
      if (doc.is_discarded() || !doc.is_object() || !doc.contains("endpoint")
          || !doc["endpoint"].is_string() || !doc.contains("input")
          || !doc["input"].is_object()) {
        send(res, error_reply(
                    400, "invalid_request",
                    "the body must be {\"endpoint\": ID, \"input\": {...}}"));
        return;
      }
      auto endpoint = doc["endpoint"].get<std::string>();
      const auto& known = self->backend->endpoints;
      if (std::none_of(known.begin(), known.end(),
                       [&](const auto& x) { return x.id == endpoint; })) {
        send(res, error_reply(404, "not_found", "no endpoint " + endpoint));
        return;
      }
      auto id = self->backend->submit(endpoint, doc["input"]);
      if (!id)
        send(res, error_reply(id.error()));
      else
        send(res, {200, to_json_text({{"id", id->value}})});
    });
}

} // namespace vidnode::net::detail
