#include "vidnode/actors/preload.hpp"

#include <algorithm>

#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/validation.hpp"

namespace vidnode::actors {

namespace {

using runtime::errc;

/// The kinds of device a value may name, in `--devices` spelling.
bool parse_kind(const std::string& text, runtime::device_kind& kind) {
  for (auto k : {runtime::device_kind::sim, runtime::device_kind::cpu,
                 runtime::device_kind::cuda})
    if (text == runtime::to_string(k)) {
      kind = k;
      return true;
    }
  return false;
}

/// ORDINALS of `KIND:ORDINALS`: `all` (empty result) or `0,1,...`; false
/// if malformed.
bool parse_ordinals(const std::string& text, std::vector<int32_t>& out) {
  if (text == "all")
    return true;
  size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    auto item = text.substr(start, end == std::string::npos ? std::string::npos
                                                            : end - start);
    if (item.empty() || item.size() > 4
        || !std::all_of(item.begin(), item.end(),
                        [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    out.push_back(std::stoi(item));
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return true;
}

std::string device_names(const std::vector<runtime::device_info>& devices) {
  std::string names;
  for (const auto& device : devices)
    names += (names.empty() ? "" : ", ") + device.name();
  return names.empty() ? "none" : names;
}

} // namespace

size_t preload_plan::size() const noexcept {
  size_t n = 0;
  for (const auto& device : models)
    n += device.size();
  return n;
}

caf::expected<preload_plan>
plan_preloads(const std::vector<std::string>& values,
              const std::vector<runtime::device_info>& devices,
              const gpu::model_catalog& catalog) {
  preload_plan plan;
  plan.models.resize(devices.size());
  for (const auto& value : values) {
    auto refuse = [&](errc code, const std::string& why) {
      return runtime::make_error(code, "preload: '" + value + "': " + why);
    };
    auto at = value.find('@');
    auto model = value.substr(0, at);
    if (model.empty() || (at != std::string::npos && at + 1 == value.size()))
      return refuse(errc::invalid_request,
                    "is not MODEL[@DEVICES] (e.g. tiny-t2v, tiny-t2v@cpu or "
                    "tiny-t2v@cuda:0,1)");
    if (auto why = runtime::invalid_model_name(model))
      return refuse(errc::invalid_request, *why);
    auto factory = catalog.find(model);
    if (factory == nullptr) {
      std::string served;
      for (const auto& pattern : catalog.served())
        served += (served.empty() ? "" : ", ") + pattern;
      return refuse(errc::unknown_model, "this node serves no model '" + model
                                           + "' (it serves: " + served + ")");
    }
    std::vector<size_t> selected;
    if (at == std::string::npos) {
      for (size_t i = 0; i < devices.size(); ++i)
        selected.push_back(i);
    } else {
      auto spec = value.substr(at + 1);
      auto colon = spec.find(':');
      runtime::device_kind kind = runtime::device_kind::sim;
      std::vector<int32_t> ordinals;
      if (!parse_kind(spec.substr(0, colon), kind)
          || (colon != std::string::npos
              && !parse_ordinals(spec.substr(colon + 1), ordinals)))
        return refuse(errc::invalid_request,
                      "'" + spec
                        + "' is not KIND or KIND:ORDINALS (KIND: cuda, cpu or "
                          "sim; ORDINALS: all or a list such as 0,1)");
      for (size_t i = 0; i < devices.size(); ++i)
        if (devices[i].kind == kind
            && (ordinals.empty()
                || std::find(ordinals.begin(), ordinals.end(),
                             devices[i].ordinal)
                     != ordinals.end()))
          selected.push_back(i);
      for (auto ordinal : ordinals) {
        auto has = std::any_of(selected.begin(), selected.end(), [&](size_t i) {
          return devices[i].ordinal == ordinal;
        });
        if (!has)
          return refuse(errc::invalid_request,
                        "this node has no device "
                          + std::string{runtime::to_string(kind)} + ":"
                          + std::to_string(ordinal)
                          + " (its devices: " + device_names(devices) + ")");
      }
      if (selected.empty())
        return refuse(
          errc::invalid_request,
          "this node has no " + std::string{runtime::to_string(kind)}
            + " device (its devices: " + device_names(devices) + ")");
    }
    auto runnable = 0;
    for (auto i : selected) {
      if (!factory->runs_on(devices[i].kind))
        continue;
      ++runnable;
      auto& models = plan.models[i];
      if (std::find(models.begin(), models.end(), model) == models.end())
        models.push_back(model);
    }
    if (runnable == 0)
      return refuse(errc::invalid_request,
                    "no "
                      + std::string{at == std::string::npos ? "" : "selected "}
                      + "device of this node can run " + model
                      + " (its devices: " + device_names(devices) + ")");
  }
  return plan;
}

} // namespace vidnode::actors
