#include "tiny_t2v_model.hpp"

#include <cctype>
#include <cmath>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>

#include "vidnode/gpu/collectives.hpp"

namespace vidnode::gpu::tiny_t2v_detail {

namespace {

/// The seed of the built-in weights: the same on every machine.
constexpr uint64_t weight_seed = 0x7137'2076'0001ull;

using clock_type = std::chrono::steady_clock;

torch::nn::Conv2d frame_conv(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
}

std::string shape_of(const torch::Tensor& x) {
  std::string text = "[";
  for (int64_t i = 0; i < x.dim(); ++i)
    text += (i ? ", " : "") + std::to_string(x.size(i));
  return text + "]";
}

} // namespace

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

frame_split::frame_split(communicator* gang)
  : gang_(gang), world_(gang ? gang->world() : 1) {}

torch::Tensor frame_split::all_to_all(const torch::Tensor& x) {
  if (!gang_)
    return x;
  auto input = x.contiguous();
  auto started = clock_type::now();
  auto result = gang_->all_to_all(input);
  exchange_time_ += clock_type::now() - started;
  return result;
}

torch::Tensor frame_split::all_gather(const torch::Tensor& x) {
  if (!gang_)
    return x;
  auto input = x.contiguous();
  auto started = clock_type::now();
  auto result = gang_->all_gather(input);
  exchange_time_ += clock_type::now() - started;
  return result;
}

temporal_attention_impl::temporal_attention_impl() {
  qkv = register_module(
    "qkv", torch::nn::Linear(hidden_channels, 3 * hidden_channels));
  out =
    register_module("out", torch::nn::Linear(hidden_channels, hidden_channels));
}

torch::Tensor temporal_attention_impl::forward(const torch::Tensor& h,
                                               frame_split& split) {
  auto world = split.world();
  auto frames = h.size(0); // this rank's
  auto height = h.size(2);
  auto width = h.size(3);
  auto positions = height * width;
  auto heads = attention_heads / world; // this rank's share after exchange
  // [F, C, h, w] -> tokens [P, F, C], normalized over the channels.
  auto tokens =
    h.permute({2, 3, 0, 1}).reshape({positions, frames, hidden_channels});
  auto normed = torch::nn::functional::layer_norm(
    tokens, torch::nn::functional::LayerNormFuncOptions({hidden_channels}));
  // q, k, v of this rank's frames for every head, grouped by the rank that
  // attends over each head: [world, 3, P, F, H / world, d].
  auto qkv_local = qkv(normed)
                     .view({positions, frames, 3, world, heads, head_dim})
                     .permute({3, 2, 0, 1, 4, 5});
  // Every rank's frames for this rank's heads: [world, 3, P, F, H / world,
  // d] whose first dimension is the rank that holds those frames, so in
  // frame order -> [3, P * H / world, all frames, d].
  auto gathered = split.all_to_all(qkv_local)
                    .permute({1, 2, 4, 0, 3, 5})
                    .reshape({3, positions * heads, world * frames, head_dim});
  auto q = gathered[0];
  auto k = gathered[1];
  auto v = gathered[2];
  auto scores =
    torch::bmm(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(head_dim));
  auto attended = torch::bmm(torch::softmax(scores, -1), v);
  // Back to the ranks that hold the frames: [world, P, F, H / world, d],
  // first dimension the frames' rank; what returns has the first dimension
  // the heads' rank, so in head order -> [P, F, C].
  auto outgoing = attended.view({positions, heads, world, frames, head_dim})
                    .permute({2, 0, 3, 1, 4});
  auto mine = split.all_to_all(outgoing)
                .permute({1, 2, 0, 3, 4})
                .reshape({positions, frames, hidden_channels});
  auto result = tokens + out(mine);
  return result.view({height, width, frames, hidden_channels})
    .permute({2, 3, 0, 1})
    .contiguous();
}

denoiser_impl::denoiser_impl() {
  tokens =
    register_module("tokens", torch::nn::Embedding(vocabulary, embed_dim));
  film = register_module(
    "film", torch::nn::Linear(embed_dim + time_dim, 2 * hidden_channels));
  head = register_module("head", frame_conv(latent_channels, hidden_channels));
  attention = register_module("attention", temporal_attention());
  body = register_module("body", frame_conv(hidden_channels, hidden_channels));
  tail = register_module("tail", frame_conv(hidden_channels, latent_channels));
}

torch::Tensor denoiser_impl::condition(const torch::Tensor& ids) {
  return tokens(ids).mean(0, true);
}

torch::Tensor denoiser_impl::forward(const torch::Tensor& x,
                                     const torch::Tensor& t_emb,
                                     const torch::Tensor& cond,
                                     frame_split& split) {
  auto h = torch::silu(head(x));
  auto scale_shift = film(torch::cat({cond, t_emb}, 1));
  auto scale =
    scale_shift.slice(1, 0, hidden_channels).view({1, hidden_channels, 1, 1});
  auto shift =
    scale_shift.slice(1, hidden_channels).view({1, hidden_channels, 1, 1});
  h = h * (1 + scale) + shift;
  h = attention(h, split);
  h = torch::silu(body(h));
  return tail(h);
}

decoder_impl::decoder_impl() {
  c1 = register_module("c1", frame_conv(latent_channels, 32));
  c2 = register_module("c2", frame_conv(32, 16));
  c3 = register_module("c3", frame_conv(16, 8));
  c4 = register_module("c4", frame_conv(8, 3));
}

torch::Tensor decoder_impl::forward(const torch::Tensor& z) {
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

tiny_t2v_impl::tiny_t2v_impl() {
  net = register_module("denoiser", denoiser());
  dec = register_module("decoder", decoder());
  register_buffer("layout", torch::tensor({weights_layout}, torch::kInt64));
}

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

void load_weights(tiny_t2v_model& model, const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  torch::Tensor layout;
  if (!archive.try_read("layout", layout, /*is_buffer=*/true))
    throw std::runtime_error(
      "the file holds weights of an older tiny-t2v (a 3D-convolution "
      "denoiser, before temporal attention); write them again with this "
      "version's save_tiny_t2v_weights");
  if (layout.numel() != 1)
    throw std::runtime_error("the file's layout is malformed");
  if (layout.item<int64_t>() != weights_layout)
    throw std::runtime_error("the file holds weights of layout "
                             + std::to_string(layout.item<int64_t>())
                             + "; this version reads layout "
                             + std::to_string(weights_layout));
  // Reading replaces each tensor with the file's, whatever its shape:
  // check the shapes against the model's own.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  for (const auto& param : model->named_parameters())
    expected.emplace_back(param.key(), param.value().sizes().vec());
  model->load(archive);
  auto params = model->named_parameters();
  for (const auto& [name, sizes] : expected) {
    const auto* loaded = params.find(name);
    if (loaded == nullptr || loaded->sizes().vec() != sizes)
      throw std::runtime_error("the file's " + name + " has the shape "
                               + (loaded ? shape_of(*loaded) : "none")
                               + ", not the model's");
  }
}

void save_weights_without_layout(const std::string& path) {
  // The networks as they were: three 3D convolutions in the denoiser.
  struct old_denoiser : torch::nn::Module {
    old_denoiser() {
      auto conv = [](int64_t in, int64_t out) {
        return torch::nn::Conv3d(
          torch::nn::Conv3dOptions(in, out, 3).padding(1));
      };
      register_module("tokens", torch::nn::Embedding(vocabulary, embed_dim));
      register_module(
        "film", torch::nn::Linear(embed_dim + time_dim, 2 * hidden_channels));
      register_module("head", conv(latent_channels, hidden_channels));
      register_module("body", conv(hidden_channels, hidden_channels));
      register_module("tail", conv(hidden_channels, latent_channels));
    }
  };
  auto model = std::make_shared<torch::nn::Module>();
  model->register_module("denoiser", std::make_shared<old_denoiser>());
  model->register_module("decoder", std::make_shared<decoder_impl>());
  torch::serialize::OutputArchive archive;
  model->save(archive);
  archive.save_to(path);
}

torch::Tensor time_embedding(int64_t t) {
  auto half = time_dim / 2;
  auto freqs = torch::exp(torch::arange(half, torch::kFloat32)
                          * (-std::log(10000.0) / static_cast<double>(half)));
  auto args = freqs * static_cast<double>(t);
  return torch::cat({torch::sin(args), torch::cos(args)}).view({1, time_dim});
}

} // namespace vidnode::gpu::tiny_t2v_detail
