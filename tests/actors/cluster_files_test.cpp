/// Deterministic tests of chunk sizes across nodes: what the head asks a
/// worker node for when a client reads a video there, and what the messages
/// vidnode exchanges weigh against the smallest message size limit. The
/// worker node is an actor system of its own (its own CAF node id) whose
/// supervisor and device worker are fakes that serve a file from memory and
/// record every length they are asked for.

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>

#include "support/deterministic.hpp"
#include "vidnode/actors/interfaces.hpp"
#include "vidnode/gpu/devices.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/validation.hpp"

using namespace std::chrono_literals;
using namespace vidnode;
using runtime::errc;
using runtime::job_id;
using runtime::output_chunk;

namespace {

/// The smallest --max-message-size a node accepts.
constexpr uint64_t smallest_limit = runtime::settings_limits::min_message_size;

/// A deterministic config with CAF's middleman on its testing backend, for
/// the CAF node id it gives the system.
struct node_config : test::deterministic_config {
  node_config() {
    load<caf::io::middleman>();
    set("middleman.network-backend", caf::atom("testing"));
    set("middleman.manual-multiplexing", true);
    set("middleman.workers", size_t{0});
  }
};

/// The file the fake node serves, and what it was asked.
struct served_file {
  std::string content;
  /// Every `max_bytes` of a read, in order.
  std::vector<uint32_t> asks;
  /// Answers with this many bytes more than asked (a misbehaving node).
  uint32_t extra = 0;
};

actors::device_worker_actor::behavior_type
fake_worker(actors::device_worker_actor::pointer self,
            actors::admission_control_actor admission) {
  return {
    [=](actors::run_atom, actors::job_ticket& ticket) {
      auto path = "/w1/job-" + runtime::to_string(ticket.id) + ".mp4";
      self->send(admission, actors::done_atom::value, ticket.id, ticket.lease,
                 actors::finished_job{path, 0, {}});
    },
    [](actors::abort_atom, job_id, uint64_t) {},
    [](actors::step_atom, uint64_t) {},
    [](actors::loaded_atom, const std::string&) {},
    [](actors::encoded_atom, uint64_t, const std::string&, const caf::error&,
       caf::timespan) {},
    [](actors::copied_atom, uint64_t, const std::string&, const caf::error&) {},
    [](actors::bind_atom, const caf::actor&) {},
    [](actors::resume_atom) { return actors::lease_list{}; },
    [](actors::rendezvous_atom, runtime::job_id, uint64_t, const std::string&) {
    },
    [](actors::advance_atom, uint64_t, int32_t) {},
    [](actors::preload_atom, const std::string&) { return true; },
  };
}

/// Attaches one fake device worker to the admission actor it is bound to,
/// and serves `file` to reads.
actors::node_supervisor_actor::behavior_type
fake_supervisor(actors::node_supervisor_actor::pointer self,
                runtime::device_info device,
                std::shared_ptr<served_file> file) {
  return {
    [](actors::restart_atom, int32_t) {},
    [](actors::probe_atom, int32_t) {},
    [](actors::fault_atom, int32_t, const caf::error&) {},
    [=](actors::bind_atom, const caf::actor& next,
        const std::vector<actors::held_lease>&) {
      auto admission = caf::actor_cast<actors::admission_control_actor>(next);
      auto worker = self->spawn<caf::linked>(fake_worker, admission);
      self->send(admission, actors::attach_atom::value, device, worker,
                 int32_t{0}, std::vector<std::string>{}, uint64_t{0});
    },
    [](actors::held_atom) { return std::vector<actors::held_lease>{}; },
    [](actors::renew_atom, int64_t) {},
    [](actors::metrics_atom) { return std::vector<actors::device_metrics>{}; },
    [=](actors::read_file_atom, const std::string&, uint64_t offset,
        uint32_t max_bytes) -> caf::result<output_chunk> {
      file->asks.push_back(max_bytes);
      output_chunk chunk;
      chunk.size = file->content.size();
      if (offset > chunk.size)
        return runtime::make_error(errc::invalid_request, "beyond the end");
      auto n = std::min<uint64_t>(uint64_t{max_bytes} + file->extra,
                                  chunk.size - offset);
      auto from = file->content.begin() + static_cast<ptrdiff_t>(offset);
      chunk.bytes.assign(from, from + static_cast<ptrdiff_t>(n));
      return chunk;
    },
    [](actors::shutdown_atom) -> caf::result<caf::ok_atom> {
      return caf::ok_atom::value;
    },
  };
}

/// A head with no devices and a fake worker node "w1" of one device that
/// has run job 1, whose video is `file`.
struct fake_cluster {
  test::deterministic_fixture head;
  node_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched{
    dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())};
  std::shared_ptr<served_file> file = std::make_shared<served_file>();
  actors::node_supervisor_actor supervisor;

  explicit fake_cluster(uint64_t head_limit, size_t file_bytes) {
    std::mt19937 gen{11};
    file->content.resize(file_bytes);
    for (auto& c : file->content)
      c = static_cast<char>(gen() & 0xff);
    auto settings = test::settings_with(1);
    settings.max_message_size = head_limit;
    head.start_node(settings, "none");
    std::vector<runtime::device_info> devices;
    std::string error;
    REQUIRE(gpu::parse_devices("sim:1:16GiB", devices, error));
    supervisor = sys.spawn(fake_supervisor, devices[0], file);
    auto registry = head.node.registry;
    auto sup = supervisor;
    sys.spawn([=](caf::event_based_actor* self) {
      actors::node_registration reg{"w1",    runtime::protocol_version, sup,
                                    devices, {"sim", "sim-*"},          {}};
      self->request(registry, caf::infinite, actors::join_atom::value, reg)
        .then([=](actors::admission_control_actor& admission,
                  actors::join_answer&) {
          self->send(sup, actors::bind_atom::value,
                     caf::actor_cast<caf::actor>(admission),
                     std::vector<actors::held_lease>{});
        });
    });
    run();
    auto done = head.execute(test::sim_job(1, 10));
    run();
    REQUIRE(done->value);
    REQUIRE(done->value->state == runtime::job_state::succeeded);
    REQUIRE(done->value->output_node == "w1");
  }

  ~fake_cluster() {
    caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
    run();
  }

  /// Runs both systems' messages that are due now.
  void run() {
    while (head.sched.run() + sched.run() > 0)
      ;
  }

  /// A client's read of job 1's video through the head.
  test::reply<output_chunk> read(uint64_t offset, uint32_t max_bytes) {
    file->asks.clear();
    auto r = head.read_output(job_id{1}, offset, max_bytes);
    run();
    REQUIRE(r->arrived());
    return *r;
  }

  std::string bytes_of(uint64_t offset, uint64_t length) const {
    return file->content.substr(offset, length);
  }
};

std::string text(const output_chunk& chunk) {
  return {chunk.bytes.begin(), chunk.bytes.end()};
}

/// The bytes `xs` take when serialized as CAF sends them.
template <class... Ts>
size_t serialized_size(caf::actor_system& sys, Ts... xs) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto msg = caf::make_message(std::move(xs)...);
  REQUIRE_FALSE(sink(msg));
  return buf.size();
}

} // namespace

TEST_CASE("at the smallest message size limit the head reads a worker "
          "node's video in pieces that fit it, and the client gets all it "
          "asked for",
          "[cluster][file_chunks]") {
  constexpr uint32_t mib = 1 << 20;
  fake_cluster fx{smallest_limit, 3 * mib + 12345};
  auto piece = runtime::chunk_bytes_within(smallest_limit, mib);
  REQUIRE(piece == smallest_limit - runtime::chunk_envelope_bytes);
  auto size = fx.file->content.size();
  SECTION("a read of 1 MiB") {
    auto r = fx.read(0, mib);
    REQUIRE(r.value);
    CHECK(r.value->size == size);
    CHECK(text(*r.value) == fx.bytes_of(0, mib));
    CHECK(fx.file->asks
          == std::vector<uint32_t>{piece, piece, mib - 2 * piece});
  }
  SECTION("a read past the end stops at the end") {
    auto r = fx.read(size - 1000, mib);
    REQUIRE(r.value);
    CHECK(text(*r.value) == fx.bytes_of(size - 1000, 1000));
    CHECK(fx.file->asks == std::vector<uint32_t>{piece});
  }
  SECTION("a read longer than max_chunk_bytes is cut to it") {
    auto r = fx.read(0, 64 * mib);
    REQUIRE(r.value);
    CHECK(text(*r.value) == fx.file->content);
    for (auto ask : fx.file->asks)
      CHECK(ask <= piece);
  }
  SECTION("a short read is asked for as it is") {
    auto r = fx.read(100, 1000);
    REQUIRE(r.value);
    CHECK(text(*r.value) == fx.bytes_of(100, 1000));
    CHECK(fx.file->asks == std::vector<uint32_t>{1000});
  }
}

TEST_CASE("at the default message size limit a read of 1 MiB is one read on "
          "the worker node",
          "[cluster][file_chunks]") {
  constexpr uint32_t mib = 1 << 20;
  fake_cluster fx{runtime::default_max_message_size, 3 * mib};
  auto r = fx.read(mib, mib);
  REQUIRE(r.value);
  CHECK(text(*r.value) == fx.bytes_of(mib, mib));
  CHECK(fx.file->asks == std::vector<uint32_t>{mib});
}

TEST_CASE("a worker node that answers a read with more bytes than asked "
          "fails the read instead of passing them on",
          "[cluster][file_chunks]") {
  fake_cluster fx{smallest_limit, 2 << 20};
  fx.file->extra = 1;
  auto r = fx.read(0, 1 << 20);
  REQUIRE_FALSE(r.value);
  CHECK(runtime::is(r.error, errc::output_unavailable));
  CHECK_THAT(runtime::describe(r.error), Catch::Contains("node w1 sent"));
}

TEST_CASE("the largest job a client may submit, sent to a worker node, and "
          "a chunk asked for within a limit fit in the smallest limit",
          "[cluster][file_chunks]") {
  test::deterministic_config cfg;
  caf::actor_system sys{cfg};
  using lim = runtime::job_limits;
  actors::job_ticket ticket;
  auto& spec = ticket.spec;
  spec.model = std::string(lim::max_model_bytes, 'm');
  spec.prompt = std::string(lim::max_prompt_bytes, 'p');
  spec.idempotency_key = std::string(lim::max_idempotency_key_bytes, 'k');
  for (size_t i = 0; spec.options.size() < lim::max_options; ++i) {
    auto key = std::to_string(i);
    key += std::string(lim::max_option_key_bytes - key.size(), 'o');
    spec.options.emplace(key, std::string(lim::max_option_value_bytes, 'v'));
  }
  for (auto url : {&spec.audio_url, &spec.output_url, &spec.webhook_url})
    *url = "https://" + std::string(lim::max_url_bytes - 8, 'u');
  REQUIRE_FALSE(runtime::validate(spec));
  ticket.audio_path = "/" + std::string(4095, 'a');
  auto run = serialized_size(sys, actors::run_atom::value, ticket);
  CHECK(run > 280000);
  CHECK(run + runtime::chunk_envelope_bytes < smallest_limit);
  // A chunk's reply weighs its bytes and a few dozen more: the envelope
  // leaves room for the actors it passes as well.
  for (auto limit :
       {smallest_limit, uint64_t{1} << 20, runtime::default_max_message_size}) {
    output_chunk chunk;
    chunk.size = uint64_t{1} << 40;
    chunk.bytes.resize(runtime::chunk_bytes_within(limit));
    auto reply = serialized_size(sys, chunk);
    INFO("limit " << limit << ", reply " << reply);
    CHECK(reply - chunk.bytes.size() <= runtime::chunk_envelope_bytes / 8);
    CHECK(reply <= limit);
  }
}
