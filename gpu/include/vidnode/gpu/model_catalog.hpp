#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vidnode/gpu/pipeline.hpp"

namespace vidnode::gpu {

/// Everything a node needs to know about one model before it runs a job:
/// whether a request is valid for it, how much memory a job needs, and how
/// to create the pipeline on a device. Implementations are immutable and
/// safe to call from any thread.
class model_factory {
public:
  virtual ~model_factory() = default;

  /// The models this factory serves, as model patterns
  /// (runtime/model_pattern.hpp): what a node registers with the head, and
  /// what serves() answers from.
  virtual const std::vector<std::string>& served() const = 0;

  /// True if this factory serves the model named `model`: if one of
  /// served() matches it.
  bool serves(const std::string& model) const;

  /// Whether this factory can run on devices of `kind`.
  virtual bool runs_on(runtime::device_kind kind) const = 0;

  /// Checks the model-specific parts of `spec` (its options); returns the
  /// reason ("options: step_ms must be...") or nothing.
  virtual std::optional<std::string>
  validate(const runtime::job_spec& spec) const = 0;

  /// Estimated peak memory of `spec` on a device, in bytes.
  virtual uint64_t estimate_peak_bytes(const runtime::job_spec& spec) const = 0;

  /// Creates (does not load) the pipeline for `model` on `device`.
  virtual std::unique_ptr<pipeline>
  make(const std::string& model, const runtime::device_info& device) const = 0;
};

/// Which models a node serves, and how they are set up.
struct catalog_options {
  /// Weights file of tiny-t2v; empty: its fixed-seed weights.
  std::string tiny_t2v_weights;
  /// Users' TorchScript models: (name, path) (see torchscript_model.hpp).
  std::vector<std::pair<std::string, std::string>> torchscript_models;
};

/// The models a node serves. Immutable once built; shared by the admission
/// actor (validation, estimates) and the device workers (pipelines).
class model_catalog {
public:
  /// A catalog of the built-in models: `sim` and `sim-*` always, and
  /// `tiny-t2v` when this build has libtorch.
  static std::shared_ptr<const model_catalog>
  builtin(const catalog_options& options = {});

  /// The built-in models plus `options.torchscript_models`, each loaded and
  /// checked against the TorchScript contract. Null, and `error` says why,
  /// if a file breaks the contract, a name is taken, or this build has no
  /// libtorch.
  static std::shared_ptr<const model_catalog>
  make(const catalog_options& options, std::string& error);

  /// Adds a factory; earlier factories win when several serve a name.
  void add(std::shared_ptr<const model_factory> factory);

  /// The factory serving `model`, or null.
  const model_factory* find(const std::string& model) const;

  /// The model patterns of every factory, in catalog order, each once: the
  /// models this catalog serves, as a node registers them with the head.
  std::vector<std::string> served() const;

private:
  std::vector<std::shared_ptr<const model_factory>> factories_;
};

} // namespace vidnode::gpu
