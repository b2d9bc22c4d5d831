#include "vidnode/gpu/torchscript_model.hpp"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include "step_timer.hpp"
#include "torch_load.hpp"

namespace vidnode::gpu {

namespace {

/// A method the contract names, and its number of arguments (with self).
struct contract_method {
  const char* name;
  size_t arguments;
  bool required;
};

constexpr contract_method contract[] = {
  {"encode_prompt", 2, true},   {"latent_shape", 4, true},
  {"denoise", 5, true},         {"decode", 2, true},
  {"estimate_bytes", 4, false},
};

constexpr uint64_t default_estimate = 1ull << 30;

/// Checks `module` against the contract; the first violation, or nothing.
std::optional<std::string> check_contract(torch::jit::Module& module) {
  for (const auto& m : contract) {
    auto method = module.find_method(m.name);
    if (!method) {
      if (m.required)
        return std::string{"lacks the method "} + m.name
               + " (see the TorchScript contract in the README)";
      continue;
    }
    auto count = method->function().getSchema().arguments().size();
    if (count != m.arguments)
      return std::string{"method "} + m.name + " takes "
             + std::to_string(count - 1) + " arguments, the contract says "
             + std::to_string(m.arguments - 1);
  }
  return std::nullopt;
}

/// One job of a TorchScript model. Several runs call the one module at
/// once from their lanes' threads: a torch::jit::Module's methods may be
/// run concurrently (each call has its own interpreter state; the graph
/// executor compiles and profiles under its own lock), and a run keeps its
/// tensors to itself.
///
/// Host synchronisations vidnode adds (on cuda; the stream is the lane's):
/// the initial noise's copy to the device when the job begins (the lane's
/// stream is idle then, so it waits for the copy alone), and the frames'
/// copy to the host in finish(), which the job cannot do without and after
/// which step_timer reads its events without waiting; none in step(). What
/// the model's own methods synchronise is the model's (the example
/// toy_torchscript's denoise copies its CPU conditioning to the device in
/// every step). Their costs on a GPU: scripts/gpu-check.sh ("[gpu] host
/// costs").
class torchscript_run : public job_run {
public:
  torchscript_run(torch::jit::Module& module, torch::Device device,
                  const runtime::job_spec& spec)
    : module_(module), device_(device), meter_(device), timer_(device),
      steps_(spec.steps), fps_(spec.fps), frames_(spec.frames),
      width_(spec.width), height_(spec.height) {}

  torchscript_run(const torchscript_run&) = delete;
  torchscript_run& operator=(const torchscript_run&) = delete;

  /// A run that did not finish frees its tensors as a memory window, so
  /// that a job measured on another lane meanwhile is not misattributed.
  ~torchscript_run() override {
    if (!cond_.defined() && !latent_.defined())
      return;
    try {
      meter_.unmeasured([&] { release(); });
    } catch (...) {
      // Freeing cannot fail; the registry's lock is all that could.
    }
  }

  /// Encodes the prompt and draws the initial latent.
  void prepare(const runtime::job_spec& spec) {
    meter_.measure([&] {
      with_torch(device_, [&] {
        torch::NoGradGuard no_grad;
        timer_.reserve(steps_);
        cond_ = module_.get_method("encode_prompt")({spec.prompt}).toTensor();
        auto shape =
          module_
            .get_method("latent_shape")(
              {int64_t{spec.frames}, int64_t{spec.height}, int64_t{spec.width}})
            .toIntVector();
        // The noise comes from the job's seed on the CPU: the same seed
        // starts from the same latent on every device.
        auto gen = at::detail::createCPUGenerator(spec.seed);
        latent_ = at::randn(shape, gen, torch::kFloat32).to(device_);
      });
    });
  }

  int32_t steps() const override {
    return steps_;
  }

  device_time step(int32_t index) override {
    meter_.measure([&] {
      with_torch(device_, [&] {
        timer_.time([&] {
          torch::NoGradGuard no_grad;
          latent_ = module_
                      .get_method("denoise")(
                        {latent_, int64_t{index}, int64_t{steps_}, cond_})
                      .toTensor();
        });
      });
    });
    return device_time{0};
  }

  job_output finish(device_time& busy) override {
    busy = device_time{0};
    job_output out;
    meter_.measure([&] {
      with_torch(device_, [&] {
        out.video = decode();
        kernel_ = timer_.total();
        release();
      });
    });
    out.peak_bytes = meter_.peak_bytes();
    return out;
  }

  run_profile profile() const override {
    return {kernel_, meter_.measurement_time()};
  }

private:
  /// Frees the job's tensors (within a measured call or unmeasured()).
  void release() {
    cond_.reset();
    latent_.reset();
  }

  video_frames decode() {
    video_frames video;
    {
      torch::NoGradGuard no_grad;
      auto frames = module_.get_method("decode")({latent_}).toTensor();
      if (frames.dim() != 4 || frames.size(0) != frames_
          || frames.size(1) != height_ || frames.size(2) != width_
          || frames.size(3) != 3) {
        std::string got = "[";
        for (int64_t i = 0; i < frames.dim(); ++i)
          got += (i > 0 ? ", " : "") + std::to_string(frames.size(i));
        throw job_error(runtime::errc::internal,
                        "decode returned a tensor of shape " + got
                          + "], the contract says [" + std::to_string(frames_)
                          + ", " + std::to_string(height_) + ", "
                          + std::to_string(width_) + ", 3]");
      }
      if (frames.scalar_type() != torch::kUInt8)
        frames = (frames.to(torch::kFloat32) * 255.0)
                   .clamp(0.0, 255.0)
                   .to(torch::kUInt8);
      // The one synchronisation vidnode adds after the job began: its
      // frames reach the host (see the class comment).
      frames = frames.contiguous().to(torch::kCPU);
      video.frames = frames_;
      video.height = height_;
      video.width = width_;
      video.fps = fps_;
      auto data = frames.data_ptr<uint8_t>();
      video.rgb.assign(data, data + frames.numel());
    }
    return video;
  }

  torch::jit::Module& module_;
  torch::Device device_;
  device_memory_meter meter_;
  step_timer timer_;
  device_time kernel_{0};
  int32_t steps_;
  int32_t fps_;
  int32_t frames_;
  int32_t width_;
  int32_t height_;
  torch::Tensor cond_;
  torch::Tensor latent_;
};

class torchscript_pipeline : public pipeline {
public:
  torchscript_pipeline(std::string name, std::string path, torch::Device device)
    : name_(std::move(name)), path_(std::move(path)), device_(device) {}

  device_time load(const runtime::job_spec&) override {
    resident_bytes_ = load_on_device(device_, [&] { load_module(); });
    with_torch(device_, [&] { wait_for_device(device_); });
    return device_time{0};
  }

  uint64_t resident_bytes() const override {
    return resident_bytes_;
  }

  std::unique_ptr<job_run> begin(const runtime::job_spec& spec, int32_t,
                                 device_time& busy) override {
    busy = device_time{0};
    auto run = std::make_unique<torchscript_run>(module_, device_, spec);
    run->prepare(spec);
    return run;
  }

private:
  void load_module() {
    try {
      module_ =
        torch::jit::load(std::make_shared<model_file_reader>(path_), device_);
    } catch (const c10::OutOfMemoryError&) {
      throw;
    } catch (const c10::Error& e) {
      throw job_error(runtime::errc::unknown_model,
                      "model " + name_ + ": cannot load " + path_ + ": "
                        + e.what_without_backtrace());
    } catch (const std::runtime_error& e) {
      throw job_error(runtime::errc::unknown_model, "model " + name_
                                                      + ": cannot load " + path_
                                                      + ": " + e.what());
    }
    if (auto broken = check_contract(module_))
      throw job_error(runtime::errc::unknown_model,
                      "model " + name_ + " (" + path_ + ") " + *broken);
    module_.eval();
  }

  std::string name_;
  std::string path_;
  torch::Device device_;
  torch::jit::Module module_;
  uint64_t resident_bytes_ = 0;
};

} // namespace

/// The CPU copy that answers estimate_bytes (calls are serialized: the
/// admission actor and tests may call from different threads).
struct torchscript_factory::cpu_copy {
  torch::jit::Module module;
  bool has_estimate = false;
  std::mutex mutex;
};

torchscript_factory::torchscript_factory(std::string name, std::string path,
                                         std::unique_ptr<cpu_copy> estimator)
  : name_(std::move(name)), served_{name_}, path_(std::move(path)),
    estimator_(std::move(estimator)) {}

torchscript_factory::~torchscript_factory() = default;

std::shared_ptr<torchscript_factory>
torchscript_factory::open(const std::string& name, const std::string& path,
                          std::string& error) {
  auto copy = std::make_unique<cpu_copy>();
  try {
    copy->module = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    error = "model " + name + ": cannot load " + path + ": "
            + e.what_without_backtrace();
    return nullptr;
  }
  if (auto broken = check_contract(copy->module)) {
    error = "model " + name + " (" + path + ") " + *broken;
    return nullptr;
  }
  copy->module.eval();
  copy->has_estimate = copy->module.find_method("estimate_bytes").has_value();
  return std::make_shared<torchscript_factory>(name, path, std::move(copy));
}

const std::vector<std::string>& torchscript_factory::served() const {
  return served_;
}

bool torchscript_factory::runs_on(runtime::device_kind kind) const {
  return kind == runtime::device_kind::cpu
         || kind == runtime::device_kind::cuda;
}

std::optional<std::string>
torchscript_factory::validate(const runtime::job_spec& spec) const {
  if (!spec.options.empty())
    return "options: model " + name_ + " takes no options, got '"
           + spec.options.begin()->first + "'";
  if (spec.ranks != 1)
    return "ranks: TorchScript model " + name_
           + " runs on one device (its forward takes the whole latent), got "
             "ranks "
           + std::to_string(spec.ranks);
  return std::nullopt;
}

uint64_t
torchscript_factory::estimate_peak_bytes(const runtime::job_spec& spec) const {
  if (!estimator_->has_estimate)
    return default_estimate;
  std::lock_guard<std::mutex> guard{estimator_->mutex};
  try {
    auto bytes =
      estimator_->module
        .get_method("estimate_bytes")(
          {int64_t{spec.frames}, int64_t{spec.height}, int64_t{spec.width}})
        .toInt();
    return bytes > 0 ? static_cast<uint64_t>(bytes) : default_estimate;
  } catch (const c10::Error&) {
    return default_estimate;
  }
}

std::unique_ptr<pipeline>
torchscript_factory::make(const std::string&,
                          const runtime::device_info& device) const {
  return std::make_unique<torchscript_pipeline>(name_, path_,
                                                torch_device(device));
}

} // namespace vidnode::gpu
