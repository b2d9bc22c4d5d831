#include "vidnode/net/server.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <spdlog/spdlog.h>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

namespace {

using runtime::admission_actor;

using gateway_pointer = admission_actor::pointer;

/// Forwards one request to admission and answers it in the gateway's name.
template <class T, class... Ts>
caf::result<T> forward(gateway_pointer self, const admission_actor& admission,
                       Ts... xs) {
  auto promise = self->make_response_promise<T>();
  self->request(admission, caf::infinite, std::move(xs)...)
    .then([=](T& value) mutable { promise.deliver(std::move(value)); },
          [=](caf::error& err) mutable { promise.deliver(std::move(err)); });
  return promise;
}

admission_actor::behavior_type gateway(gateway_pointer self,
                                       admission_actor admission) {
  // Exit messages from other nodes (or from nobody) are ignored; only the
  // keeper, on this node, ends a gateway.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.source && msg.source.node() == self->node())
      self->quit(msg.reason);
  });
  using namespace runtime;
  return {
    [=](submit_atom x, job_spec& spec) {
      return forward<job_id>(self, admission, x, std::move(spec));
    },
    [=](execute_atom x, job_spec& spec) {
      return forward<job_result>(self, admission, x, std::move(spec));
    },
    [=](status_atom x, job_id id) {
      return forward<job_result>(self, admission, x, id);
    },
    [=](wait_atom x, job_id id, caf::timespan max_wait) {
      return forward<job_result>(self, admission, x, id, max_wait);
    },
    [=](cancel_atom x, job_id id) {
      return forward<job_result>(self, admission, x, id);
    },
    [=](list_atom x, list_query& query) {
      return forward<std::vector<job_result>>(self, admission, x,
                                              std::move(query));
    },
    [=](nodes_atom x) {
      return forward<std::vector<device_status>>(self, admission, x);
    },
    [=](subscribe_atom x, job_id id, job_observer_actor& observer) {
      return forward<job_result>(self, admission, x, id, std::move(observer));
    },
  };
}

/// Keeps a gateway published: re-creates and re-publishes it if it dies.
struct keeper_state {
  static inline const char* name = "vidnode.gateway_keeper";
  admission_actor admission;
  admission_actor gateway;
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
    auto mm = self->system().middleman().actor_handle();
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
      auto mm = self->system().middleman().actor_handle();
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
    [=](watch_atom, const admission_actor& published, uint16_t port) {
      self->state.gateway = published;
      self->state.port = port;
      self->monitor(published);
    },
    [=](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      auto mm = self->system().middleman().actor_handle();
      self->send(mm, caf::unpublish_atom::value, st.gateway.address(), st.port);
      self->send_exit(st.gateway, caf::exit_reason::user_shutdown);
      st.gateway = nullptr;
      self->quit();
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
  auto published = sys.middleman().publish(first, port, host.c_str(), true);
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
