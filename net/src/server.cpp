#include "vidnode/net/server.hpp"

#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/net/transport.hpp"
#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

namespace {

using runtime::admission_actor;

/// Asks a gateway to reply once it has answered every request it took.
using drain_atom = caf::atom_constant<caf::atom("drain")>;

/// How long a stopping server waits for its clients to take their answers
/// and disconnect (long-lived clients are cut off after it).
constexpr auto drain_grace = std::chrono::seconds{2};

/// The gateway: the client protocol, plus draining for the server (it is
/// published as an admission_actor, so clients see the protocol only).
using gateway_actor =
  admission_actor::extend<caf::replies_to<drain_atom>::with<caf::ok_atom>>;

struct gateway_state {
  static inline const char* name = "vidnode.gateway";
  admission_actor admission;
  /// Requests forwarded and not answered yet.
  size_t in_flight = 0;
  /// Remote clients served and still connected (monitored): an answer is
  /// only known to have arrived once its client has gone.
  std::set<caf::actor_addr> clients;
  /// Drain requests waiting for in_flight to reach zero and every client to
  /// disconnect.
  std::vector<caf::typed_response_promise<caf::ok_atom>> drained;

  /// Answers the drain requests once nothing is left to deliver.
  void check_drained() {
    if (in_flight > 0 || !clients.empty())
      return;
    for (auto& waiting : drained)
      waiting.deliver(caf::ok_atom::value);
    drained.clear();
  }
};

using gateway_pointer = gateway_actor::stateful_pointer<gateway_state>;

/// Remembers a remote client (a requester or a subscriber) until it is gone.
void watch_client(gateway_pointer self, const caf::strong_actor_ptr& client) {
  if (client != nullptr && client->node() != self->node()
      && self->state.clients.insert(caf::actor_cast<caf::actor_addr>(client))
           .second)
    self->monitor(client);
}

/// Forwards one request to admission and answers it in the gateway's name.
template <class T, class... Ts>
caf::result<T> forward(gateway_pointer self, Ts... xs) {
  auto promise = self->make_response_promise<T>();
  auto& st = self->state;
  st.in_flight += 1;
  watch_client(self, self->current_sender());
  auto answered = [self] {
    auto& st = self->state;
    st.in_flight -= 1;
    st.check_drained();
  };
  self->request(st.admission, caf::infinite, std::move(xs)...)
    .then(
      [=](T& value) mutable {
        promise.deliver(std::move(value));
        answered();
      },
      [=](caf::error& err) mutable {
        promise.deliver(std::move(err));
        answered();
      });
  return promise;
}

gateway_actor::behavior_type gateway(gateway_pointer self,
                                     admission_actor admission) {
  self->state.admission = std::move(admission);
  self->set_down_handler([=](caf::down_msg& msg) {
    self->state.clients.erase(msg.source);
    self->state.check_drained();
  });
  // Exit messages from other nodes (or from nobody) are ignored; only the
  // keeper, on this node, ends a gateway.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.source && msg.source.node() == self->node())
      self->quit(msg.reason);
  });
  using namespace runtime;
  return {
    [=](submit_atom x, job_spec& spec) {
      return forward<job_id>(self, x, std::move(spec));
    },
    [=](execute_atom x, job_spec& spec) {
      return forward<job_result>(self, x, std::move(spec));
    },
    [=](status_atom x, job_id id) { return forward<job_result>(self, x, id); },
    [=](wait_atom x, job_id id, caf::timespan max_wait) {
      return forward<job_result>(self, x, id, max_wait);
    },
    [=](cancel_atom x, job_id id) { return forward<job_result>(self, x, id); },
    [=](runtime::retry_atom x, job_id id) {
      return forward<job_result>(self, x, id);
    },
    [=](list_atom x, list_query& query) {
      return forward<std::vector<job_result>>(self, x, std::move(query));
    },
    [=](nodes_atom x) { return forward<std::vector<device_status>>(self, x); },
    [=](read_output_atom x, job_id id, uint64_t offset, uint32_t max_bytes) {
      return forward<output_chunk>(self, x, id, offset, max_bytes);
    },
    [=](subscribe_atom x, job_id id, job_observer_actor& observer) {
      // A subscriber waits for the job's last event: draining waits for it.
      watch_client(self, caf::actor_cast<caf::strong_actor_ptr>(observer));
      return forward<job_result>(self, x, id, std::move(observer));
    },
    [=](drain_atom) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      if (st.in_flight == 0 && st.clients.empty())
        return caf::ok_atom::value;
      auto promise = self->make_response_promise<caf::ok_atom>();
      st.drained.push_back(promise);
      return promise;
    },
  };
}

/// Keeps a gateway published: re-creates and re-publishes it if it dies.
struct keeper_state {
  static inline const char* name = "vidnode.gateway_keeper";
  admission_actor admission;
  gateway_actor gateway;
  std::string host;
  uint16_t port = 0;
  bool stopping = false;
};

using stop_atom = caf::atom_constant<caf::atom("stop")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using republish_atom = caf::atom_constant<caf::atom("republish")>;

caf::behavior keeper(caf::stateful_actor<keeper_state>* self,
                     admission_actor admission, std::string host) {
  self->state.admission = std::move(admission);
  self->state.host = std::move(host);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (st.stopping || msg.source != st.gateway.address())
      return;
    spdlog::warn("the published gateway ended ({}); publishing a new one on "
                 "port {}",
                 runtime::describe(msg.reason), st.port);
    auto mm = transport_handle(self->system());
    self->send(mm, caf::unpublish_atom::value, msg.source, st.port);
    st.gateway = self->spawn(gateway, st.admission);
    self->monitor(st.gateway);
    self->send(self, republish_atom::value, 1);
  });
  return {
    // The old port may take a moment to close: publishing is retried for
    // up to two seconds.
    [=](republish_atom, int attempt) {
      auto& st = self->state;
      if (st.stopping)
        return;
      auto mm = transport_handle(self->system());
      auto sigs = self->system().message_types<admission_actor>();
      self
        ->request(mm, caf::infinite, caf::publish_atom::value, st.port,
                  caf::actor_cast<caf::strong_actor_ptr>(st.gateway),
                  std::move(sigs), st.host, true)
        .then([](uint16_t) {},
              [=](caf::error& err) {
                if (attempt < 40) {
                  self->delayed_send(self, std::chrono::milliseconds{50},
                                     republish_atom::value, attempt + 1);
                  return;
                }
                spdlog::error("cannot publish a new gateway on port {}: {}",
                              self->state.port, runtime::describe(err));
              });
    },
    // The gateway published by server::start, and its port.
    [=](watch_atom, const gateway_actor& published, uint16_t port) {
      self->state.gateway = published;
      self->state.port = port;
      self->monitor(published);
    },
    // Closes the port, lets the gateway answer what it took (exit messages
    // would overtake the answers waiting in its mailbox), then ends it.
    [=](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      auto mm = transport_handle(self->system());
      self->send(mm, caf::unpublish_atom::value, st.gateway.address(), st.port);
      auto end = [=] {
        self->send_exit(self->state.gateway, caf::exit_reason::user_shutdown);
        self->state.gateway = nullptr;
        self->quit();
      };
      self->request(st.gateway, drain_grace, drain_atom::value)
        .then([=](caf::ok_atom) { end(); }, [=](caf::error&) { end(); });
    },
  };
}

} // namespace

caf::expected<std::unique_ptr<server>> server::start(caf::actor_system& sys,
                                                     admission_actor admission,
                                                     const std::string& host,
                                                     uint16_t port) {
  if (!sys.has_middleman())
    return runtime::make_error(runtime::errc::internal,
                               "the actor system has no middleman loaded");
  auto first = sys.spawn(gateway, admission);
  auto published =
    net::publish(sys, caf::actor_cast<admission_actor>(first), host, port);
  if (!published) {
    caf::anon_send_exit(first, caf::exit_reason::user_shutdown);
    return runtime::make_error(runtime::errc::internal,
                               "cannot listen on " + host + ":"
                                 + std::to_string(port) + ": "
                                 + runtime::describe(published.error()));
  }
  auto watcher = sys.spawn(keeper, std::move(admission), host);
  caf::anon_send(watcher, watch_atom::value, first, *published);
  return std::unique_ptr<server>{new server(sys, watcher, *published)};
}

server::server(caf::actor_system& sys, caf::actor keeper, uint16_t port)
  : sys_(sys), keeper_(std::move(keeper)), port_(port) {}

server::~server() {
  stop();
}

void server::stop() {
  if (!keeper_)
    return;
  caf::scoped_actor self{sys_};
  self->monitor(keeper_);
  self->send(keeper_, stop_atom::value);
  self->receive([](caf::down_msg&) {},
                caf::after(std::chrono::seconds{5}) >> [] {});
  keeper_ = nullptr;
}

} // namespace vidnode::net
