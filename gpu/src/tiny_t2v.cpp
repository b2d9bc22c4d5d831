#include "vidnode/gpu/tiny_t2v.hpp"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "vidnode/gpu/collectives.hpp"

#include "step_timer.hpp"
#include "tiny_t2v_hooks.hpp"
#include "tiny_t2v_model.hpp"
#include "torch_load.hpp"

namespace vidnode::gpu {

namespace {

using namespace tiny_t2v_detail;
using clock_type = std::chrono::steady_clock;

/// Why `ranks` cannot split a job of `frames` frames, if they cannot.
std::optional<std::string> ranks_problem(int64_t ranks, int64_t frames) {
  if (ranks >= 1 && attention_heads % ranks == 0 && frames % ranks == 0)
    return std::nullopt;
  return "ranks: tiny-t2v splits " + std::to_string(attention_heads)
         + " attention heads and the frames over the ranks; ranks must "
           "divide "
         + std::to_string(attention_heads) + " and frames (got ranks "
         + std::to_string(ranks) + ", frames " + std::to_string(frames) + ")";
}

/// One tiny-t2v job, or one rank's part of it, on a device: DDIM over the
/// latent's frames this rank holds, then decoding them; rank 0 gathers
/// every rank's frames.
///
/// Host synchronisations (on cuda; the stream is the lane's): three
/// host-to-device copies from pageable memory when the job begins (the
/// prompt's tokens, the steps' time embeddings, the initial noise), each of
/// which waits for the lane's stream (at::native's copy: memcpy_and_sync),
/// idle then, so for the copy alone; none in step(); in finish() rank 0's
/// copy of the frames to the host, the one the job cannot do without,
/// after which step_timer reads its events without waiting. Their costs on
/// a GPU: scripts/gpu-check.sh ("[gpu] host costs").
class tiny_t2v_run : public job_run {
public:
  tiny_t2v_run(tiny_t2v_model& model, torch::Device device,
               const runtime::job_spec& spec,
               const std::vector<double>& alphas_cumprod, int32_t rank,
               std::shared_ptr<communicator> gang)
    : model_(model), device_(device), meter_(device), timer_(device),
      spec_steps_(spec.steps), fps_(spec.fps), alphas_cumprod_(alphas_cumprod),
      rank_(rank), gang_(std::move(gang)), split_(gang_.get()) {}

  tiny_t2v_run(const tiny_t2v_run&) = delete;
  tiny_t2v_run& operator=(const tiny_t2v_run&) = delete;

  /// A run that did not finish frees its tensors as a memory window, so
  /// that a job measured on another lane meanwhile is not misattributed.
  ~tiny_t2v_run() override {
    if (!cond_.defined() && !latent_.defined() && !time_embeddings_.defined())
      return;
    try {
      meter_.unmeasured([&] { release(); });
    } catch (...) {
      // Freeing cannot fail; the registry's lock is all that could.
    }
  }

  /// Conditions on the prompt and draws the initial latent.
  void prepare(const runtime::job_spec& spec) {
    meter_.measure([&] {
      with_torch(device_, [&] {
        torch::NoGradGuard no_grad;
        timer_.reserve(spec_steps_);
        auto ids =
          torch::tensor(tokenize(spec.prompt), torch::kInt64).to(device_);
        cond_ = model_->net->condition(ids);
        // Every step's time embedding, in one copy now rather than one per
        // step: that copy synchronised the stream in every step, and making
        // the embedding took 7.6 us of host time per step (against 0.5 us
        // for the slice that replaces it; a 64x64x8 step is 1.8 ms on one
        // cpu thread).
        std::vector<torch::Tensor> embeddings;
        for (int32_t i = 0; i < spec_steps_; ++i)
          embeddings.push_back(time_embedding(timestep(i)));
        if (!embeddings.empty())
          time_embeddings_ = torch::cat(embeddings, 0).to(device_);
        // The initial noise comes from the job's seed, drawn on the CPU so
        // the same seed starts from the same latent on every device. Every
        // rank draws all of it and keeps its frames, so a gang starts from
        // the latent one rank would.
        auto gen = at::detail::createCPUGenerator(spec.seed);
        auto noise =
          at::randn({1, latent_channels, spec.frames, spec.height / downscale,
                     spec.width / downscale},
                    gen, torch::kFloat32);
        auto frames = spec.frames / split_.world();
        // [1, C, F, h, w] -> this rank's frames [F / ranks, C, h, w].
        latent_ = noise.squeeze(0)
                    .permute({1, 0, 2, 3})
                    .slice(0, rank_ * frames, (rank_ + 1) * frames)
                    .contiguous()
                    .to(device_);
      });
    });
  }

  int32_t steps() const override {
    return spec_steps_;
  }

  device_time step(int32_t index) override {
    auto started = clock_type::now();
    auto exchanged = split_.exchange_time();
    meter_.measure([&] {
      with_torch(device_, [&] { timer_.time([&] { denoise(index); }); });
    });
    timing_.steps += clock_type::now() - started;
    timing_.step_collectives += split_.exchange_time() - exchanged;
    return device_time{0};
  }

  job_output finish(device_time& busy) override {
    busy = device_time{0};
    auto started = clock_type::now();
    auto exchanged = split_.exchange_time();
    job_output out;
    meter_.measure([&] {
      with_torch(device_, [&] {
        out.video = decode();
        kernel_ = timer_.total();
        release();
      });
    });
    out.peak_bytes = meter_.peak_bytes();
    timing_.finish += clock_type::now() - started;
    timing_.finish_collectives += split_.exchange_time() - exchanged;
    return out;
  }

  run_profile profile() const override {
    return {kernel_, meter_.measurement_time()};
  }

  /// This rank's latent, on the CPU (empty once finish() returned).
  torch::Tensor latent() const {
    if (!latent_.defined())
      return torch::empty({0}, torch::kFloat32);
    return latent_.to(torch::kCPU).contiguous();
  }

  tiny_t2v_hooks::run_timing timing() const {
    return timing_;
  }

private:
  /// Frees the job's tensors (within a measured call or unmeasured()).
  void release() {
    cond_.reset();
    latent_.reset();
    time_embeddings_.reset();
  }

  void denoise(int32_t index) {
    torch::NoGradGuard no_grad;
    auto t = timestep(index);
    auto a_t = alphas_cumprod_[static_cast<size_t>(t)];
    auto a_prev = index + 1 < spec_steps_
                    ? alphas_cumprod_[static_cast<size_t>(timestep(index + 1))]
                    : 1.0;
    auto t_emb = time_embeddings_.slice(0, index, index + 1);
    auto eps = model_->net->forward(latent_, t_emb, cond_, split_);
    auto x0 = ((latent_ - std::sqrt(1.0 - a_t) * eps) / std::sqrt(a_t))
                .clamp(-3.0, 3.0);
    latent_ = std::sqrt(a_prev) * x0 + std::sqrt(1.0 - a_prev) * eps;
  }

  /// Every rank decodes its frames; rank 0 gathers them all (every rank
  /// takes part in the gather) and returns the video, the others nothing.
  std::optional<video_frames> decode() {
    torch::NoGradGuard no_grad;
    // RGB [F, 3, H, W] -> [F, H, W, 3]
    auto rgb = model_->dec->forward(latent_);
    auto pixels = ((rgb + 1.0) * 127.5)
                    .clamp(0.0, 255.0)
                    .to(torch::kUInt8)
                    .permute({0, 2, 3, 1})
                    .contiguous();
    pixels = split_.all_gather(pixels);
    if (rank_ != 0)
      return std::nullopt;
    // The one synchronisation after the job began: its frames reach the
    // host (see the class comment).
    pixels = pixels.to(torch::kCPU).contiguous();
    video_frames video;
    video.frames = static_cast<int32_t>(pixels.size(0));
    video.height = static_cast<int32_t>(pixels.size(1));
    video.width = static_cast<int32_t>(pixels.size(2));
    video.fps = fps_;
    auto data = pixels.data_ptr<uint8_t>();
    video.rgb.assign(data, data + pixels.numel());
    return video;
  }

  /// The training timestep of DDIM step `index`: evenly spaced, high first.
  int64_t timestep(int32_t index) const {
    auto stride = train_steps / std::max<int64_t>(spec_steps_, 1);
    return std::max<int64_t>(train_steps - 1 - index * stride, 0);
  }

  tiny_t2v_model& model_;
  torch::Device device_;
  device_memory_meter meter_;
  step_timer timer_;
  device_time kernel_{0};
  int32_t spec_steps_;
  int32_t fps_;
  const std::vector<double>& alphas_cumprod_;
  int32_t rank_;
  std::shared_ptr<communicator> gang_;
  frame_split split_;
  tiny_t2v_hooks::run_timing timing_;
  torch::Tensor cond_;
  /// [steps, time_dim]: step i's time embedding is row i.
  torch::Tensor time_embeddings_;
  torch::Tensor latent_;
};

class tiny_t2v_pipeline : public pipeline {
public:
  tiny_t2v_pipeline(std::string weights_path, torch::Device device)
    : weights_path_(std::move(weights_path)), device_(device) {
    // A linear beta schedule over the training steps.
    double product = 1.0;
    for (int64_t t = 0; t < train_steps; ++t) {
      auto beta = 1e-4
                  + (0.02 - 1e-4) * static_cast<double>(t)
                      / static_cast<double>(train_steps - 1);
      product *= 1.0 - beta;
      alphas_cumprod_.push_back(product);
    }
  }

  device_time load(const runtime::job_spec&) override {
    resident_bytes_ = load_on_device(device_, [&] { load_weights(); });
    with_torch(device_, [&] { wait_for_device(device_); });
    return device_time{0};
  }

  uint64_t resident_bytes() const override {
    return resident_bytes_;
  }

  std::unique_ptr<job_run> begin(const runtime::job_spec& spec, int32_t attempt,
                                 device_time& busy) override {
    return begin_rank(spec, attempt, 0, 1, nullptr, busy);
  }

  std::unique_ptr<job_run> begin_rank(const runtime::job_spec& spec, int32_t,
                                      int32_t rank, int32_t world,
                                      std::shared_ptr<communicator> gang,
                                      device_time& busy) override {
    busy = device_time{0};
    if (world < 1 || rank < 0 || rank >= world)
      throw job_error(runtime::errc::invalid_request,
                      "ranks: rank " + std::to_string(rank) + " is not one of "
                        + std::to_string(world));
    if (auto problem = ranks_problem(world, spec.frames))
      throw job_error(runtime::errc::invalid_request, *problem);
    if (world > 1 && !gang)
      throw job_error(runtime::errc::invalid_request,
                      "ranks: tiny-t2v runs " + std::to_string(world)
                        + " ranks only with a communicator");
    if (gang && (gang->world() != world || gang->rank() != rank))
      throw job_error(
        runtime::errc::invalid_request,
        "ranks: the communicator is rank " + std::to_string(gang->rank())
          + " of " + std::to_string(gang->world()) + ", not rank "
          + std::to_string(rank) + " of " + std::to_string(world));
    auto run = std::make_unique<tiny_t2v_run>(
      model_, device_, spec, alphas_cumprod_, rank, std::move(gang));
    run->prepare(spec);
    return run;
  }

private:
  void load_weights() {
    model_ = tiny_t2v_model();
    if (weights_path_.empty()) {
      init_fixed_weights(model_);
    } else {
      auto refuse = [&](const std::string& why) {
        return job_error(runtime::errc::internal,
                         "tiny-t2v: cannot load weights from " + weights_path_
                           + ": " + why);
      };
      try {
        tiny_t2v_detail::load_weights(model_, weights_path_);
      } catch (const c10::OutOfMemoryError&) {
        throw;
      } catch (const c10::Error& e) {
        throw refuse(e.what_without_backtrace());
      } catch (const std::runtime_error& e) {
        throw refuse(e.what());
      }
    }
    model_->eval();
    model_->to(device_);
  }

  std::string weights_path_;
  torch::Device device_;
  uint64_t resident_bytes_ = 0;
  tiny_t2v_model model_{nullptr};
  std::vector<double> alphas_cumprod_;
};

} // namespace

bool torch_available() noexcept {
  return true;
}

tiny_t2v_factory::tiny_t2v_factory(std::string weights_path)
  : weights_path_(std::move(weights_path)) {}

const std::vector<std::string>& tiny_t2v_factory::served() const {
  static const std::vector<std::string> patterns{model_name};
  return patterns;
}

bool tiny_t2v_factory::runs_on(runtime::device_kind kind) const {
  return kind == runtime::device_kind::cpu
         || kind == runtime::device_kind::cuda;
}

std::optional<std::string>
tiny_t2v_factory::validate(const runtime::job_spec& spec) const {
  if (!spec.options.empty())
    return "options: model tiny-t2v takes no options, got '"
           + spec.options.begin()->first + "'";
  return ranks_problem(spec.ranks, spec.frames);
}

uint64_t
tiny_t2v_factory::estimate_peak_bytes(const runtime::job_spec& spec) const {
  // Per device of the gang: each rank holds frames / ranks of the latent
  // and attends over every frame for heads / ranks heads.
  auto ranks = static_cast<uint64_t>(std::max(spec.ranks, 1));
  auto frames = static_cast<uint64_t>(spec.frames);
  auto rank_frames = (frames + ranks - 1) / ranks;
  auto frame_pixels =
    static_cast<uint64_t>(spec.width) * static_cast<uint64_t>(spec.height);
  auto positions = frame_pixels / (downscale * downscale);
  auto rank_heads = std::max<uint64_t>(attention_heads / ranks, 1);
  // Denoising keeps about three hidden activations alive and the attention
  // scores with their softmax; decoding peaks at full resolution (8 + 8 +
  // 3 float channels); then the uint8 frames (all of them on rank 0).
  auto denoise = positions * rank_frames * hidden_channels * 4 * 3
                 + positions * rank_heads * frames * frames * 4 * 2;
  auto decode = frame_pixels * rank_frames * 19 * 4;
  auto frames_out = frame_pixels * frames * 3 * 2;
  constexpr uint64_t overhead = 64ull << 20;
  return std::max(denoise, decode) + frames_out + overhead;
}

std::unique_ptr<pipeline>
tiny_t2v_factory::make(const std::string&,
                       const runtime::device_info& device) const {
  return std::make_unique<tiny_t2v_pipeline>(weights_path_,
                                             torch_device(device));
}

std::optional<std::string> save_tiny_t2v_weights(const std::string& path) {
  try {
    auto model = tiny_t2v_model();
    init_fixed_weights(model);
    torch::save(model, path);
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string{"saving tiny-t2v weights to "} + path + ": " + e.what();
  }
}

namespace tiny_t2v_hooks {

namespace {

const tiny_t2v_run& as_tiny_t2v(const job_run& run) {
  auto tiny = dynamic_cast<const tiny_t2v_run*>(&run);
  if (tiny == nullptr)
    throw std::invalid_argument("not a tiny-t2v run");
  return *tiny;
}

} // namespace

std::vector<float> latent(const job_run& run) {
  auto x = as_tiny_t2v(run).latent();
  auto data = x.data_ptr<float>();
  return {data, data + x.numel()};
}

run_timing timing(const job_run& run) {
  return as_tiny_t2v(run).timing();
}

void set_intra_op_threads(int32_t threads) {
  at::set_num_threads(threads);
}

int32_t intra_op_threads() {
  return at::get_num_threads();
}

std::optional<std::string> save_old_layout_weights(const std::string& path) {
  try {
    tiny_t2v_detail::save_weights_without_layout(path);
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string{"saving old tiny-t2v weights to "} + path + ": "
           + e.what();
  }
}

} // namespace tiny_t2v_hooks

} // namespace vidnode::gpu
