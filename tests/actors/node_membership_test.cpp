#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "vidnode/actors/node_membership.hpp"
#include "vidnode/runtime/errc.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using actors::cluster_node;
using actors::node_membership;
using time_point = node_membership::time_point;

namespace {

/// Two distinct CAF node ids (each actor system with a middleman has one).
struct two_nodes {
  struct config : caf::actor_system_config {
    config() {
      load<caf::io::middleman>();
    }
  };
  config cfg_a;
  config cfg_b;
  caf::actor_system a{cfg_a};
  caf::actor_system b{cfg_b};
};

} // namespace

TEST_CASE("a node name is held by one node that is up, the same CAF node "
          "registers again, another one only once the first is lost",
          "[node_membership]") {
  two_nodes ids;
  REQUIRE(ids.a.node() != ids.b.node());
  node_membership nodes;
  auto first = nodes.join("w1", ids.a.node(), {});
  REQUIRE(first);
  CHECK((*first)->incarnation == 1);
  auto twin = nodes.join("w1", ids.b.node(), {});
  REQUIRE_FALSE(twin);
  CHECK(runtime::is(twin.error(), runtime::errc::invalid_request));
  CHECK(nodes.check_join("w1", ids.b.node()));
  CHECK_FALSE(nodes.check_join("w1", ids.a.node()));
  auto again = nodes.join("w1", ids.a.node(), {});
  REQUIRE(again);
  CHECK(*again == *first);
  CHECK((*again)->incarnation == 2);
  node_membership::lose(**again, time_point{} + 1s, caf::timestamp{}, "gone");
  CHECK(nodes.up_count() == 0);
  CHECK(nodes.find_up(ids.a.node()) == nullptr);
  auto successor = nodes.join("w1", ids.b.node(), {});
  REQUIRE(successor);
  CHECK((*successor)->state == cluster_node::status::up);
  CHECK((*successor)->lost_reason.empty());
  CHECK(nodes.find_up(ids.b.node()) == *successor);
}

TEST_CASE("lost nodes are due to be forgotten lost-node-ttl after their loss",
          "[node_membership]") {
  two_nodes ids;
  node_membership nodes;
  auto ttl = caf::timespan{1min};
  CHECK(nodes.next_forget(ttl) == time_point::max());
  auto w1 = nodes.join("w1", ids.a.node(), {});
  auto w2 = nodes.join("w2", ids.b.node(), {});
  REQUIRE(w1);
  REQUIRE(w2);
  auto t0 = time_point{} + 10s;
  node_membership::lose(**w1, t0, caf::timestamp{}, "cut");
  node_membership::lose(**w2, t0 + 5s, caf::timestamp{}, "cut");
  CHECK(nodes.next_forget(ttl) == t0 + ttl);
  CHECK(nodes.lost_before(t0 + ttl - 1s, ttl).empty());
  CHECK(nodes.lost_before(t0 + ttl, ttl) == std::vector<std::string>{"w1"});
  nodes.forget("w1");
  CHECK(nodes.find("w1") == nullptr);
  CHECK(nodes.next_forget(ttl) == t0 + 5s + ttl);
  CHECK(nodes.nodes().size() == 1);
}
