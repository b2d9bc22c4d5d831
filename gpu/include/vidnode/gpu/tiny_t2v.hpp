#pragma once

#include <string>

#include "vidnode/gpu/model_catalog.hpp"

namespace vidnode::gpu {

/// Whether this build has libtorch (the `tiny-t2v` model and cpu/cuda
/// compute).
bool torch_available() noexcept;

/// The built-in `tiny-t2v` model: a small latent video diffusion model in
/// libtorch. A prompt is hashed into tokens and embedded; a 3D convolutional
/// denoiser, conditioned on the prompt and the timestep, runs `steps` DDIM
/// steps over a latent video (4 channels, frames x height/8 x width/8) whose
/// initial noise comes from the job's seed; a decoder upsamples each latent
/// frame to RGB. The compute is real and deterministic for a seed on a given
/// device, and its time and memory grow with width, height, frames and
/// steps. The pictures are not meant to be beautiful.
///
/// Weights come from a fixed seed, or from a file written by
/// `save_tiny_t2v_weights` (`weights_path`). Runs on cpu and cuda devices;
/// takes no options.
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
