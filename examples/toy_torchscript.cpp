/// Writes a TorchScript model that follows vidnode's contract (README,
/// "TorchScript models"), to show what one looks like and to test with:
///
///   toy_torchscript OUT.pt            a model vidnode serves
///   toy_torchscript OUT.pt --broken   one that lacks `decode` (refused)
///
/// Options that shape its memory and work, for GPU tests and benchmarks:
///
///   --working-set GIB     the first step grows each job's latent to about
///                         GIB GiB, kept until the job ends (a job's
///                         activations)
///   --declare GIB         estimate_bytes declares GIB GiB per job, however
///                         much the job really uses (0.0 = no estimate)
///   --weights GIB         the model holds GIB GiB of bf16 weights
///   --matmuls-per-step N  each step multiplies an 8192x4096 slice of the
///                         weights by a 4096x4096 one N times (needs
///                         --weights 0.0625 or more)
///
/// Serve it with `vidnode --torchscript toy=OUT.pt`, then
/// `vidctl submit --model toy --wait`.

#include <cstdlib>
#include <iostream>
#include <string>

#include <torch/script.h>
#include <torch/torch.h>

namespace {

constexpr const char* toy_encode = R"JIT(
def encode_prompt(self, prompt: str):
    return torch.ones([4]) * float(len(prompt) % 7)

def latent_shape(self, frames: int, height: int, width: int):
    return [1, 4, frames, height // 8, width // 8]
)JIT";

constexpr const char* toy_denoise = R"JIT(
def denoise(self, latent, step: int, steps: int, cond):
    return latent * 0.8 + cond.view([1, 4, 1, 1, 1]).to(latent.device) * 0.01
)JIT";

/// The denoiser with a working set (WORKING_SET is replaced before it is
/// defined), and optionally matrix work (heavy_matmuls) before its return.
constexpr const char* heavy_denoise = R"JIT(
def denoise(self, latent, step: int, steps: int, cond):
    if step == 0:
        copies = max(1, WORKING_SET // (latent.numel() * 4))
        latent = latent.repeat([copies, 1, 1, 1, 1])
    latent[0].mul_(0.8)
)JIT";

/// MATMULS is replaced before it is defined.
constexpr const char* heavy_matmuls = R"JIT(
    a = self.weights.narrow(0, 0, 8192)
    b = self.weights.narrow(0, 0, 4096).t()
    for i in range(MATMULS):
        a = torch.tanh(a @ b)
    latent[0].add_(a.float().mean() * 0.0)
)JIT";

constexpr const char* heavy_return = "    return latent\n";

constexpr const char* toy_estimate = R"JIT(
def estimate_bytes(self, frames: int, height: int, width: int):
    return frames * height * width * 64 + 64 * 1024 * 1024
)JIT";

constexpr const char* declared_estimate = R"JIT(
def estimate_bytes(self, frames: int, height: int, width: int):
    return DECLARED
)JIT";

constexpr const char* toy_decode = R"JIT(
def decode(self, latent):
    x = latent[0].permute(1, 2, 3, 0)[:, :, :, 0:3]
    x = x.repeat_interleave(8, 1).repeat_interleave(8, 2)
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).byte()
)JIT";

std::string replaced(std::string text, const std::string& name,
                     const std::string& value) {
  for (auto pos = text.find(name); pos != std::string::npos;
       pos = text.find(name, pos + value.size()))
    text.replace(pos, name.size(), value);
  return text;
}

int usage() {
  std::cerr << "usage: toy_torchscript OUT.pt [--broken] [--working-set GIB] "
               "[--declare GIB] [--weights GIB] [--matmuls-per-step N]\n";
  return 2;
}

bool parse_number(const char* text, double& out) {
  char* end = nullptr;
  out = std::strtod(text, &end);
  return end != text && *end == '\0' && out >= 0 && out <= 4096;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2)
    return usage();
  std::string out_path = argv[1];
  bool broken = false;
  double working_set_gib = 0;
  double declared_gib = -1;
  double weights_gib = 0;
  double matmuls = 0;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--broken") {
      broken = true;
      continue;
    }
    if (i + 1 >= argc)
      return usage();
    double* target = arg == "--working-set"        ? &working_set_gib
                     : arg == "--declare"          ? &declared_gib
                     : arg == "--weights"          ? &weights_gib
                     : arg == "--matmuls-per-step" ? &matmuls
                                                   : nullptr;
    if (target == nullptr || !parse_number(argv[++i], *target))
      return usage();
  }
  constexpr double gib = 1024.0 * 1024.0 * 1024.0;
  if (matmuls > 0 && weights_gib * gib < 8192.0 * 4096 * 2) {
    std::cerr << "toy_torchscript: --matmuls-per-step needs --weights 0.0625 "
                 "or more\n";
    return 2;
  }
  try {
    torch::jit::Module module{"toy"};
    if (weights_gib > 0) {
      auto rows = static_cast<int64_t>(weights_gib * gib / (4096 * 2));
      // A small random block repeated: as large as real weights, quick to
      // make.
      auto block = torch::randn({4096, 4096}).to(torch::kBFloat16);
      auto weights = block.repeat({(rows + 4095) / 4096, 1}).narrow(0, 0, rows);
      module.register_buffer("weights", weights.contiguous());
    }
    module.define(toy_encode);
    if (working_set_gib > 0 || matmuls > 0) {
      auto text =
        replaced(heavy_denoise, "WORKING_SET",
                 std::to_string(static_cast<int64_t>(working_set_gib * gib)));
      if (matmuls > 0)
        text += replaced(heavy_matmuls, "MATMULS",
                         std::to_string(static_cast<int64_t>(matmuls)));
      module.define(text + heavy_return);
    } else {
      module.define(toy_denoise);
    }
    if (declared_gib < 0)
      module.define(toy_estimate);
    else if (declared_gib > 0)
      module.define(
        replaced(declared_estimate, "DECLARED",
                 std::to_string(static_cast<int64_t>(declared_gib * gib))));
    if (!broken)
      module.define(toy_decode);
    module.save(out_path);
  } catch (const std::exception& e) {
    std::cerr << "toy_torchscript: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
