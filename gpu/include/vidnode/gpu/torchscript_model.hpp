#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vidnode/gpu/model_catalog.hpp"

namespace vidnode::gpu {

/// A user's model in a TorchScript file (torch.jit.save), served under a
/// name. The file must define these methods (the contract):
///
///   encode_prompt(self, prompt: str) -> Tensor
///       the conditioning for a prompt (any shape; passed back to denoise)
///   latent_shape(self, frames: int, height: int, width: int) -> List[int]
///       the shape of the initial latent; vidnode fills it with normal
///       noise drawn from the job's seed
///   denoise(self, latent: Tensor, step: int, steps: int, cond: Tensor)
///       -> Tensor
///       one denoising step (step counts from 0 to steps - 1)
///   decode(self, latent: Tensor) -> Tensor
///       the frames: [frames, height, width, 3], uint8 (or float in [0, 1])
///
/// and may define
///
///   estimate_bytes(self, frames: int, height: int, width: int) -> int
///       the job's peak device memory (else 1 GiB is assumed until a
///       measured peak is learned).
///
/// Jobs take no options. Every method runs on the device's worker thread,
/// except estimate_bytes, which runs on a CPU copy held by the factory.
class torchscript_factory : public model_factory {
public:
  /// Loads `path` on the CPU and checks the contract. Nothing, and `error`
  /// says which method is missing or malformed, if the file breaks it.
  static std::shared_ptr<torchscript_factory>
  open(const std::string& name, const std::string& path, std::string& error);

  ~torchscript_factory() override;

  /// The model's name only.
  const std::vector<std::string>& served() const override;
  bool runs_on(runtime::device_kind kind) const override;
  std::optional<std::string>
  validate(const runtime::job_spec& spec) const override;
  uint64_t estimate_peak_bytes(const runtime::job_spec& spec) const override;
  std::unique_ptr<pipeline>
  make(const std::string& model,
       const runtime::device_info& device) const override;

  /// The file this model comes from.
  const std::string& path() const noexcept {
    return path_;
  }

  /// Implementation detail, public for the implementation file only.
  struct cpu_copy;

  torchscript_factory(std::string name, std::string path,
                      std::unique_ptr<cpu_copy> estimator);

private:
  std::string name_;
  /// {name_}.
  std::vector<std::string> served_;
  std::string path_;
  std::unique_ptr<cpu_copy> estimator_;
};

} // namespace vidnode::gpu
