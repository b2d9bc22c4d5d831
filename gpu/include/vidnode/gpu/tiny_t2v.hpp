#pragma once

#include <string>

#include "vidnode/gpu/model_catalog.hpp"

namespace vidnode::gpu {

/// Whether this build has libtorch (the `tiny-t2v` model and cpu/cuda
/// compute).
bool torch_available() noexcept;

/// The built-in `tiny-t2v` model: a small latent video diffusion model in
/// libtorch. A prompt is hashed into tokens and embedded; a denoiser,
/// conditioned on the prompt and the timestep, runs `steps` DDIM steps over
/// a latent video (4 channels, frames x height/8 x width/8) whose initial
/// noise comes from the job's seed; a decoder upsamples each latent frame to
/// RGB. The denoiser has the shape of a video DiT: per-frame convolutions,
/// and one multi-head (4 heads) temporal self-attention, the only place
/// where frames meet. The compute is real and deterministic for a seed on a
/// given device, and its time and memory grow with width, height, frames and
/// steps. The pictures are not meant to be beautiful.
///
/// A job runs on one device or as a gang of 2 or 4 ranks (job_spec::ranks,
/// pipeline::begin_rank) with Ulysses sequence parallelism: each rank holds
/// frames / ranks of the latent, the attention exchanges q, k, v and its
/// output with two all-to-alls so that each rank attends over every frame
/// for its share of the heads, each rank decodes its frames and rank 0
/// gathers them. A gang makes the video one rank makes (the latents agree
/// within about 1e-4, the frames within one level of 255). Ranks must
/// divide 4 and the frames (validate refuses others).
///
/// Weights come from a fixed seed, or from a file written by
/// `save_tiny_t2v_weights` (`weights_path`); a file written by a tiny-t2v
/// before the temporal attention is refused when the model loads, with the
/// reason. Runs on cpu and cuda devices; takes no options.
class tiny_t2v_factory : public model_factory {
public:
  /// The model's name.
  static constexpr const char* model_name = "tiny-t2v";

  /// `weights_path` empty: weights from the fixed seed.
  explicit tiny_t2v_factory(std::string weights_path = {});

  /// `tiny-t2v`.
  const std::vector<std::string>& served() const override;
  bool runs_on(runtime::device_kind kind) const override;
  std::optional<std::string>
  validate(const runtime::job_spec& spec) const override;
  /// Per device: a gang's ranks each estimate the same (rank 0's share,
  /// which also holds every decoded frame).
  uint64_t estimate_peak_bytes(const runtime::job_spec& spec) const override;
  std::unique_ptr<pipeline>
  make(const std::string& model,
       const runtime::device_info& device) const override;

private:
  std::string weights_path_;
};

/// Writes the fixed-seed weights of tiny-t2v to `path` (a file
/// tiny_t2v_factory can load). Returns what went wrong, if anything.
std::optional<std::string> save_tiny_t2v_weights(const std::string& path);

} // namespace vidnode::gpu
