#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "vidnode/gpu/model_catalog.hpp"

namespace vidnode::gpu {

/// A fault the sim pipeline injects, parsed from the `fault` option:
/// `KIND@STEP` (first attempt only), `KIND@STEPxN` (first N attempts),
/// `KIND-always@STEP` (every attempt) or `KIND-on-DEVICE@STEP` (every
/// attempt that runs on the device named DEVICE, e.g. `crash-on-sim:1@2`:
/// a broken device), KIND one of oom, crash, hang, lost (the device itself
/// fails: gpu::device_failure). STEP counts from 1; 0
/// means while the job is prepared, before its first step.
struct sim_fault {
  enum class kind_type { oom, crash, hang, lost };
  kind_type kind = kind_type::oom;
  int32_t step = 0;
  /// Attempts it applies to (1 to this); 0 means every attempt.
  int32_t attempts = 1;
  /// The only device it fires on (runtime::device_info::name()); empty:
  /// any device.
  std::string device;

  /// True if the fault fires at `step` of attempt `attempt` on `on_device`.
  bool fires(int32_t at_step, int32_t attempt,
             const std::string& on_device) const noexcept {
    return at_step == step && (attempts == 0 || attempt <= attempts)
           && (device.empty() || device == on_device);
  }
};

/// Parses a `fault` option value; nothing (and `error` says why) if bad.
std::optional<sim_fault> parse_sim_fault(const std::string& text,
                                         std::string& error);

/// The settings of one sim job, read from its options.
struct sim_options {
  /// Device time per denoising step (option `step_ms`, default 50).
  double step_ms = 50;
  /// Device time to load the model (option `load_ms`, default 500).
  double load_ms = 500;
  /// Memory the job claims, in MiB (option `mem_mb`, default 1024).
  uint64_t mem_mb = 1024;
  /// The peak the job reports when it ends, in MiB (option `peak_mb`,
  /// default: mem_mb), to exercise learned estimates.
  std::optional<uint64_t> peak_mb;
  /// Injected fault (option `fault`), if any.
  std::optional<sim_fault> fault;
  /// The only rank of a gang the fault fires on (option `fault_rank`, 0 to
  /// ranks - 1); -1 (default): every rank.
  int32_t fault_rank = -1;
  /// Whether the job makes frames (option `video`: 1 or true; default 0):
  /// a moving gradient of the job's size that the device worker encodes
  /// and stores like a real model's video (at most 1 GiB of frames).
  /// Without it the output is a `sim://` location and no file.
  bool video = false;
};

/// Reads and checks a sim job's options; nothing (and `error` says why) on
/// an unknown option or a bad value.
std::optional<sim_options> parse_sim_options(const runtime::job_spec& spec,
                                             std::string& error);

/// The factory of the simulated models: `sim` and any `sim-NAME` (separate
/// names share the behaviour, so placement by loaded model can be tested).
/// Sim jobs do no work: their steps, loads and memory are simulated from
/// their options. They run on every device kind, and as gangs of any
/// number of ranks (pipeline::begin_rank), each rank stepping like a job of
/// one device.
class sim_model_factory : public model_factory {
public:
  /// `sim` and `sim-*`.
  const std::vector<std::string>& served() const override;
  bool runs_on(runtime::device_kind kind) const override;
  std::optional<std::string>
  validate(const runtime::job_spec& spec) const override;
  uint64_t estimate_peak_bytes(const runtime::job_spec& spec) const override;
  std::unique_ptr<pipeline>
  make(const std::string& model,
       const runtime::device_info& device) const override;
};

} // namespace vidnode::gpu
