// The NCCL backend of collectives.hpp: NCCL's C API on the CUDA runtime,
// one non-blocking communicator per rank and a stream of its own.
//
// Timeouts: the communicator is non-blocking (config.blocking = 0), so
// joining and every collective are polled (ncclCommGetAsyncError,
// cudaStreamQuery) against a deadline `timeout` after the call began, and
// the communicator is aborted when it passes: NCCL cannot say whether a
// transfer progresses, so here `timeout` bounds each call as a whole.
//
// Built only with a libtorch that has CUDA (VIDNODE_TORCH_CUDA); elsewhere
// CMake still compiles and links this file on its own as a check, against
// a CPU-only libtorch's headers: it uses only at::Tensor's device-neutral
// API and the CUDA runtime's C API, never c10/cuda.

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <thread>

#include <ATen/ATen.h>

#include "collectives_backends.hpp"

namespace vidnode::gpu {

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

void cuda_check(cudaError_t rc, const std::string& doing) {
  if (rc != cudaSuccess)
    throw collective_error("nccl: " + doing + ": CUDA error "
                           + cudaGetErrorName(rc) + ": "
                           + cudaGetErrorString(rc));
}

std::string nccl_failure(ncclResult_t rc, ncclComm_t comm) {
  std::string what = ncclGetErrorString(rc);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0')
    what += std::string{" ("} + last + ")";
  return what;
}

/// Waits a little longer each time: the first waits are short, so that a
/// small collective returns soon after it completes.
class backoff {
public:
  void pause() {
    if (spins_ < 100) {
      ++spins_;
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(sleep_);
    sleep_ = std::min(sleep_ * 2, std::chrono::microseconds{2000});
  }

private:
  int spins_ = 0;
  std::chrono::microseconds sleep_{20};
};

std::string to_hex(const ncclUniqueId& id) {
  static const char digits[] = "0123456789abcdef";
  std::string text;
  text.reserve(2 * sizeof(id.internal));
  for (char c : id.internal) {
    auto byte = static_cast<unsigned char>(c);
    text += digits[byte >> 4];
    text += digits[byte & 0xf];
  }
  return text;
}

ncclUniqueId parse_nccl_address(const std::string& address) {
  auto hex = address_body(address, "nccl");
  ncclUniqueId id{};
  if (hex.size() != 2 * sizeof(id.internal)
      || !std::all_of(hex.begin(), hex.end(),
                      [](char c) { return std::isxdigit(c) != 0; }))
    throw collective_error(
      "malformed nccl rendezvous address '" + address.substr(0, 64)
      + "...': expected nccl: and " + std::to_string(2 * sizeof(id.internal))
      + " hex digits, got " + std::to_string(hex.size()) + " characters");
  for (size_t i = 0; i < sizeof(id.internal); ++i)
    id.internal[i] =
      static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return id;
}

/// NCCL's type for sums of `type`.
ncclDataType_t summable_type(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return ncclFloat32;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kDouble:
      return ncclFloat64;
    case at::kLong:
      return ncclInt64;
    case at::kInt:
      return ncclInt32;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    default:
      throw collective_error(std::string{"all_reduce_sum: nccl cannot sum "}
                             + c10::toString(type) + " tensors");
  }
}

class nccl_rendezvous_host final : public rendezvous_host {
public:
  explicit nccl_rendezvous_host(std::string address)
    : address_(std::move(address)) {}

  const std::string& address() const override {
    return address_;
  }

private:
  std::string address_;
};

/// One rank of an NCCL gang on CUDA device `ordinal`. After a collective
/// fails, the communicator is aborted and every later call fails at once.
class nccl_communicator final : public communicator {
public:
  nccl_communicator(ncclComm_t comm, int32_t ordinal, int32_t rank,
                    int32_t world, milliseconds timeout)
    : comm_(comm), ordinal_(ordinal), rank_(rank), world_(world),
      timeout_(timeout) {
    try {
      cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                 "creating the gang's stream");
      cuda_check(cudaMalloc(&token_, sizeof(float)),
                 "allocating the barrier's float");
    } catch (...) {
      release();
      throw;
    }
  }

  /// Aborts the communicator if a call failed or it does not finalize
  /// within the timeout; never waits longer than that.
  ~nccl_communicator() override {
    release();
  }

  int32_t rank() const noexcept override {
    return rank_;
  }

  int32_t world() const noexcept override {
    return world_;
  }

  const char* backend() const noexcept override {
    return "nccl";
  }

  at::Tensor all_gather(const at::Tensor& input) override {
    check_input("all_gather", input);
    auto source = input.contiguous();
    auto sizes = input.sizes().vec();
    sizes[0] *= world_;
    auto gathered = at::empty(sizes, input.options());
    auto bytes = source.numel() * source.element_size();
    run("all_gather", [&] {
      return ncclAllGather(source.data_ptr(), gathered.data_ptr(),
                           static_cast<size_t>(bytes), ncclUint8, comm_,
                           stream_);
    });
    return gathered;
  }

  at::Tensor all_to_all(const at::Tensor& input) override {
    check_input("all_to_all", input);
    if (input.size(0) % world_ != 0)
      throw collective_error("all_to_all: dimension 0 of the input ("
                             + std::to_string(input.size(0))
                             + ") is not a multiple of the gang's "
                             + std::to_string(world_) + " ranks");
    auto source = input.contiguous();
    auto received = at::empty_like(source);
    auto chunk =
      static_cast<size_t>(source.numel() * source.element_size() / world_);
    auto* from = static_cast<char*>(source.data_ptr());
    auto* to = static_cast<char*>(received.data_ptr());
    run("all_to_all", [&] {
      ncclResult_t rc = ncclGroupStart();
      for (int32_t peer = 0; peer < world_ && rc == ncclSuccess; ++peer) {
        rc =
          ncclSend(from + peer * chunk, chunk, ncclUint8, peer, comm_, stream_);
        if (rc == ncclSuccess)
          rc =
            ncclRecv(to + peer * chunk, chunk, ncclUint8, peer, comm_, stream_);
      }
      auto ended = ncclGroupEnd();
      return rc == ncclSuccess ? ended : rc;
    });
    return received;
  }

  void all_reduce_sum(at::Tensor& tensor) override {
    check_usable("all_reduce_sum", tensor);
    auto type = summable_type(tensor.scalar_type());
    auto summed = tensor.contiguous();
    run("all_reduce_sum", [&] {
      return ncclAllReduce(summed.data_ptr(), summed.data_ptr(),
                           static_cast<size_t>(summed.numel()), type, ncclSum,
                           comm_, stream_);
    });
    if (!summed.is_same(tensor))
      tensor.copy_(summed);
  }

  void barrier() override {
    check_state("barrier");
    run("barrier", [&] {
      return ncclAllReduce(token_, token_, 1, ncclFloat32, ncclSum, comm_,
                           stream_);
    });
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
    if (!tensor.device().is_cuda() || tensor.device().index() != ordinal_)
      throw collective_error(std::string{op} + ": this rank's tensors are on "
                             + "cuda:" + std::to_string(ordinal_) + ", not "
                             + tensor.device().str());
  }

  void check_input(const char* op, const at::Tensor& input) const {
    check_usable(op, input);
    if (input.dim() == 0)
      throw collective_error(std::string{op}
                             + ": the input needs a dimension 0");
  }

  /// Enqueues a collective with `enqueue` on the gang's stream and waits
  /// for it; a failure or the timeout aborts the communicator and throws.
  template <class Enqueue>
  void run(const char* op, Enqueue&& enqueue) {
    auto deadline = steady::now() + timeout_;
    try {
      cuda_check(cudaSetDevice(ordinal_), "selecting the device");
      // libtorch's current stream is only known through its CUDA headers,
      // which a CPU-only build lacks: waiting for the whole device makes
      // sure what torch queued on the inputs is done before NCCL reads
      // them. (An event on torch's stream would be cheaper.)
      cuda_check(cudaDeviceSynchronize(), std::string{op} + ": before it");
      auto rc = enqueue();
      if (rc != ncclSuccess && rc != ncclInProgress)
        throw collective_error("nccl: " + std::string{op} + ": "
                               + nccl_failure(rc, comm_));
      backoff wait;
      for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclCommGetAsyncError(comm_, &state);
        if (state != ncclSuccess && state != ncclInProgress)
          throw collective_error("nccl: " + std::string{op} + ": "
                                 + nccl_failure(state, comm_));
        if (state == ncclSuccess) {
          auto done = cudaStreamQuery(stream_);
          if (done == cudaSuccess)
            return;
          if (done != cudaErrorNotReady)
            cuda_check(done, std::string{op});
        }
        if (steady::now() >= deadline)
          throw collective_error("nccl: " + std::string{op}
                                 + ": not done within "
                                 + std::to_string(timeout_.count())
                                 + " ms (a rank did not call it, or left)");
        wait.pause();
      }
    } catch (const collective_error& e) {
      failure_ = e.what();
      abort();
      throw;
    }
  }

  void abort() noexcept {
    if (comm_ != nullptr)
      ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  void release() noexcept {
    if (comm_ != nullptr && failure_.empty()) {
      // Finalizing flushes what is queued; it may wait for peers, so it
      // runs non-blocking and gives way to an abort after the timeout.
      auto deadline = steady::now() + timeout_;
      ncclResult_t state = ncclCommFinalize(comm_);
      backoff wait;
      while (state == ncclInProgress && steady::now() < deadline) {
        wait.pause();
        ncclCommGetAsyncError(comm_, &state);
      }
      if (state == ncclSuccess) {
        ncclCommDestroy(comm_);
        comm_ = nullptr;
      }
    }
    abort();
    if (stream_ != nullptr)
      cudaStreamDestroy(stream_);
    if (token_ != nullptr)
      cudaFree(token_);
    stream_ = nullptr;
    token_ = nullptr;
  }

  ncclComm_t comm_;
  cudaStream_t stream_ = nullptr;
  void* token_ = nullptr;
  int32_t ordinal_;
  int32_t rank_;
  int32_t world_;
  milliseconds timeout_;
  std::string failure_;
};

} // namespace

std::unique_ptr<rendezvous_host> host_nccl_rendezvous() {
  ncclUniqueId id{};
  auto rc = ncclGetUniqueId(&id);
  if (rc != ncclSuccess)
    throw collective_error(std::string{"nccl: making the gang's unique id: "}
                           + ncclGetErrorString(rc));
  return std::make_unique<nccl_rendezvous_host>("nccl:" + to_hex(id));
}

std::unique_ptr<communicator> join_nccl_gang(int32_t ordinal,
                                             const std::string& address,
                                             int32_t rank, int32_t world,
                                             milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  auto id = parse_nccl_address(address);
  auto who = "rank " + std::to_string(rank) + " of " + std::to_string(world)
             + " on cuda:" + std::to_string(ordinal);
  cuda_check(cudaSetDevice(ordinal),
             "selecting cuda:" + std::to_string(ordinal));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  auto rc = ncclCommInitRankConfig(&comm, world, id, rank, &config);
  backoff wait;
  while (rc == ncclInProgress) {
    if (steady::now() >= deadline) {
      ncclCommAbort(comm);
      throw collective_error("nccl: rank(s) of the gang did not join within "
                             + std::to_string(timeout.count()) + " ms (" + who
                             + ")");
    }
    wait.pause();
    ncclCommGetAsyncError(comm, &rc);
  }
  if (rc != ncclSuccess) {
    auto what = nccl_failure(rc, comm);
    if (comm != nullptr)
      ncclCommAbort(comm);
    throw collective_error("nccl: joining as " + who + ": " + what);
  }
  return std::make_unique<nccl_communicator>(comm, ordinal, rank, world,
                                             timeout);
}

} // namespace vidnode::gpu
