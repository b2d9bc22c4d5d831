#pragma once

#include <catch2/catch.hpp>

#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/pipeline.hpp"

namespace vidnode::test {

/// Runs `spec` to the end on a freshly loaded pipeline of `factory` on a
/// cpu device, and returns the frames it made.
inline gpu::video_frames generate_on_cpu(const gpu::model_factory& factory,
                                         const runtime::job_spec& spec) {
  runtime::device_info cpu;
  cpu.kind = runtime::device_kind::cpu;
  cpu.memory_bytes = 8ull << 30;
  auto pipeline = factory.make(spec.model, cpu);
  pipeline->load(spec);
  gpu::device_time busy{0};
  auto run = pipeline->begin(spec, 1, busy);
  for (int32_t i = 0; i < run->steps(); ++i)
    run->step(i);
  auto out = run->finish(busy);
  REQUIRE(out.video);
  return *out.video;
}

} // namespace vidnode::test
