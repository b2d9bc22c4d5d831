#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/make_message.hpp>

#include <catch2/catch.hpp>

#include "vidnode/actors/interfaces.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/type_registration.hpp"

using namespace vidnode;

namespace {

struct registration {
  /// The C++ type's name as the compiler mangles it.
  std::string type;
  /// The name it crosses the wire under.
  std::string name;
};

/// What `add` registers in a config beyond CAF's own types.
std::vector<registration> added_by(void (*add)(caf::actor_system_config&)) {
  caf::actor_system_config cfg;
  auto before = cfg.type_names_by_rtti;
  add(cfg);
  std::vector<registration> result;
  for (const auto& [type, name] : cfg.type_names_by_rtti)
    if (before.count(type) == 0)
      result.push_back({type.name(), name});
  return result;
}

/// The bytes `x` is sent as by an actor system configured by `configure`.
template <class T>
std::vector<char> wire_bytes(void (*configure)(caf::actor_system_config&),
                             T x) {
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto msg = caf::make_message(std::move(x));
  REQUIRE(!sink(msg));
  return buf;
}

} // namespace

TEST_CASE("every type vidnode registers is its own and named in its "
          "namespace") {
  for (auto add : {&runtime::add_types, &actors::add_types}) {
    auto added = added_by(add);
    CHECK(!added.empty());
    for (const auto& r : added) {
      INFO(r.name << " for the C++ type " << r.type);
      // "vidnode::x", or CAF's "std::vector<vidnode::x>" and
      // "stream<vidnode::x>" for the containers of one.
      CHECK(r.name.find("vidnode::") != std::string::npos);
      // A vidnode type or a container of one, never a common type such as
      // std::vector<uint64_t> whose name a host application would share.
      CHECK(r.type.find("vidnode") != std::string::npos);
    }
  }
}

TEST_CASE("vidnode's error category is rendered by a host's actor system") {
  caf::actor_system_config cfg;
  actors::add_types(cfg);
  caf::actor_system sys{cfg};
  auto text = sys.render(
    runtime::make_error(runtime::errc::queue_full, "the queue holds 8 jobs"));
  CHECK(text.find("queue_full") != std::string::npos);
  CHECK(text.find("the queue holds 8 jobs") != std::string::npos);
}

TEST_CASE("a worker's lease list crosses the wire as protocol vidnode/4 "
          "sent it") {
  // vidnode/4 registered the bare vector under this name.
  auto old_registration = [](caf::actor_system_config& cfg) {
    cfg.add_message_type<std::vector<uint64_t>>("vidnode::lease_list");
  };
  auto before = wire_bytes(+old_registration, std::vector<uint64_t>{7, 8, 9});
  auto now = wire_bytes(&actors::add_types, actors::lease_list{{7, 8, 9}});
  CHECK(now == before);
}
