#include "vidnode/gpu/tiny_t2v.hpp"

#include <cmath>
#include <fstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "torch_load.hpp"

namespace vidnode::gpu {

namespace {

constexpr int64_t latent_channels = 4;
constexpr int64_t hidden_channels = 32;
constexpr int64_t embed_dim = 64;
constexpr int64_t time_dim = 16;
constexpr int64_t vocabulary = 4096;
constexpr int64_t downscale = 8;
constexpr int64_t train_steps = 1000;
/// The seed of the built-in weights: the same on every machine.
constexpr uint64_t weight_seed = 0x7137'2076'0001ull;

/// Hashes a prompt into token ids: lowercase words, FNV-1a, modulo the
/// vocabulary. An empty prompt is the single token 0.
std::vector<int64_t> tokenize(const std::string& prompt) {
  std::vector<int64_t> ids;
  uint64_t hash = 0xcbf29ce484222325ull;
  bool in_word = false;
  auto flush = [&] {
    if (in_word)
      ids.push_back(static_cast<int64_t>(hash % vocabulary));
    hash = 0xcbf29ce484222325ull;
    in_word = false;
  };
  for (unsigned char c : prompt) {
    if (std::isalnum(c)) {
      hash = (hash ^ static_cast<uint64_t>(std::tolower(c))) * 0x100000001b3ull;
      in_word = true;
    } else {
      flush();
    }
  }
  flush();
  if (ids.empty())
    ids.push_back(0);
  return ids;
}

/// Predicts the noise in a latent video, conditioned on the prompt and the
/// timestep (FiLM: a per-channel scale and shift).
struct denoiser_impl : torch::nn::Module {
  denoiser_impl() {
    tokens =
      register_module("tokens", torch::nn::Embedding(vocabulary, embed_dim));
    film = register_module(
      "film", torch::nn::Linear(embed_dim + time_dim, 2 * hidden_channels));
    head = register_module(
      "head", torch::nn::Conv3d(
                torch::nn::Conv3dOptions(latent_channels, hidden_channels, 3)
                  .padding(1)));
    body = register_module(
      "body", torch::nn::Conv3d(
                torch::nn::Conv3dOptions(hidden_channels, hidden_channels, 3)
                  .padding(1)));
    tail = register_module(
      "tail", torch::nn::Conv3d(
                torch::nn::Conv3dOptions(hidden_channels, latent_channels, 3)
                  .padding(1)));
  }

  /// The prompt's embedding: the mean of its tokens' embeddings, [1, D].
  torch::Tensor condition(const torch::Tensor& ids) {
    return tokens(ids).mean(0, true);
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t_emb,
                        const torch::Tensor& cond) {
    auto h = torch::silu(head(x));
    auto scale_shift = film(torch::cat({cond, t_emb}, 1));
    auto scale = scale_shift.slice(1, 0, hidden_channels)
                   .view({1, hidden_channels, 1, 1, 1});
    auto shift =
      scale_shift.slice(1, hidden_channels).view({1, hidden_channels, 1, 1, 1});
    h = h * (1 + scale) + shift;
    h = torch::silu(body(h));
    return tail(h);
  }

  torch::nn::Embedding tokens{nullptr};
  torch::nn::Linear film{nullptr};
  torch::nn::Conv3d head{nullptr};
  torch::nn::Conv3d body{nullptr};
  torch::nn::Conv3d tail{nullptr};
};

TORCH_MODULE_IMPL(denoiser, denoiser_impl);

/// Decodes latent frames [F, 4, h, w] to RGB in [-1, 1], [F, 3, 8h, 8w]:
/// three 2x upsamplings with narrowing convolutions.
struct decoder_impl : torch::nn::Module {
  decoder_impl() {
    auto conv = [](int64_t in, int64_t out) {
      return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
    };
    c1 = register_module("c1", conv(latent_channels, 32));
    c2 = register_module("c2", conv(32, 16));
    c3 = register_module("c3", conv(16, 8));
    c4 = register_module("c4", conv(8, 3));
  }

  torch::Tensor forward(const torch::Tensor& z) {
    auto up = [](const torch::Tensor& x) {
      return torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
             .scale_factor(std::vector<double>{2.0, 2.0})
             .mode(torch::kNearest));
    };
    auto h = torch::silu(c1(z));
    h = torch::silu(c2(up(h)));
    h = torch::silu(c3(up(h)));
    return torch::tanh(c4(up(h)));
  }

  torch::nn::Conv2d c1{nullptr};
  torch::nn::Conv2d c2{nullptr};
  torch::nn::Conv2d c3{nullptr};
  torch::nn::Conv2d c4{nullptr};
};

TORCH_MODULE_IMPL(decoder, decoder_impl);

/// Both networks, for saving and loading as one archive.
struct tiny_t2v_impl : torch::nn::Module {
  tiny_t2v_impl() {
    net = register_module("denoiser", denoiser());
    dec = register_module("decoder", decoder());
  }

  denoiser net{nullptr};
  decoder dec{nullptr};
};

TORCH_MODULE_IMPL(tiny_t2v_model, tiny_t2v_impl);

/// Fills every parameter from a private generator seeded with
/// `weight_seed` (He-style scaling, zero biases), so the weights are the
/// same in every process and no other thread's use of torch's global
/// generator can change them.
void init_fixed_weights(tiny_t2v_model& model) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(weight_seed);
  for (auto& param : model->parameters()) {
    if (param.dim() < 2) {
      param.zero_();
      continue;
    }
    auto fan_in = param.numel() / param.size(0);
    auto values = at::randn(param.sizes(), gen, torch::kFloat32);
    param.copy_(values * std::sqrt(2.0 / static_cast<double>(fan_in)));
  }
}

/// Sinusoidal embedding of a timestep, [1, time_dim].
torch::Tensor time_embedding(int64_t t, const torch::Device& device) {
  auto half = time_dim / 2;
  auto freqs = torch::exp(torch::arange(half, torch::kFloat32)
                          * (-std::log(10000.0) / static_cast<double>(half)));
  auto args = freqs * static_cast<double>(t);
  return torch::cat({torch::sin(args), torch::cos(args)})
    .view({1, time_dim})
    .to(device);
}

/// One tiny-t2v job on a device: DDIM over the latent, then decoding.
class tiny_t2v_run : public job_run {
public:
  tiny_t2v_run(tiny_t2v_model& model, torch::Device device,
               const runtime::job_spec& spec,
               const std::vector<double>& alphas_cumprod)
    : model_(model), device_(device), meter_(device), spec_steps_(spec.steps),
      fps_(spec.fps), alphas_cumprod_(alphas_cumprod) {}

  /// Conditions on the prompt and draws the initial latent.
  void prepare(const runtime::job_spec& spec) {
    meter_.measure([&] {
      with_torch(device_, [&] {
        torch::NoGradGuard no_grad;
        auto ids =
          torch::tensor(tokenize(spec.prompt), torch::kInt64).to(device_);
        cond_ = model_->net->condition(ids);
        // The initial noise comes from the job's seed, drawn on the CPU so
        // the same seed starts from the same latent on every device.
        auto gen = at::detail::createCPUGenerator(spec.seed);
        latent_ = at::randn({1, latent_channels, spec.frames,
                             spec.height / downscale, spec.width / downscale},
                            gen, torch::kFloat32)
                    .to(device_);
      });
    });
  }

  int32_t steps() const override {
    return spec_steps_;
  }

  device_time step(int32_t index) override {
    meter_.measure([&] { with_torch(device_, [&] { denoise(index); }); });
    return device_time{0};
  }

  job_output finish(device_time& busy) override {
    busy = device_time{0};
    job_output out;
    meter_.measure([&] { with_torch(device_, [&] { out.video = decode(); }); });
    out.peak_bytes = meter_.peak_bytes();
    return out;
  }

private:
  void denoise(int32_t index) {
    torch::NoGradGuard no_grad;
    auto t = timestep(index);
    auto a_t = alphas_cumprod_[static_cast<size_t>(t)];
    auto a_prev = index + 1 < spec_steps_
                    ? alphas_cumprod_[static_cast<size_t>(timestep(index + 1))]
                    : 1.0;
    auto eps = model_->net->forward(latent_, time_embedding(t, device_), cond_);
    auto x0 = ((latent_ - std::sqrt(1.0 - a_t) * eps) / std::sqrt(a_t))
                .clamp(-3.0, 3.0);
    latent_ = std::sqrt(a_prev) * x0 + std::sqrt(1.0 - a_prev) * eps;
  }

  video_frames decode() {
    torch::NoGradGuard no_grad;
    // [1, C, F, h, w] -> [F, C, h, w] -> RGB [F, 3, H, W] -> [F, H, W, 3]
    auto z = latent_.squeeze(0).permute({1, 0, 2, 3}).contiguous();
    auto rgb = model_->dec->forward(z);
    auto pixels = ((rgb + 1.0) * 127.5)
                    .clamp(0.0, 255.0)
                    .to(torch::kUInt8)
                    .permute({0, 2, 3, 1})
                    .contiguous()
                    .to(torch::kCPU);
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
  int32_t spec_steps_;
  int32_t fps_;
  const std::vector<double>& alphas_cumprod_;
  torch::Tensor cond_;
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
    return device_time{0};
  }

  uint64_t resident_bytes() const override {
    return resident_bytes_;
  }

  std::unique_ptr<job_run> begin(const runtime::job_spec& spec, int32_t,
                                 device_time& busy) override {
    busy = device_time{0};
    auto run =
      std::make_unique<tiny_t2v_run>(model_, device_, spec, alphas_cumprod_);
    run->prepare(spec);
    return run;
  }

private:
  void load_weights() {
    model_ = tiny_t2v_model();
    if (weights_path_.empty()) {
      init_fixed_weights(model_);
    } else {
      try {
        torch::load(model_, weights_path_);
      } catch (const c10::OutOfMemoryError&) {
        throw;
      } catch (const c10::Error& e) {
        throw job_error(runtime::errc::internal,
                        "tiny-t2v: cannot load weights from " + weights_path_
                          + ": " + e.what_without_backtrace());
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
  return std::nullopt;
}

uint64_t
tiny_t2v_factory::estimate_peak_bytes(const runtime::job_spec& spec) const {
  auto frames = static_cast<uint64_t>(spec.frames);
  auto pixels = frames * static_cast<uint64_t>(spec.width)
                * static_cast<uint64_t>(spec.height);
  auto latent_voxels = pixels / (downscale * downscale);
  // Denoising keeps about three hidden activations alive; decoding peaks at
  // full resolution (8 + 8 + 3 float channels); then the uint8 frames.
  auto denoise = latent_voxels * hidden_channels * 4 * 3;
  auto decode = pixels * 19 * 4;
  auto frames_out = pixels * 3 * 2;
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

} // namespace vidnode::gpu
