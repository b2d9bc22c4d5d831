// The Gloo backend of collectives.hpp: libtorch's c10d ProcessGroupGloo
// over a TCPStore that rank 0's rendezvous host serves.
//
// Timeouts: joining shares one deadline between reaching the store and
// waiting for every rank's key there (polled with check(): after a timed-out
// wait() a TCPStore client's socket is out of step with its server, so it
// could not say afterwards which ranks are missing). Connecting the pairs
// then starts with every rank present. Each collective fails when Gloo's
// own I/O makes no progress for `timeout` (its context timeout); waiting on
// the Work is bounded too (twice that, plus a second) as a backstop.

// Declares ProcessGroupGloo in c10d's headers (see shared/GPU.md).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "collectives_backends.hpp"

namespace vidnode::gpu {

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

/// A parsed "gloo:HOST:PORT/GANG".
struct gloo_address {
  std::string host;
  uint16_t port = 0;
  std::string gang;

  std::string endpoint() const {
    return (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":"
           + std::to_string(port);
  }
};

constexpr size_t gang_id_digits = 16;

gloo_address parse_gloo_address(const std::string& address) {
  auto body = address_body(address, "gloo");
  auto malformed = [&](const std::string& why) {
    return collective_error("malformed gloo rendezvous address '"
                            + address.substr(0, 128) + "': " + why
                            + " (expected gloo:HOST:PORT/GANG)");
  };
  gloo_address parsed;
  auto slash = body.rfind('/');
  if (slash == std::string::npos)
    throw malformed("no /GANG");
  parsed.gang = body.substr(slash + 1);
  if (parsed.gang.size() != gang_id_digits
      || !std::all_of(parsed.gang.begin(), parsed.gang.end(),
                      [](char c) { return std::isxdigit(c) != 0; }))
    throw malformed("GANG is not 16 hex digits");
  auto host_port = body.substr(0, slash);
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw malformed("no HOST:PORT");
  parsed.host = host_port.substr(0, colon);
  if (parsed.host.front() == '[') {
    if (parsed.host.size() < 3 || parsed.host.back() != ']')
      throw malformed("unbalanced [ ] around the host");
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  auto port = host_port.substr(colon + 1);
  if (port.empty() || port.size() > 5
      || !std::all_of(port.begin(), port.end(),
                      [](char c) { return std::isdigit(c) != 0; }))
    throw malformed("PORT is not a number");
  auto value = std::stoul(port);
  if (value == 0 || value > 65535)
    throw malformed("PORT is out of range");
  parsed.port = static_cast<uint16_t>(value);
  return parsed;
}

/// Runs `call` (c10d or Gloo code); their errors become collective_error
/// saying what was being done.
template <class F>
auto guarded(const std::string& doing, F&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const collective_error&) {
    throw;
  } catch (const c10::Error& e) {
    throw collective_error("gloo: " + doing + ": "
                           + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw collective_error("gloo: " + doing + ": " + e.what());
  }
}

milliseconds left_until(steady::time_point deadline) {
  auto left =
    std::chrono::duration_cast<milliseconds>(deadline - steady::now());
  return std::max(left, milliseconds{1});
}

/// The address of this host's interface that reaches `to`: Gloo's pairs
/// listen there (no packet is sent; connecting a UDP socket only routes).
std::string local_address_towards(const gloo_address& to) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  auto port = std::to_string(to.port);
  if (int rc = ::getaddrinfo(to.host.c_str(), port.c_str(), &hints, &found))
    throw collective_error("gloo: cannot resolve the gang's host '" + to.host
                           + "': " + ::gai_strerror(rc));
  std::string local;
  std::string failure = "no address";
  for (auto* ai = found; ai != nullptr && local.empty(); ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
      continue;
    sockaddr_storage self{};
    socklen_t length = sizeof(self);
    char text[INET6_ADDRSTRLEN] = {};
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0
        && ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &length) == 0
        && ::getnameinfo(reinterpret_cast<sockaddr*>(&self), length, text,
                         sizeof(text), nullptr, 0, NI_NUMERICHOST)
             == 0)
      local = text;
    else
      failure = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (local.empty())
    throw collective_error("gloo: no local interface reaches " + to.endpoint()
                           + ": " + failure);
  return local;
}

class gloo_rendezvous_host final : public rendezvous_host {
public:
  gloo_rendezvous_host(c10::intrusive_ptr<c10d::TCPStore> server,
                       std::string address)
    : server_(std::move(server)), address_(std::move(address)) {}

  const std::string& address() const override {
    return address_;
  }

private:
  c10::intrusive_ptr<c10d::TCPStore> server_;
  std::string address_;
};

/// One rank of a Gloo gang. After a collective fails, every later one
/// fails at once with the first failure: the ranks' calls are out of step.
class gloo_communicator final : public communicator {
public:
  gloo_communicator(c10::intrusive_ptr<c10d::ProcessGroupGloo> group,
                    int32_t rank, int32_t world, milliseconds timeout)
    : group_(std::move(group)), rank_(rank), world_(world), timeout_(timeout) {}

  int32_t rank() const noexcept override {
    return rank_;
  }

  int32_t world() const noexcept override {
    return world_;
  }

  const char* backend() const noexcept override {
    return "gloo";
  }

  at::Tensor all_gather(const at::Tensor& input) override {
    check_input("all_gather", input);
    at::NoGradGuard no_grad;
    auto sizes = input.sizes().vec();
    sizes[0] *= world_;
    // Every rank's shape is the same: all skip an empty one alike.
    if (input.numel() == 0)
      return at::empty(sizes, input.options());
    // Moved as bytes: Gloo copies any dtype alike, and 1.13's Gloo has no
    // bfloat16 or bool.
    auto bytes = as_bytes(input);
    auto gathered =
      at::empty({world_ * bytes.size(0), bytes.size(1)}, bytes.options());
    std::vector<std::vector<at::Tensor>> outputs{gathered.chunk(world_)};
    std::vector<at::Tensor> inputs{bytes};
    run("all_gather", [&] { return group_->allgather(outputs, inputs); });
    return gathered.view(input.scalar_type()).view(sizes);
  }

  at::Tensor all_to_all(const at::Tensor& input) override {
    check_input("all_to_all", input);
    if (input.size(0) % world_ != 0)
      throw collective_error("all_to_all: dimension 0 of the input ("
                             + std::to_string(input.size(0))
                             + ") is not a multiple of the gang's "
                             + std::to_string(world_) + " ranks");
    at::NoGradGuard no_grad;
    if (input.numel() == 0)
      return at::empty_like(input);
    auto bytes = as_bytes(input);
    auto received = at::empty_like(bytes);
    // Empty split sizes: equal chunks.
    std::vector<int64_t> equal_splits;
    run("all_to_all", [&] {
      return group_->alltoall_base(received, bytes, equal_splits, equal_splits);
    });
    return received.view(input.scalar_type()).view(input.sizes());
  }

  void all_reduce_sum(at::Tensor& tensor) override {
    check_usable("all_reduce_sum", tensor);
    at::NoGradGuard no_grad;
    auto type = tensor.scalar_type();
    bool native = type == at::kFloat || type == at::kDouble || type == at::kHalf
                  || type == at::kChar || type == at::kByte || type == at::kInt
                  || type == at::kLong;
    if (!native && type != at::kBFloat16)
      throw collective_error(std::string{"all_reduce_sum: gloo cannot sum "}
                             + c10::toString(type) + " tensors");
    // bfloat16 is summed in float32 (1.13's Gloo has no bfloat16).
    auto summed = native ? tensor.contiguous() : tensor.to(at::kFloat);
    std::vector<at::Tensor> tensors{summed};
    run("all_reduce_sum", [&] { return group_->allreduce(tensors); });
    if (!summed.is_same(tensor))
      tensor.copy_(summed);
  }

  void barrier() override {
    check_state("barrier");
    run("barrier", [&] { return group_->barrier(); });
  }

private:
  void check_state(const char* op) const {
    if (!failure_.empty())
      throw collective_error(std::string{op}
                             + ": the gang failed earlier: " + failure_);
  }

  void check_usable(const char* op, const at::Tensor& tensor) const {
    check_state(op);
    if (!tensor.defined())
      throw collective_error(std::string{op} + ": undefined tensor");
    if (!tensor.device().is_cpu())
      throw collective_error(std::string{op} + ": a gloo gang takes cpu "
                             + "tensors, not " + tensor.device().str());
  }

  void check_input(const char* op, const at::Tensor& input) const {
    check_usable(op, input);
    if (input.dim() == 0)
      throw collective_error(std::string{op}
                             + ": the input needs a dimension 0");
  }

  /// `input`'s bytes, [size(0), bytes per row]: Gloo splits and gathers
  /// along dimension 0 of this as along the input's.
  static at::Tensor as_bytes(const at::Tensor& input) {
    return input.contiguous().view({input.size(0), -1}).view(at::kByte);
  }

  /// Starts a collective with `start` and waits for it; a failure marks
  /// the gang failed and throws.
  template <class Start>
  void run(const char* op, Start&& start) {
    try {
      guarded(op, [&] {
        auto work = start();
        work->wait(2 * timeout_ + std::chrono::seconds{1});
      });
    } catch (const collective_error& e) {
      failure_ = e.what();
      throw;
    }
  }

  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int32_t rank_;
  int32_t world_;
  milliseconds timeout_;
  std::string failure_;
};

/// Which of `world` ranks have no key in `store` (a comma-separated list).
std::string missing_ranks(c10d::Store& store, int32_t world) {
  std::string missing;
  for (int32_t r = 0; r < world; ++r)
    if (!store.check({"member/" + std::to_string(r)}))
      missing += (missing.empty() ? "" : ", ") + std::to_string(r);
  return missing;
}

} // namespace

std::unique_ptr<rendezvous_host> host_gloo_rendezvous(const std::string& host) {
  if (host.empty())
    throw collective_error("gloo: the rendezvous needs the host that the "
                           "other ranks reach this process at");
  c10d::TCPStoreOptions options;
  options.port = 0; // ephemeral: getPort() says which
  options.isServer = true;
  options.waitWorkers = false;
  auto server = guarded("opening a TCPStore server for " + host, [&] {
    return c10::make_intrusive<c10d::TCPStore>(host, options);
  });
  std::random_device entropy;
  auto gang = (static_cast<uint64_t>(entropy()) << 32) ^ entropy();
  char id[gang_id_digits + 1];
  std::snprintf(id, sizeof(id), "%016llx",
                static_cast<unsigned long long>(gang));
  gloo_address address{host, server->getPort(), id};
  return std::make_unique<gloo_rendezvous_host>(
    std::move(server), "gloo:" + address.endpoint() + "/" + id);
}

std::unique_ptr<communicator> join_gloo_gang(const std::string& address,
                                             int32_t rank, int32_t world,
                                             milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  auto to = parse_gloo_address(address);
  auto who = "rank " + std::to_string(rank) + " of gang " + to.gang;
  c10d::TCPStoreOptions options;
  options.port = to.port;
  options.isServer = false;
  options.waitWorkers = false;
  options.timeout = timeout;
  auto store = guarded("reaching the gang's store at " + to.endpoint(), [&] {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(to.host, options);
    return c10::make_intrusive<c10d::PrefixStore>("vidnode/gang/" + to.gang,
                                                  tcp);
  });
  guarded("joining the gang's store as " + who, [&] {
    if (store->add("member/" + std::to_string(rank), 1) != 1)
      throw collective_error(who + " had joined already: a rendezvous "
                             + "serves one gang (a new attempt needs a new "
                             + "host_rendezvous)");
    std::vector<std::string> members;
    for (int32_t r = 0; r < world; ++r)
      members.push_back("member/" + std::to_string(r));
    auto pause = milliseconds{1};
    while (!store->check(members)) {
      if (steady::now() >= deadline)
        throw collective_error(
          "gloo: rank(s) " + missing_ranks(*store, world) + " of " + who
          + " (world " + std::to_string(world) + ") did not join within "
          + std::to_string(timeout.count()) + " ms");
      std::this_thread::sleep_for(std::min(pause, left_until(deadline)));
      pause = std::min(pause * 2, milliseconds{50});
    }
  });
  auto group_options = c10d::ProcessGroupGloo::Options::create(timeout);
  // The calls are synchronous: one thread runs them in order.
  group_options->threads = 1;
  auto local = local_address_towards(to);
  auto group = guarded("connecting " + who + " from " + local, [&] {
    group_options->devices.push_back(
      c10d::ProcessGroupGloo::createDeviceForHostname(local));
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world,
                                                       group_options);
  });
  return std::make_unique<gloo_communicator>(std::move(group), rank, world,
                                             timeout);
}

} // namespace vidnode::gpu
