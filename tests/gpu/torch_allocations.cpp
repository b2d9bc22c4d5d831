#include "torch_allocations.hpp"

#include <torch/script.h>
#include <torch/torch.h>

namespace vidnode::test {

void allocate_cpu_tensor(int64_t bytes) {
  at::empty({bytes}, at::kByte);
}

void write_greedy_model(const std::string& path, int64_t bytes) {
  // Float32 elements (a dtype cannot be named in defined code); the step
  // uses what it allocated, so that no graph pass drops it.
  std::string denoise = R"JIT(
def denoise(self, latent, step: int, steps: int, cond):
    hoard = torch.empty([ELEMENTS])
    return latent * 0.8 + float(hoard.numel() % 2)
)JIT";
  denoise.replace(denoise.find("ELEMENTS"), 8, std::to_string(bytes / 4));
  torch::jit::Module module{"greedy"};
  module.define(R"JIT(
def encode_prompt(self, prompt: str):
    return torch.ones([4])

def latent_shape(self, frames: int, height: int, width: int):
    return [1, 4, frames, height // 8, width // 8]

def decode(self, latent):
    x = latent[0].permute(1, 2, 3, 0)[:, :, :, 0:3]
    x = x.repeat_interleave(8, 1).repeat_interleave(8, 2)
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).byte()
)JIT");
  module.define(denoise);
  module.save(path);
}

} // namespace vidnode::test
