#include "vidnode/net/client.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <optional>
#include <random>
#include <thread>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "hex.hpp"
#include "vidnode/net/download_file.hpp"
#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::net {

namespace {

using runtime::errc;
using runtime::make_error;

/// Delivers a value to a blocked caller exactly once.
template <class T>
struct one_shot {
  std::promise<caf::expected<T>> promise;
  std::atomic<bool> done{false};

  void deliver(caf::expected<T> x) {
    if (!done.exchange(true))
      promise.set_value(std::move(x));
  }
};

/// The answer to a request whose receiver, the actor published at `where`,
/// had ended: the node is going away, or its gateway was replaced (a new
/// connection reaches the new one).
caf::error gone(const std::string& where) {
  return make_error(errc::node_lost,
                    "the actor published at " + where + " has ended");
}

} // namespace

bool parse_endpoint(const std::string& text, std::string& host,
                    uint16_t& port) {
  auto colon = text.rfind(':');
  auto port_text = colon == std::string::npos ? text : text.substr(colon + 1);
  auto host_text =
    colon == std::string::npos ? std::string{} : text.substr(0, colon);
  if (port_text.empty() || port_text.size() > 5)
    return false;
  for (char c : port_text)
    if (c < '0' || c > '9')
      return false;
  auto value = std::stoul(port_text);
  if (value > 65535)
    return false;
  if (!host_text.empty())
    host = host_text;
  port = static_cast<uint16_t>(value);
  return true;
}

client::client(const options& opts)
  : opts_(opts), sys_(configure(cfg_, opts)) {}

process_config& client::configure(process_config& cfg, const options& opts) {
  cfg.max_message_size(opts.max_message_size);
  cfg.connect_timeout(opts.connect_timeout);
  // Both checked by connect before the client is made.
  static_cast<void>(cfg.heartbeat(opts.heartbeat_interval, opts.node_timeout));
  if (opts.tls.any())
    static_cast<void>(use_tls(cfg, opts.tls, tls_role::client));
  return cfg;
}

client::~client() {
  admission_ = nullptr;
}

caf::expected<std::unique_ptr<client>> client::connect(const options& opts) {
  if (auto err = process_config::check_heartbeat(opts.heartbeat_interval,
                                                 opts.node_timeout))
    return err;
  if (opts.tls.any())
    if (auto err = check_tls_files(opts.tls, tls_role::client))
      return err;
  std::unique_ptr<client> self_ptr{new client(opts)};
  auto& sys = self_ptr->sys_;
  auto where = opts.host + ":" + std::to_string(opts.port);
  caf::error failure;
  caf::strong_actor_ptr handle;
  using clock = std::chrono::steady_clock;
  auto started = clock::now();
  auto deadline = started + opts.connect_timeout;
  // CAF 0.17.6 starts a new connection's silence clock at zero, so an
  // attempt that gets no answer before the next heartbeat tick is dropped
  // (connection_timeout) even if the node is only slow: attempts are
  // repeated until the node has been silent for the node timeout.
  auto silent_until = std::min(deadline, started + opts.node_timeout);
  caf::scoped_actor self{sys};
  for (auto again = true; again;) {
    again = false;
    auto left = std::max(
      caf::timespan{1},
      std::chrono::duration_cast<caf::timespan>(deadline - clock::now()));
    self
      ->request(transport_handle(sys), left, caf::connect_atom::value,
                opts.host, opts.port)
      .receive(
        [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
            const std::set<std::string>& interface) {
          if (!ptr)
            failure =
              make_error(errc::node_lost, "nothing is published at " + where);
          else if (interface != sys.message_types<runtime::admission_actor>())
            failure = make_error(errc::invalid_request,
                                 where
                                   + " does not speak this version of "
                                     "vidnode's protocol");
          else
            handle = std::move(ptr);
        },
        [&](caf::error& err) {
          if (err == caf::sec::connection_timeout
              && clock::now() < silent_until)
            again = true;
          else if (err == caf::sec::request_timeout)
            failure =
              make_error(errc::node_lost,
                         "no answer from " + where + " within "
                           + runtime::format_duration(opts.connect_timeout));
          else if (err == caf::sec::connection_timeout)
            failure = make_error(
              errc::node_lost,
              "cannot connect to " + where
                + ": no answer to the handshake within the node timeout ("
                + runtime::format_duration(opts.node_timeout)
                + "); is the node hung?");
          else if (err == caf::sec::disconnect_during_handshake)
            failure = make_error(
              errc::node_lost,
              "cannot connect to " + where
                + ": the connection was closed during the handshake (TLS "
                  "on one side only, or a certificate the other side does "
                  "not trust; "
                + (opts.tls.any() ? "this client uses TLS)"
                                  : "this client does not use TLS)"));
          else
            failure =
              make_error(errc::node_lost, "cannot connect to " + where + ": "
                                            + runtime::describe(err));
        });
  }
  if (failure)
    return failure;
  self_ptr->admission_ = caf::actor_cast<runtime::admission_actor>(handle);
  return self_ptr;
}

template <class T, class... Ts>
caf::expected<T> client::call(caf::timespan timeout, Ts... xs) {
  return start_call<T>(timeout, std::move(xs)...).get();
}

template <class T, class... Ts>
std::future<caf::expected<T>> client::start_call(caf::timespan timeout,
                                                 Ts... xs) {
  auto result = std::make_shared<one_shot<T>>();
  auto future = result->promise.get_future();
  auto admission = admission_;
  auto where = opts_.host + ":" + std::to_string(opts_.port);
  sys_.spawn([=](caf::event_based_actor* self) {
    self->monitor(admission);
    self->set_down_handler([=](caf::down_msg& msg) {
      result->deliver(
        make_error(errc::node_lost, "lost the connection to " + where));
      self->quit();
    });
    self->request(admission, timeout, xs...)
      .then(
        [=](T& value) {
          result->deliver(std::move(value));
          self->quit();
        },
        [=](caf::error& err) {
          if (err == caf::sec::request_timeout)
            result->deliver(make_error(errc::node_lost,
                                       "no answer from " + where + " within "
                                         + runtime::format_duration(timeout)));
          else if (err == caf::sec::request_receiver_down)
            result->deliver(gone(where));
          else
            result->deliver(std::move(err));
          self->quit();
        });
  });
  return future;
}

caf::expected<runtime::job_id> client::submit(const runtime::job_spec& spec) {
  return call<runtime::job_id>(opts_.request_timeout,
                               runtime::submit_atom::value, spec);
}

caf::expected<runtime::job_result> client::status(runtime::job_id id) {
  return call<runtime::job_result>(opts_.request_timeout,
                                   runtime::status_atom::value, id);
}

caf::expected<runtime::job_result> client::wait(runtime::job_id id,
                                                caf::timespan max_wait) {
  auto unbounded = max_wait.count() <= 0;
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  for (;;) {
    auto slice = opts_.poll_interval;
    if (!unbounded) {
      auto left = std::chrono::duration_cast<caf::timespan>(
        deadline - std::chrono::steady_clock::now());
      slice = std::max(caf::timespan{1}, std::min(slice, left));
    }
    auto result = call<runtime::job_result>(
      opts_.request_timeout + slice, runtime::wait_atom::value, id, slice);
    if (!result || runtime::is_terminal(result->state))
      return result;
    if (!unbounded && std::chrono::steady_clock::now() >= deadline)
      return result;
  }
}

namespace {

/// What client::watch's observer answers once it has handled every event
/// that reached it before the question.
using flush_atom = caf::atom_constant<caf::atom("flush")>;

/// The observer client::watch spawns: a job observer that also answers
/// flush (local only; the node sees a job_observer_actor).
using watch_observer_actor =
  runtime::job_observer_actor::extend<caf::replies_to<flush_atom>::with<bool>>;

/// The first event of a watch: the job's state in the subscription's answer.
runtime::job_event first_event_of(const runtime::job_result& r) {
  runtime::job_event first;
  first.id = r.id;
  first.state = r.state;
  first.step = r.step;
  first.steps = r.steps;
  first.attempt = r.attempts;
  first.device = r.device;
  first.error = r.error;
  first.at = caf::make_timestamp();
  return first;
}

} // namespace

caf::expected<runtime::job_result>
client::watch(runtime::job_id id,
              std::function<void(const runtime::job_event&)> on_event,
              caf::timespan max_wait) {
  // The observer subscribes itself, so that the subscription's answer (the
  // first event) is passed on before any later event, all on its thread.
  // Events that come before the answer (none should) wait for it. It
  // reports the terminal event when it has passed it on, so that every
  // event is out before watch returns; that event is also the answer if the
  // node goes away before the wait returns (the subscription delivered the
  // end).
  struct observer_state {
    bool subscribed = false;
    std::vector<runtime::job_event> early;
  };
  auto subscribed = std::make_shared<one_shot<runtime::job_result>>();
  auto seen_end = std::make_shared<std::promise<runtime::job_event>>();
  auto ended = seen_end->get_future();
  auto admission = admission_;
  auto timeout = opts_.request_timeout;
  auto where = opts_.host + ":" + std::to_string(opts_.port);
  auto observer = sys_.spawn([=](watch_observer_actor::pointer self)
                               -> watch_observer_actor::behavior_type {
    auto st = std::make_shared<observer_state>();
    auto pass_on = [=](const runtime::job_event& event) {
      on_event(event);
      if (runtime::is_terminal(event.state))
        seen_end->set_value(event);
    };
    self->monitor(admission);
    self->set_down_handler([=](caf::down_msg&) {
      subscribed->deliver(
        make_error(errc::node_lost, "lost the connection to " + where));
    });
    self
      ->request(admission, timeout, runtime::subscribe_atom::value, id,
                caf::actor_cast<runtime::job_observer_actor>(self))
      .then(
        [=](runtime::job_result& r) {
          st->subscribed = true;
          on_event(first_event_of(r));
          for (const auto& event : st->early)
            pass_on(event);
          st->early.clear();
          subscribed->deliver(std::move(r));
        },
        [=](caf::error& err) {
          if (err == caf::sec::request_timeout)
            subscribed->deliver(make_error(
              errc::node_lost, "no answer from " + where + " within "
                                 + runtime::format_duration(timeout)));
          else if (err == caf::sec::request_receiver_down)
            subscribed->deliver(gone(where));
          else
            subscribed->deliver(std::move(err));
        });
    return {
      [=](const runtime::job_event& event) {
        if (st->subscribed)
          pass_on(event);
        else
          st->early.push_back(event);
      },
      [](flush_atom) { return true; },
    };
  });
  auto result = subscribed->promise.get_future().get();
  if (result && !runtime::is_terminal(result->state)) {
    auto subscription = *result;
    result = wait(id, max_wait);
    if (result && runtime::is_terminal(result->state)) {
      ended.wait_for(std::chrono::seconds{1});
    } else if (!result) {
      // Events the node sent before the connection dropped reached the
      // observer's mailbox before the loss was reported: once it answers a
      // flush, it has passed them all on.
      caf::scoped_actor flusher{sys_};
      flusher->request(observer, std::chrono::seconds{1}, flush_atom::value)
        .receive([](bool) {}, [](caf::error&) {});
      if (ended.wait_for(std::chrono::seconds{0})
          == std::future_status::ready) {
        auto last = ended.get();
        auto fallback = std::move(subscription);
        fallback.state = last.state;
        fallback.error = last.error;
        fallback.step = last.step;
        fallback.steps = last.steps;
        fallback.attempts = last.attempt;
        fallback.device = last.device;
        fallback.finished_at = last.at;
        result = std::move(fallback);
      }
    }
  }
  // Once the observer is gone, no event is passed on after watch returns.
  caf::scoped_actor self{sys_};
  caf::anon_send_exit(observer, caf::exit_reason::user_shutdown);
  self->wait_for(observer);
  return result;
}

caf::expected<runtime::job_result> client::cancel(runtime::job_id id) {
  return call<runtime::job_result>(opts_.request_timeout,
                                   runtime::cancel_atom::value, id);
}

caf::expected<runtime::job_result> client::retry(runtime::job_id id) {
  return call<runtime::job_result>(opts_.request_timeout,
                                   runtime::retry_atom::value, id);
}

caf::expected<std::vector<runtime::job_result>>
client::list(const runtime::list_query& query) {
  return call<std::vector<runtime::job_result>>(
    opts_.request_timeout, runtime::list_atom::value, query);
}

caf::expected<std::vector<runtime::device_status>> client::nodes() {
  return call<std::vector<runtime::device_status>>(opts_.request_timeout,
                                                   runtime::nodes_atom::value);
}

caf::expected<uint64_t> client::fetch_output(runtime::job_id id,
                                             const std::string& path,
                                             progress_function progress,
                                             fetch_options options) {
  auto file = download_file::create(path, download_file::existing::replace);
  if (!file)
    return std::move(file.error());
  auto written = fetch_output(
    id,
    [&](const std::vector<uint8_t>& bytes) {
      return file->write(bytes.data(), bytes.size());
    },
    std::move(progress), options);
  if (!written)
    return written;
  if (auto err = file->commit())
    return err;
  return written;
}

caf::expected<uint64_t> client::fetch_output(runtime::job_id id,
                                             const chunk_sink& sink,
                                             progress_function progress,
                                             fetch_options options) {
  auto chunk_bytes =
    runtime::chunk_bytes_within(opts_.max_message_size, options.chunk_bytes);
  auto window = std::max<uint32_t>(options.window, 1);
  std::deque<
    std::pair<uint64_t, std::future<caf::expected<runtime::output_chunk>>>>
    in_flight;
  uint64_t next = 0;
  auto ask = [&] {
    in_flight.emplace_back(
      next, start_call<runtime::output_chunk>(opts_.request_timeout,
                                              runtime::read_output_atom::value,
                                              id, next, chunk_bytes));
    next += chunk_bytes;
  };
  // The first read alone: its answer tells the size.
  ask();
  std::optional<uint64_t> size;
  uint64_t written = 0;
  auto job = "job " + runtime::to_string(id);
  while (!in_flight.empty()) {
    auto offset = in_flight.front().first;
    auto chunk = in_flight.front().second.get();
    in_flight.pop_front();
    if (!chunk)
      return std::move(chunk.error());
    if (!size)
      size = chunk->size;
    else if (chunk->size != *size)
      return make_error(errc::output_unavailable,
                        "the video of " + job
                          + " changed size during the download ("
                          + std::to_string(*size) + " -> "
                          + std::to_string(chunk->size) + " bytes)");
    if (offset > *size
        || chunk->bytes.size()
             != std::min<uint64_t>(chunk_bytes, *size - offset))
      return make_error(errc::output_unavailable,
                        "the video of " + job + " ended early, at "
                          + std::to_string(offset + chunk->bytes.size())
                          + " of " + std::to_string(*size) + " bytes");
    const auto& bytes = chunk->bytes;
    if (!bytes.empty())
      if (auto err = sink(bytes))
        return err;
    written += bytes.size();
    if (progress)
      progress(written, *size);
    while (in_flight.size() < window && next < *size)
      ask();
  }
  return written;
}

std::string make_idempotency_key() {
  return "auto-" + detail::random_hex(32);
}

caf::expected<submission>
submit_with_retries(client::options opts, runtime::job_spec& spec,
                    std::chrono::steady_clock::time_point deadline,
                    const std::function<void(const caf::error&)>& on_retry) {
  using clock = std::chrono::steady_clock;
  if (spec.idempotency_key.empty())
    spec.idempotency_key = make_idempotency_key();
  auto pause = std::chrono::milliseconds{50};
  // A node that cannot be reached at all is reported at once; one that was
  // reached is tried again (it may be restarting).
  auto was_connected = false;
  for (;;) {
    auto left =
      std::chrono::duration_cast<caf::timespan>(deadline - clock::now());
    if (left.count() <= 0)
      left = caf::timespan{1};
    opts.connect_timeout = std::min(opts.connect_timeout, left);
    opts.request_timeout = std::min(opts.request_timeout, left);
    caf::error failure;
    auto connected = client::connect(opts);
    if (!connected && !was_connected)
      return std::move(connected.error());
    if (connected) {
      was_connected = true;
      auto id = (*connected)->submit(spec);
      if (id)
        return submission{std::move(*connected), *id};
      failure = std::move(id.error());
    } else {
      failure = std::move(connected.error());
    }
    if (!runtime::is(failure, errc::node_lost)
        || clock::now() + pause >= deadline)
      return failure;
    if (on_retry)
      on_retry(failure);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{1000});
  }
}

namespace {

using steady_clock = std::chrono::steady_clock;

/// "HOST:PORT" of `opts`.
std::string address_of(const client::options& opts) {
  return opts.host + ":" + std::to_string(opts.port);
}

/// Connects again after the connection was lost with `cause`, until
/// `until`, pausing between attempts as `policy` says. The new connection;
/// node_lost once `until` has passed; a connect error that is not node_lost
/// (the node speaks another protocol) at once.
caf::expected<std::unique_ptr<client>>
connect_again(client::options opts, const caf::error& cause,
              steady_clock::time_point until, const reconnect_policy& policy) {
  auto lost_at = steady_clock::now();
  if (policy.on_lost)
    policy.on_lost(cause, until);
  auto connect_timeout = opts.connect_timeout;
  auto pause = std::max(policy.first_pause, caf::timespan{0});
  auto last = cause;
  for (;;) {
    auto left = [&] {
      return std::chrono::duration_cast<caf::timespan>(until
                                                       - steady_clock::now());
    };
    if (left().count() > 0)
      std::this_thread::sleep_for(std::min(pause, left()));
    if (left().count() <= 0)
      break;
    opts.connect_timeout = std::min(connect_timeout, left());
    auto connected = client::connect(opts);
    if (connected) {
      if (policy.on_reconnected)
        policy.on_reconnected();
      return connected;
    }
    if (!runtime::is(connected.error(), errc::node_lost))
      return std::move(connected.error());
    last = std::move(connected.error());
    pause = std::min(pause * 2, std::max(policy.max_pause, pause));
  }
  auto tried =
    std::max(caf::timespan{0},
             std::chrono::duration_cast<caf::timespan>(until - lost_at));
  return make_error(errc::node_lost,
                    "lost the connection to " + address_of(opts)
                      + " and could not connect again within "
                      + runtime::format_duration(tried)
                      + " (last: " + runtime::describe(last) + ")");
}

/// The end of an outage that begins now: `outage_limit` from now, or
/// `deadline` if that comes first.
steady_clock::time_point outage_end(const reconnect_policy& policy,
                                    steady_clock::time_point deadline) {
  auto now = steady_clock::now();
  auto limit = std::max(policy.outage_limit, caf::timespan{0});
  if (deadline - now <= limit)
    return deadline;
  return now + std::chrono::duration_cast<steady_clock::duration>(limit);
}

/// `connection`, or a new one to `opts` if it is empty.
caf::expected<std::unique_ptr<client>>
connected(const client::options& opts, std::unique_ptr<client> connection) {
  if (connection)
    return connection;
  return client::connect(opts);
}

/// Whether two events tell the same progress (a watch shows one of them).
bool same_progress(const runtime::job_event& x, const runtime::job_event& y) {
  return x.state == y.state && x.step == y.step && x.steps == y.steps
         && x.attempt == y.attempt;
}

} // namespace

caf::expected<job_outcome>
wait_with_reconnect(const client::options& opts,
                    std::unique_ptr<client> connection, runtime::job_id id,
                    steady_clock::time_point deadline,
                    const reconnect_policy& policy) {
  auto first = connected(opts, std::move(connection));
  if (!first)
    return std::move(first.error());
  connection = std::move(*first);
  for (;;) {
    caf::timespan max_wait{0};
    if (deadline != steady_clock::time_point::max())
      max_wait =
        std::max(caf::timespan{1}, std::chrono::duration_cast<caf::timespan>(
                                     deadline - steady_clock::now()));
    auto result = connection->wait(id, max_wait);
    if (result)
      return job_outcome{std::move(connection), std::move(*result)};
    if (!runtime::is(result.error(), errc::node_lost))
      return std::move(result.error());
    connection.reset();
    auto again =
      connect_again(opts, result.error(), outage_end(policy, deadline), policy);
    if (!again)
      return std::move(again.error());
    connection = std::move(*again);
  }
}

caf::expected<job_outcome> watch_with_reconnect(
  const client::options& opts, std::unique_ptr<client> connection,
  runtime::job_id id,
  const std::function<void(const runtime::job_event&)>& on_event,
  const reconnect_policy& policy, steady_clock::time_point deadline) {
  auto first = connected(opts, std::move(connection));
  if (!first)
    return std::move(first.error());
  connection = std::move(*first);
  // client::watch passes events on one at a time and none after it
  // returned, so the filter needs no lock: one watch at a time touches it.
  std::optional<runtime::job_event> last_passed;
  auto resubscribed = false;
  auto filter = [&](const runtime::job_event& event) {
    auto skip =
      resubscribed && last_passed && same_progress(*last_passed, event);
    resubscribed = false;
    if (skip)
      return;
    last_passed = event;
    on_event(event);
  };
  for (;;) {
    caf::timespan max_wait{0};
    if (deadline != steady_clock::time_point::max())
      max_wait =
        std::max(caf::timespan{1}, std::chrono::duration_cast<caf::timespan>(
                                     deadline - steady_clock::now()));
    auto result = connection->watch(id, filter, max_wait);
    if (result)
      return job_outcome{std::move(connection), std::move(*result)};
    if (!runtime::is(result.error(), errc::node_lost))
      return std::move(result.error());
    connection.reset();
    auto again =
      connect_again(opts, result.error(), outage_end(policy, deadline), policy);
    if (!again)
      return std::move(again.error());
    connection = std::move(*again);
    resubscribed = true;
  }
}

} // namespace vidnode::net
