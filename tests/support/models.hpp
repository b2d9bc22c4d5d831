#pragma once

/// @file
/// Models for tests of nodes that serve different models: a model that
/// behaves as the sim models do under a name of its own, and catalogs that
/// add it to the built-in models.

#include <memory>
#include <string>
#include <vector>

#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/sim_pipeline.hpp"

namespace vidnode::test {

/// The model `name`, with the sim models' options and simulated steps,
/// loads and memory (gpu::sim_model_factory), on every device kind.
class sim_alias_factory : public gpu::sim_model_factory {
public:
  explicit sim_alias_factory(std::string name) : served_{std::move(name)} {}

  const std::vector<std::string>& served() const override {
    return served_;
  }

private:
  std::vector<std::string> served_;
};

/// The built-in models plus `name` (a sim_alias_factory).
inline std::shared_ptr<const gpu::model_catalog>
catalog_with(const std::string& name) {
  auto catalog =
    std::make_shared<gpu::model_catalog>(*gpu::model_catalog::builtin());
  catalog->add(std::make_shared<sim_alias_factory>(name));
  return catalog;
}

} // namespace vidnode::test
