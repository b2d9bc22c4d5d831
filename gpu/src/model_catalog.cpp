#include "vidnode/gpu/model_catalog.hpp"

#include <algorithm>

#include "vidnode/runtime/model_pattern.hpp"

#include "vidnode/gpu/sim_pipeline.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/gpu/torchscript_model.hpp"

namespace vidnode::gpu {

bool model_factory::serves(const std::string& model) const {
  const auto& patterns = served();
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& pattern) {
                       return runtime::model_pattern_matches(pattern, model);
                     });
}

std::shared_ptr<const model_catalog>
model_catalog::builtin(const catalog_options& options) {
  auto catalog = std::make_shared<model_catalog>();
  catalog->add(std::make_shared<sim_model_factory>());
#ifdef VIDNODE_HAVE_TORCH
  catalog->add(std::make_shared<tiny_t2v_factory>(options.tiny_t2v_weights));
#else
  (void)options;
#endif
  return catalog;
}

std::shared_ptr<const model_catalog>
model_catalog::make(const catalog_options& options, std::string& error) {
  auto builtins = builtin(options);
  auto catalog = std::make_shared<model_catalog>(*builtins);
  for (const auto& [name, path] : options.torchscript_models) {
    if (catalog->find(name) != nullptr) {
      error = "torchscript: the model name '" + name + "' is already taken";
      return nullptr;
    }
#ifdef VIDNODE_HAVE_TORCH
    auto factory = torchscript_factory::open(name, path, error);
    if (!factory) {
      error = "torchscript: " + error;
      return nullptr;
    }
    catalog->add(std::move(factory));
#else
    (void)path;
    error = "torchscript: this vidnode was built without libtorch";
    return nullptr;
#endif
  }
  return catalog;
}

void model_catalog::add(std::shared_ptr<const model_factory> factory) {
  factories_.push_back(std::move(factory));
}

const model_factory* model_catalog::find(const std::string& model) const {
  for (const auto& factory : factories_)
    if (factory->serves(model))
      return factory.get();
  return nullptr;
}

std::vector<std::string> model_catalog::served() const {
  std::vector<std::string> result;
  for (const auto& factory : factories_)
    for (const auto& pattern : factory->served())
      if (std::find(result.begin(), result.end(), pattern) == result.end())
        result.push_back(pattern);
  return result;
}

} // namespace vidnode::gpu

namespace vidnode::gpu {

std::unique_ptr<job_run>
pipeline::begin_rank(const runtime::job_spec& spec, int32_t, int32_t, int32_t,
                     std::shared_ptr<communicator>, device_time&) {
  throw job_error(runtime::errc::invalid_request,
                  "ranks: model '" + spec.model
                    + "' runs on one device only, got ranks "
                    + std::to_string(spec.ranks));
}

} // namespace vidnode::gpu
