#include "vidnode/gpu/sim_pipeline.hpp"

#include <cmath>

namespace vidnode::gpu {

namespace {

constexpr double max_simulated_ms = 600000; // ten minutes
constexpr uint64_t max_mem_mb = 1ull << 24; // 16 TiB
/// Most bytes of frames a sim job with `video` may make (1 GiB).
constexpr uint64_t max_video_bytes = 1ull << 30;

/// The frames of a sim video: a gradient that moves with the frame number
/// and the seed (cheap to make, and to encode).
video_frames sim_frames(const runtime::job_spec& spec) {
  video_frames video;
  video.frames = spec.frames;
  video.width = spec.width;
  video.height = spec.height;
  video.fps = spec.fps;
  video.rgb.resize(static_cast<size_t>(spec.frames) * spec.height * spec.width
                   * 3);
  auto out = video.rgb.data();
  auto shift = static_cast<int>(spec.seed % 256);
  for (int32_t f = 0; f < spec.frames; ++f)
    for (int32_t y = 0; y < spec.height; ++y)
      for (int32_t x = 0; x < spec.width; ++x) {
        *out++ = static_cast<uint8_t>(x + 4 * f + shift);
        *out++ = static_cast<uint8_t>(y + 2 * f);
        *out++ = static_cast<uint8_t>((x + y) / 2 + shift);
      }
  return video;
}

bool parse_number(const std::string& text, double& out) {
  if (text.empty())
    return false;
  try {
    size_t used = 0;
    out = std::stod(text, &used);
    return used == text.size() && std::isfinite(out);
  } catch (...) {
    return false;
  }
}

bool parse_count(const std::string& text, int32_t& out) {
  if (text.empty() || text.size() > 6)
    return false;
  for (char c : text)
    if (c < '0' || c > '9')
      return false;
  out = std::stoi(text);
  return true;
}

device_time from_ms(double ms) {
  return std::chrono::duration_cast<device_time>(
    std::chrono::duration<double, std::milli>{ms});
}

/// A sim job: no work, only simulated device time and injected faults.
class sim_job_run : public job_run {
public:
  sim_job_run(const runtime::job_spec& spec, sim_options options,
              int32_t attempt, std::string device, int32_t rank = 0)
    : spec_(spec), model_(spec.model), seed_(spec.seed), width_(spec.width),
      height_(spec.height), frames_(spec.frames), steps_(spec.steps),
      options_(std::move(options)), attempt_(attempt),
      device_(std::move(device)), rank_(rank) {}

  int32_t steps() const override {
    return steps_;
  }

  /// Applies the injected fault at `at_step`, if it fires; true for a hang.
  bool inject(int32_t at_step) {
    if (!options_.fault || !options_.fault->fires(at_step, attempt_, device_)
        || (options_.fault_rank >= 0 && options_.fault_rank != rank_))
      return false;
    auto where = at_step == 0 ? std::string{"while preparing the job"}
                              : "at step " + std::to_string(at_step);
    switch (options_.fault->kind) {
      case sim_fault::kind_type::oom:
        throw out_of_memory("simulated out of memory " + where,
                            options_.mem_mb << 20);
      case sim_fault::kind_type::crash:
        throw std::logic_error("simulated crash " + where);
      case sim_fault::kind_type::hang:
        return true;
      case sim_fault::kind_type::lost:
        throw device_failure("simulated device failure " + where);
    }
    return false;
  }

  device_time step(int32_t index) override {
    if (inject(index + 1))
      return never_completes;
    return from_ms(options_.step_ms);
  }

  job_output finish(device_time& busy) override {
    busy = device_time{0};
    job_output out;
    out.location = "sim://" + model_ + "/" + std::to_string(seed_) + "-"
                   + std::to_string(width_) + "x" + std::to_string(height_)
                   + "x" + std::to_string(frames_);
    out.peak_bytes = options_.peak_mb.value_or(options_.mem_mb) << 20;
    if (rank_ > 0) {
      out.location.clear();
      return out;
    }
    if (options_.video) {
      out.location.clear();
      out.video = sim_frames(spec_);
    }
    return out;
  }

private:
  runtime::job_spec spec_;
  std::string model_;
  uint64_t seed_;
  int32_t width_;
  int32_t height_;
  int32_t frames_;
  int32_t steps_;
  sim_options options_;
  int32_t attempt_;
  std::string device_;
  int32_t rank_;
};

class sim_pipeline : public pipeline {
public:
  explicit sim_pipeline(std::string device) : device_(std::move(device)) {}

  device_time load(const runtime::job_spec& first_job) override {
    std::string error;
    auto options = parse_sim_options(first_job, error);
    return from_ms(options ? options->load_ms : sim_options{}.load_ms);
  }

  std::unique_ptr<job_run> begin(const runtime::job_spec& spec, int32_t attempt,
                                 device_time& busy) override {
    std::string error;
    auto options = parse_sim_options(spec, error);
    if (!options)
      throw job_error(runtime::errc::invalid_request, error);
    auto run = std::make_unique<sim_job_run>(spec, std::move(*options), attempt,
                                             device_);
    busy = run->inject(0) ? never_completes : device_time{0};
    return run;
  }

  /// Sim ranks exchange nothing (a sim gang on cpu devices still meets
  /// through its collectives, which the device worker sets up); each steps
  /// like a sim job of one device, and `fault_rank` picks the rank a fault
  /// fires on.
  std::unique_ptr<job_run> begin_rank(const runtime::job_spec& spec,
                                      int32_t attempt, int32_t rank, int32_t,
                                      std::shared_ptr<communicator>,
                                      device_time& busy) override {
    std::string error;
    auto options = parse_sim_options(spec, error);
    if (!options)
      throw job_error(runtime::errc::invalid_request, error);
    auto run = std::make_unique<sim_job_run>(spec, std::move(*options), attempt,
                                             device_, rank);
    busy = run->inject(0) ? never_completes : device_time{0};
    return run;
  }

private:
  std::string device_;
};

} // namespace

std::optional<sim_fault> parse_sim_fault(const std::string& text,
                                         std::string& error) {
  auto usage = "fault: '" + text
               + "' is not KIND@STEP, KIND@STEPxN, KIND-always@STEP or "
                 "KIND-on-DEVICE@STEP (KIND: oom, crash, hang, lost)";
  auto at = text.find('@');
  if (at == std::string::npos) {
    error = usage;
    return std::nullopt;
  }
  auto kind = text.substr(0, at);
  auto rest = text.substr(at + 1);
  sim_fault fault;
  const std::string always = "-always";
  if (auto on = kind.find("-on-"); on != std::string::npos) {
    fault.device = kind.substr(on + 4);
    fault.attempts = 0;
    kind.resize(on);
    if (fault.device.empty() || rest.find('x') != std::string::npos) {
      error = usage;
      return std::nullopt;
    }
  } else if (kind.size() > always.size()
             && kind.compare(kind.size() - always.size(), always.size(), always)
                  == 0) {
    fault.attempts = 0;
    kind.resize(kind.size() - always.size());
  }
  if (kind == "oom")
    fault.kind = sim_fault::kind_type::oom;
  else if (kind == "crash")
    fault.kind = sim_fault::kind_type::crash;
  else if (kind == "hang")
    fault.kind = sim_fault::kind_type::hang;
  else if (kind == "lost")
    fault.kind = sim_fault::kind_type::lost;
  else {
    error = usage;
    return std::nullopt;
  }
  auto x = rest.find('x');
  if (x != std::string::npos) {
    if (fault.attempts == 0 || !parse_count(rest.substr(x + 1), fault.attempts)
        || fault.attempts < 1) {
      error = usage;
      return std::nullopt;
    }
    rest.resize(x);
  }
  if (!parse_count(rest, fault.step)) {
    error = usage;
    return std::nullopt;
  }
  return fault;
}

std::optional<sim_options> parse_sim_options(const runtime::job_spec& spec,
                                             std::string& error) {
  sim_options result;
  for (const auto& [key, value] : spec.options) {
    if (key == "step_ms" || key == "load_ms") {
      double ms = 0;
      if (!parse_number(value, ms) || ms < 0 || ms > max_simulated_ms) {
        error = "options: " + key
                + " must be a number of milliseconds from 0 "
                  "to 600000, got '"
                + value + "'";
        return std::nullopt;
      }
      (key == "step_ms" ? result.step_ms : result.load_ms) = ms;
    } else if (key == "mem_mb" || key == "peak_mb") {
      double mb = 0;
      if (!parse_number(value, mb) || mb < 0 || mb > max_mem_mb
          || mb != std::floor(mb)) {
        error = "options: " + key + " must be a whole number of MiB from 0 to "
                + std::to_string(max_mem_mb) + ", got '" + value + "'";
        return std::nullopt;
      }
      if (key == "mem_mb")
        result.mem_mb = static_cast<uint64_t>(mb);
      else
        result.peak_mb = static_cast<uint64_t>(mb);
    } else if (key == "video") {
      if (value != "0" && value != "1" && value != "true" && value != "false") {
        error =
          "options: video must be 0, 1, true or false, got '" + value + "'";
        return std::nullopt;
      }
      result.video = value == "1" || value == "true";
      auto bytes = uint64_t(spec.width) * uint64_t(spec.height)
                   * uint64_t(spec.frames) * 3;
      if (result.video && bytes > max_video_bytes) {
        error = "options: video: the frames would take "
                + std::to_string(bytes >> 20)
                + " MiB, more than the sim model's 1024 MiB";
        return std::nullopt;
      }
    } else if (key == "fault_rank") {
      double rank = 0;
      if (!parse_number(value, rank) || rank < 0 || rank >= spec.ranks
          || rank != std::floor(rank)) {
        error = "options: fault_rank must be a rank of the job, from 0 to "
                + std::to_string(spec.ranks - 1) + ", got '" + value + "'";
        return std::nullopt;
      }
      result.fault_rank = static_cast<int32_t>(rank);
    } else if (key == "fault") {
      result.fault = parse_sim_fault(value, error);
      if (!result.fault)
        return std::nullopt;
      if (result.fault->step > spec.steps) {
        error = "fault: step " + std::to_string(result.fault->step)
                + " is beyond the job's " + std::to_string(spec.steps)
                + " steps";
        return std::nullopt;
      }
    } else {
      error =
        "options: '" + key + "' is not an option of model " + spec.model
        + " (known: step_ms, load_ms, mem_mb, peak_mb, fault, fault_rank, "
          "video)";
      return std::nullopt;
    }
  }
  if (result.fault_rank >= 0 && !result.fault) {
    error = "options: fault_rank names the rank a fault fires on, but no "
            "fault is given";
    return std::nullopt;
  }
  return result;
}

const std::vector<std::string>& sim_model_factory::served() const {
  static const std::vector<std::string> patterns{"sim", "sim-*"};
  return patterns;
}

bool sim_model_factory::runs_on(runtime::device_kind) const {
  return true;
}

std::optional<std::string>
sim_model_factory::validate(const runtime::job_spec& spec) const {
  std::string error;
  if (!parse_sim_options(spec, error))
    return error;
  return std::nullopt;
}

uint64_t
sim_model_factory::estimate_peak_bytes(const runtime::job_spec& spec) const {
  // Only mem_mb matters: no need to parse (again) every option.
  auto i = spec.options.find("mem_mb");
  double mb = 0;
  if (i == spec.options.end() || !parse_number(i->second, mb) || mb < 0
      || mb > max_mem_mb)
    return sim_options{}.mem_mb << 20;
  return static_cast<uint64_t>(mb) << 20;
}

std::unique_ptr<pipeline>
sim_model_factory::make(const std::string&,
                        const runtime::device_info& device) const {
  return std::make_unique<sim_pipeline>(device.name());
}

} // namespace vidnode::gpu
