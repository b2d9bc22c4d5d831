#pragma once

/// @file
/// tiny-t2v's networks (private to gpu/): the denoiser, whose frames meet
/// only in its temporal attention, and the per-frame decoder; their fixed
/// weights and the weights file. tiny_t2v.cpp runs them as a job.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace vidnode::gpu {

class communicator;

namespace tiny_t2v_detail {

constexpr int64_t latent_channels = 4;
constexpr int64_t hidden_channels = 32;
/// Heads of the temporal attention: the most ranks a job can be split over
/// (Ulysses gives each rank whole heads).
constexpr int64_t attention_heads = 4;
constexpr int64_t head_dim = hidden_channels / attention_heads;
constexpr int64_t embed_dim = 64;
constexpr int64_t time_dim = 16;
constexpr int64_t vocabulary = 4096;
constexpr int64_t downscale = 8;
constexpr int64_t train_steps = 1000;
/// The layout of the networks' weights, recorded in the weights file.
/// Files written before it was recorded have none: their denoiser was three
/// 3D convolutions. 2: per-frame convolutions and temporal attention.
constexpr int64_t weights_layout = 2;

/// Hashes a prompt into token ids: lowercase words, FNV-1a, modulo the
/// vocabulary. An empty prompt is the single token 0.
std::vector<int64_t> tokenize(const std::string& prompt);

/// The frames of a latent split over the ranks of a gang: this rank holds
/// frames [rank * F / world, (rank + 1) * F / world). Carries the exchange
/// that temporal attention needs and times it. With no communicator, one
/// rank holds every frame and the exchange is the identity.
class frame_split {
public:
  /// `gang` may be null only for one rank; it must outlive this object.
  explicit frame_split(communicator* gang);

  /// Ranks the frames are split over (1 without a communicator).
  int64_t world() const noexcept {
    return world_;
  }

  /// communicator::all_to_all of `x` (made contiguous), timed; `x` itself
  /// without a communicator. Throws collective_error as the communicator
  /// does.
  torch::Tensor all_to_all(const torch::Tensor& x);

  /// communicator::all_gather of `x`, timed; `x` without a communicator.
  torch::Tensor all_gather(const torch::Tensor& x);

  /// Time spent in the communicator's calls so far (waiting for the other
  /// ranks included).
  std::chrono::nanoseconds exchange_time() const noexcept {
    return exchange_time_;
  }

private:
  communicator* gang_;
  int64_t world_;
  std::chrono::nanoseconds exchange_time_{0};
};

/// Multi-head self-attention over frames, position by position (the only
/// place where the denoiser mixes frames), with a pre-norm and a residual.
/// Ulysses sequence parallelism: each rank computes q, k and v for its own
/// frames and every head, an all-to-all gives each rank every frame for
/// its share of the heads, and a second all-to-all brings the attended
/// values back to the ranks that hold their frames.
struct temporal_attention_impl : torch::nn::Module {
  temporal_attention_impl();

  /// `h`: this rank's frames [F / world, hidden_channels, h, w]; returns
  /// the same shape.
  torch::Tensor forward(const torch::Tensor& h, frame_split& split);

  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear out{nullptr};
};

TORCH_MODULE_IMPL(temporal_attention, temporal_attention_impl);

/// Predicts the noise in a latent video, conditioned on the prompt and the
/// timestep (FiLM: a per-channel scale and shift): per-frame convolutions,
/// temporal attention between them.
struct denoiser_impl : torch::nn::Module {
  denoiser_impl();

  /// The prompt's embedding: the mean of its tokens' embeddings, [1, D].
  torch::Tensor condition(const torch::Tensor& ids);

  /// `x`: this rank's latent frames [F / world, latent_channels, h, w].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t_emb,
                        const torch::Tensor& cond, frame_split& split);

  torch::nn::Embedding tokens{nullptr};
  torch::nn::Linear film{nullptr};
  torch::nn::Conv2d head{nullptr};
  temporal_attention attention{nullptr};
  torch::nn::Conv2d body{nullptr};
  torch::nn::Conv2d tail{nullptr};
};

TORCH_MODULE_IMPL(denoiser, denoiser_impl);

/// Decodes latent frames [F, 4, h, w] to RGB in [-1, 1], [F, 3, 8h, 8w]:
/// three 2x upsamplings with narrowing convolutions, frame by frame.
struct decoder_impl : torch::nn::Module {
  decoder_impl();

  torch::Tensor forward(const torch::Tensor& z);

  torch::nn::Conv2d c1{nullptr};
  torch::nn::Conv2d c2{nullptr};
  torch::nn::Conv2d c3{nullptr};
  torch::nn::Conv2d c4{nullptr};
};

TORCH_MODULE_IMPL(decoder, decoder_impl);

/// Both networks, for saving and loading as one archive, with the layout
/// they were written in (the buffer `layout`).
struct tiny_t2v_impl : torch::nn::Module {
  tiny_t2v_impl();

  denoiser net{nullptr};
  decoder dec{nullptr};
};

TORCH_MODULE_IMPL(tiny_t2v_model, tiny_t2v_impl);

/// Fills every parameter from a private generator seeded with a fixed
/// seed (He-style scaling, zero biases), so the weights are the same in
/// every process and no other thread's use of torch's global generator can
/// change them.
void init_fixed_weights(tiny_t2v_model& model);

/// Loads weights written by save_tiny_t2v_weights into `model` (on the
/// CPU). Throws std::runtime_error saying what is wrong when the file is
/// of another layout (an older tiny-t2v's), and c10::Error when it cannot
/// be read.
void load_weights(tiny_t2v_model& model, const std::string& path);

/// Writes weights in the layout of tiny-t2v before it recorded one (its
/// 3D-convolution denoiser), for tests of load_weights' refusal.
void save_weights_without_layout(const std::string& path);

/// Sinusoidal embedding of a timestep, [1, time_dim], on the CPU.
torch::Tensor time_embedding(int64_t t);

} // namespace tiny_t2v_detail
} // namespace vidnode::gpu
