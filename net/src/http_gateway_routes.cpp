/// @file
/// The Runpod routes under /v2/{endpoint}/ (see ../shared/anchors/RUNPOD.md)
/// and the route of the video links.

#include <algorithm>
#include <charconv>
#include <optional>
#include <type_traits>

#include <httplib.h>

#include "http_console.hpp"
#include "http_gateway_state.hpp"
#include "http_runpod.hpp"
#include "vidnode/runtime/model_pattern.hpp"

namespace vidnode::net::detail {

namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;
using state_ptr = std::shared_ptr<gateway_state>;

/// How long runsync and status-sync wait when the request does not say
/// (Runpod: 90 s), and the range they accept.
constexpr int64_t default_sync_wait_ms = 90000;
constexpr int64_t min_sync_wait_ms = 1000;
constexpr int64_t max_sync_wait_ms = 300000;

/// How long a stream call waits for a chunk when none is ready.
constexpr int64_t default_stream_wait_ms = 10000;
constexpr int64_t max_stream_wait_ms = 60000;

/// The largest piece of a video read from admission per call.
constexpr uint32_t video_piece_bytes = 1u << 20;

void reply(Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

void reply_error(Response& res, const caf::error& err) {
  reply(res, error_json(err), http_status_of(err));
}

caf::error not_found(const std::string& what) {
  return runtime::make_error(runtime::errc::unknown_job, what);
}

/// The `name` query parameter in milliseconds, `fallback` when absent.
caf::expected<int64_t> wait_parameter(const Request& req, const char* name,
                                      int64_t fallback, int64_t min,
                                      int64_t max) {
  if (!req.has_param(name))
    return fallback;
  auto text = req.get_param_value(name);
  int64_t value = 0;
  auto [end, ec] =
    std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min
      || value > max)
    return runtime::make_error(runtime::errc::invalid_request,
                               std::string{name} + ": must be whole "
                                 + "milliseconds from " + std::to_string(min)
                                 + " to " + std::to_string(max) + ", got '"
                                 + text.substr(0, 32) + "'");
  return value;
}

/// The ranges httplib parsed from a request's Range header, which it
/// applies to the answer's body. httplib hands handlers a const request
/// it owns as a mutable object, so changing them is sound.
httplib::Ranges& mutable_ranges(const Request& req) {
  return const_cast<Request&>(req).ranges;
}

/// A run or runsync route: reads the body itself, up to `limit` bytes,
/// whatever its Content-Type (httplib would refuse a form-encoded body,
/// which `curl -d` sends, beyond 8 KiB), then calls `handle`.
httplib::Server::HandlerWithContentReader
with_body(size_t limit, httplib::Server::Handler handle) {
  return [limit, handle](const Request& req, Response& res,
                         const httplib::ContentReader& read) {
    std::string body;
    auto too_large = false;
    auto whole = read([&](const char* data, size_t size) {
      if (body.size() + size > limit) {
        too_large = true;
        return false;
      }
      body.append(data, size);
      return true;
    });
    if (!whole && !too_large) {
      // A body that ended before its Content-Length (or its last chunk)
      // runs nothing.
      res.set_header("Connection", "close");
      return reply_error(
        res, runtime::make_error(runtime::errc::invalid_request,
                                 "body: it ended before its Content-Length or "
                                 "its last chunk"));
    }
    if (too_large) {
      // The rest of the body is still on the connection.
      res.set_header("Connection", "close");
      return reply_error(
        res, runtime::make_error(runtime::errc::invalid_request,
                                 "body: larger than "
                                   + std::to_string(limit >> 20) + " MB"));
    }
    const_cast<Request&>(req).body = std::move(body);
    handle(req, res);
  };
}

/// Serves one route of an endpoint: finds the endpoint named in the path
/// (404 when there is none) and calls `handle` with it.
template <class Handler>
httplib::Server::Handler for_endpoint(state_ptr state, Handler handle) {
  return [state, handle](const Request& req, Response& res) {
    const auto* endpoint = state->find_endpoint(req.matches[1]);
    if (endpoint == nullptr) {
      reply(res,
            error_body("not_found", "no endpoint '"
                                      + std::string{req.matches[1]}
                                      + "' (this gateway serves "
                                      + state->endpoint_names() + ")"),
            404);
      return;
    }
    handle(*endpoint, req, res);
  };
}

/// Job `text`'s result, when it is a job of `endpoint`.
caf::expected<runtime::job_result> job_of(gateway_state& state,
                                          const http_endpoint& endpoint,
                                          const std::string& text) {
  auto id = parse_job_id(text);
  if (id.value == 0)
    return not_found("no job '" + text.substr(0, 64) + "'");
  auto result = state.ask<runtime::job_result>(runtime::status_atom::value, id);
  if (!result)
    return result;
  if (result->endpoint != endpoint.id)
    return not_found("no job " + text + " at endpoint " + endpoint.id);
  return result;
}

/// Parses a run or runsync body into a job.
caf::expected<runtime::job_spec> spec_of(const http_endpoint& endpoint,
                                         const Request& req) {
  auto body = parse_body(req.body);
  if (!body)
    return body.error();
  return job_spec_from_request(endpoint, *body);
}

json status_body(gateway_state& state, const runtime::job_result& result) {
  return runpod_status_body(result, *state.links);
}

/// Answers with job `id`'s status body once it has ended, or after `wait`
/// ms (runsync, status-sync).
void reply_when_ended(gateway_state& state, runtime::job_id id, int64_t wait,
                      Response& res) {
  long_poll poll{state, std::chrono::milliseconds{wait}};
  auto result =
    state.ask<runtime::job_result>(poll.wait() + state.options.request_timeout,
                                   runtime::wait_atom::value, id, poll.wait());
  if (!result)
    return reply_error(res, result.error());
  reply(res, status_body(state, *result));
}

void add_job_routes(httplib::Server& server, const state_ptr& state) {
  server.Post(
    R"(/v2/([^/]+)/run)",
    with_body(
      max_run_body_bytes,
      for_endpoint(state, [state](const http_endpoint& endpoint,
                                  const Request& req, Response& res) {
        auto spec = spec_of(endpoint, req);
        if (!spec)
          return reply_error(res, spec.error());
        auto id = state->submit(*spec);
        if (!id)
          return reply_error(res, id.error());
        reply(res, {{"id", runtime::to_string(*id)}, {"status", "IN_QUEUE"}});
      })));
  server.Post(
    R"(/v2/([^/]+)/runsync)",
    with_body(max_runsync_body_bytes,
              for_endpoint(state, [state](const http_endpoint& endpoint,
                                          const Request& req, Response& res) {
                auto wait = wait_parameter(req, "wait", default_sync_wait_ms,
                                           min_sync_wait_ms, max_sync_wait_ms);
                if (!wait)
                  return reply_error(res, wait.error());
                auto spec = spec_of(endpoint, req);
                if (!spec)
                  return reply_error(res, spec.error());
                auto id = state->submit(*spec);
                if (!id)
                  return reply_error(res, id.error());
                reply_when_ended(*state, *id, *wait, res);
              })));
  server.Get(R"(/v2/([^/]+)/status/([^/]+))",
             for_endpoint(state, [state](const http_endpoint& endpoint,
                                         const Request& req, Response& res) {
               auto result = job_of(*state, endpoint, req.matches[2]);
               if (!result)
                 return reply_error(res, result.error());
               reply(res, status_body(*state, *result));
             }));
  server.Get(R"(/v2/([^/]+)/status-sync/([^/]+))",
             for_endpoint(state, [state](const http_endpoint& endpoint,
                                         const Request& req, Response& res) {
               auto wait = wait_parameter(req, "wait", default_sync_wait_ms,
                                          min_sync_wait_ms, max_sync_wait_ms);
               if (!wait)
                 return reply_error(res, wait.error());
               auto found = job_of(*state, endpoint, req.matches[2]);
               if (!found)
                 return reply_error(res, found.error());
               reply_when_ended(*state, found->id, *wait, res);
             }));
}

/// POST cancel/{id} or retry/{id} (`Action`): {"id", "status"} of the
/// job afterwards.
template <class Action>
httplib::Server::HandlerWithContentReader job_action(const state_ptr& state) {
  return bodiless(for_endpoint(state, [state](const http_endpoint& endpoint,
                                              const Request& req,
                                              Response& res) {
    auto found = job_of(*state, endpoint, req.matches[2]);
    if (!found)
      return reply_error(res, found.error());
    auto result = std::is_same_v<Action, runtime::retry_atom>
                    ? state->retry(found->id)
                    : state->ask<runtime::job_result>(Action::value, found->id);
    if (!result)
      return reply_error(res, result.error());
    reply(res, {{"id", runtime::to_string(result->id)},
                {"status", runpod_status_name(result->state)}});
  }));
}

void add_control_routes(httplib::Server& server, const state_ptr& state) {
  server.Get(R"(/v2/([^/]+)/stream/([^/]+))",
             for_endpoint(state, [state](const http_endpoint& endpoint,
                                         const Request& req, Response& res) {
               auto wait = wait_parameter(req, "wait", default_stream_wait_ms,
                                          0, max_stream_wait_ms);
               if (!wait)
                 return reply_error(res, wait.error());
               auto found = job_of(*state, endpoint, req.matches[2]);
               if (!found)
                 return reply_error(res, found.error());
               long_poll poll{*state, std::chrono::milliseconds{*wait}};
               auto taken = state->hub.take(found->id, poll.wait_ms());
               if (!taken)
                 return reply_error(res, taken.error());
               reply(res, {{"id", runtime::to_string(found->id)},
                           {"status", taken->status},
                           {"stream", taken->chunks}});
             }));
  server.Post(R"(/v2/([^/]+)/cancel/([^/]+))",
              job_action<runtime::cancel_atom>(state));
  server.Post(R"(/v2/([^/]+)/retry/([^/]+))",
              job_action<runtime::retry_atom>(state));
  server.Post(
    R"(/v2/([^/]+)/purge-queue)",
    bodiless(for_endpoint(state, [state](const http_endpoint& endpoint,
                                         const Request&, Response& res) {
      runtime::list_query query;
      query.include_finished = false;
      query.limit = 0;
      query.endpoint = endpoint.id;
      auto jobs = state->ask<std::vector<runtime::job_result>>(
        runtime::list_atom::value, query);
      if (!jobs)
        return reply_error(res, jobs.error());
      int64_t removed = 0;
      for (const auto& job : *jobs) {
        if (job.state != runtime::job_state::queued)
          continue;
        auto result =
          state->ask<runtime::job_result>(runtime::cancel_atom::value, job.id);
        if (result && result->state == runtime::job_state::cancelled)
          ++removed;
      }
      reply(res, {{"removed", removed}, {"status", "completed"}});
    })));
  server.Get(R"(/v2/([^/]+)/health)",
             for_endpoint(state, [state](const http_endpoint& endpoint,
                                         const Request&, Response& res) {
               runtime::list_query query;
               query.limit = 0;
               query.endpoint = endpoint.id;
               auto jobs = state->ask<std::vector<runtime::job_result>>(
                 runtime::list_atom::value, query);
               if (!jobs)
                 return reply_error(res, jobs.error());
               auto devices = state->ask<std::vector<runtime::device_status>>(
                 runtime::nodes_atom::value);
               if (!devices)
                 return reply_error(res, devices.error());
               int64_t completed = 0, failed = 0, in_progress = 0, in_queue = 0;
               for (const auto& job : *jobs) {
                 switch (job.state) {
                   case runtime::job_state::queued:
                     ++in_queue;
                     break;
                   case runtime::job_state::running:
                     ++in_progress;
                     break;
                   case runtime::job_state::succeeded:
                     ++completed;
                     break;
                   case runtime::job_state::failed:
                   case runtime::job_state::timed_out:
                     ++failed;
                     break;
                   case runtime::job_state::cancelled:
                     break;
                 }
               }
               int64_t idle = 0, running = 0, initializing = 0, throttled = 0;
               for (const auto& device : *devices) {
                 auto serves = std::any_of(
                   device.served_models.begin(), device.served_models.end(),
                   [&](const std::string& pattern) {
                     return runtime::model_pattern_matches(pattern,
                                                           endpoint.model);
                   });
                 if (!serves)
                   continue;
                 if (device.state == "restarting")
                   ++initializing;
                 else if (device.state == "quarantined")
                   ++throttled;
                 else if (device.state != "idle" && device.state != "busy")
                   continue; // a lost node's
                 else if (device.slots_in_use > 0)
                   ++running;
                 else
                   ++idle;
               }
               reply(res, {{"jobs",
                            {{"completed", completed},
                             {"failed", failed},
                             {"inProgress", in_progress},
                             {"inQueue", in_queue},
                             {"retried", state->retried(endpoint.id)}}},
                           {"workers",
                            {{"idle", idle},
                             {"running", running},
                             {"initializing", initializing},
                             {"ready", idle + running},
                             {"throttled", throttled}}}});
             }));
}

/// Why a request's framing or credentials are ambiguous, or nothing: two
/// Content-Lengths, a Content-Length that is not a plain number, both
/// Content-Length and Transfer-Encoding, several Transfer-Encodings or
/// Authorizations, or a header name with blanks or a value with a NUL.
/// Proxies in front may read such a request otherwise than the gateway
/// does (request smuggling, RFC 9112, 6.3), so it is refused.
std::optional<std::string> ambiguous_framing(const Request& req) {
  for (const char* name :
       {"Content-Length", "Transfer-Encoding", "Authorization"})
    if (req.get_header_value_count(name) > 1)
      return std::string{name} + " is given more than once";
  if (req.has_header("Content-Length")) {
    if (req.has_header("Transfer-Encoding"))
      return std::string{"both Content-Length and Transfer-Encoding are "
                         "given"};
    auto length = req.get_header_value("Content-Length");
    if (length.empty()
        || length.find_first_not_of("0123456789") != std::string::npos)
      return "Content-Length: '" + length.substr(0, 32)
             + "' is not a number of bytes";
  }
  for (const auto& [name, value] : req.headers)
    if (name.find_first_of(" \t") != std::string::npos
        || value.find('\0') != std::string::npos)
      return std::string{"a header name with blanks, or a value with a NUL "
                         "byte"};
  return std::nullopt;
}

/// `ranges` clipped to a file of `size` bytes (RFC 9110, 14.1.2): an end
/// past the file ends at its last byte, a suffix longer than the file is
/// the whole file, a range that starts past the end is dropped. Empty
/// when none is left (the answer is then 416).
httplib::Ranges clip_ranges(const httplib::Ranges& ranges, size_t size) {
  httplib::Ranges clipped;
  auto last_byte = static_cast<ssize_t>(size) - 1;
  for (auto [first, last] : ranges) {
    if (size == 0)
      break;
    if (first < 0) {
      if (last <= 0)
        continue;
      clipped.emplace_back(std::max<ssize_t>(0, last_byte + 1 - last),
                           last_byte);
    } else if (first <= last_byte) {
      clipped.emplace_back(first,
                           last < 0 || last > last_byte ? last_byte : last);
    }
  }
  return clipped;
}

/// GET /output/{id}.mp4: the video file of a succeeded job, from whichever
/// node holds it, read through admission piece by piece as the client
/// reads; Range requests are answered with 206 by httplib.
void add_video_route(httplib::Server& server, const state_ptr& state) {
  server.Get(
    R"(/output/([0-9]+)\.mp4)", [state](const Request& req, Response& res) {
      // httplib applies a request's ranges to whatever the answer is: keep
      // them away from error bodies, and clip them to the file first.
      auto requested = std::move(mutable_ranges(req));
      mutable_ranges(req).clear();
      auto id = parse_job_id(req.matches[1]);
      if (id.value == 0)
        return reply_error(
          res, not_found("no job '" + std::string{req.matches[1]} + "'"));
      if (!state->links->valid_signature(id, req.get_param_value("sig"))
          && !(state->keys.required() && state->authorized(req)))
        return reply(res,
                     error_body("unauthorized", "this link's signature is not "
                                                "valid: use the video_url the "
                                                "gateway answered with"),
                     401);
      auto probe = state->ask<runtime::output_chunk>(
        runtime::read_output_atom::value, id, uint64_t{0}, uint32_t{1});
      if (!probe)
        return reply_error(res, probe.error());
      auto size = static_cast<size_t>(probe->size);
      // Several ranges would be answered as multipart/byteranges, whose
      // parts httplib labels with a total of 0 for a streamed body: the
      // whole file is sent instead (RFC 9110 allows ignoring Range).
      if (requested.size() == 1) {
        auto clipped = clip_ranges(requested, size);
        if (clipped.empty()) {
          res.set_header("Content-Range", "bytes */" + std::to_string(size));
          return reply(res,
                       error_body("range_not_satisfiable",
                                  "no requested range lies within the "
                                    + std::to_string(size) + " bytes of the "
                                    + "video"),
                       416);
        }
        mutable_ranges(req) = std::move(clipped);
      }
      res.set_header("Accept-Ranges", "bytes");
      res.set_header("Cache-Control", "private, max-age=3600");
      res.set_content_provider(
        size, "video/mp4",
        [state, id](size_t offset, size_t length, httplib::DataSink& sink) {
          auto piece =
            static_cast<uint32_t>(std::min<size_t>(length, video_piece_bytes));
          auto chunk = state->ask<runtime::output_chunk>(
            runtime::read_output_atom::value, id, uint64_t{offset}, piece);
          if (!chunk || chunk->bytes.empty())
            return false;
          return sink.write(reinterpret_cast<const char*>(chunk->bytes.data()),
                            chunk->bytes.size());
        });
    });
}

} // namespace

void add_runpod_routes(httplib::Server& server,
                       std::shared_ptr<gateway_state> state) {
  server.set_pre_routing_handler([state](const Request& req, Response& res) {
    if (auto why = ambiguous_framing(req)) {
      res.set_header("Connection", "close");
      reply(res, error_body("invalid_request", *why), 400);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.path.rfind("/output/", 0) != 0)
      mutable_ranges(req).clear();
    auto guarded =
      req.path.rfind("/v2/", 0) == 0 || req.path.rfind("/console/api/", 0) == 0;
    if (!guarded || state->authorized(req))
      return httplib::Server::HandlerResponse::Unhandled;
    reply(res,
          error_body("unauthorized",
                     "missing or unknown API key: send 'Authorization: Bearer "
                     "KEY' or 'Authorization: KEY'"),
          401);
    return httplib::Server::HandlerResponse::Handled;
  });
  add_job_routes(server, state);
  add_control_routes(server, state);
  add_video_route(server, state);
}

} // namespace vidnode::net::detail
