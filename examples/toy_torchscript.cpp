/// Writes a TorchScript model that follows vidnode's contract (README,
/// "TorchScript models"), to show what one looks like and to test with:
///
///   toy_torchscript OUT.pt            a model vidnode serves
///   toy_torchscript OUT.pt --broken   one that lacks `decode` (refused)
///
/// Serve it with `vidnode --torchscript toy=OUT.pt`, then
/// `vidctl submit --model toy --wait`.

#include <iostream>
#include <string>

#include <torch/script.h>

namespace {

/// The methods of the contract, in TorchScript. A real model would hold
/// weights (torch.jit.script of an nn.Module); this one shows the shapes.
constexpr const char* toy_methods = R"JIT(
def encode_prompt(self, prompt: str):
    return torch.ones([4]) * float(len(prompt) % 7)

def latent_shape(self, frames: int, height: int, width: int):
    return [1, 4, frames, height // 8, width // 8]

def denoise(self, latent, step: int, steps: int, cond):
    return latent * 0.8 + cond.view([1, 4, 1, 1, 1]) * 0.01

def estimate_bytes(self, frames: int, height: int, width: int):
    return frames * height * width * 64 + 64 * 1024 * 1024
)JIT";

constexpr const char* toy_decode = R"JIT(
def decode(self, latent):
    x = latent[0].permute(1, 2, 3, 0)[:, :, :, 0:3]
    x = x.repeat_interleave(8, 1).repeat_interleave(8, 2)
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).byte()
)JIT";

} // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3
      || (argc == 3 && std::string{argv[2]} != "--broken")) {
    std::cerr << "usage: toy_torchscript OUT.pt [--broken]\n";
    return 2;
  }
  try {
    torch::jit::Module module{"toy"};
    module.define(toy_methods);
    if (argc == 2)
      module.define(toy_decode);
    module.save(argv[1]);
  } catch (const std::exception& e) {
    std::cerr << "toy_torchscript: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
