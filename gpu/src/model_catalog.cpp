#include "vidnode/gpu/model_catalog.hpp"

#include "vidnode/gpu/sim_pipeline.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"

namespace vidnode::gpu {

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

void model_catalog::add(std::shared_ptr<const model_factory> factory) {
  factories_.push_back(std::move(factory));
}

const model_factory* model_catalog::find(const std::string& model) const {
  for (const auto& factory : factories_)
    if (factory->serves(model))
      return factory.get();
  return nullptr;
}

} // namespace vidnode::gpu
