#pragma once

/// @file
/// bench_tiny_t2v's sections on one device (tiny_t2v_phases.cpp): vidnode
/// against the plain loop with the phase breakdown, and lanes.

#include <cstddef>
#include <string>

#include "vidnode/runtime/device.hpp"
#include "vidnode/runtime/job.hpp"

namespace vidnode::bench {

/// The same jobs (`base` with seeds of their own) through a node with one
/// device of `kind` and through the plain loop (bench/phases.hpp) in the
/// same process, `jobs` jobs per run, `rounds` rounds alternating which
/// goes first (the model loaded in both beforehand); prints each round's
/// makespans, their ratio (target: at most 1.02x), the node's idle gaps and
/// the phase breakdown. `shape` describes `base` in the captions.
void vidnode_against_plain_loop(const runtime::job_spec& base,
                                runtime::device_kind kind,
                                const std::string& shape, size_t jobs,
                                size_t rounds);

/// Lanes on one cpu device: small jobs (64x64, 8 frames, 4 steps) through
/// a node with max-concurrency 2 and 2 intra-op threads in the process
/// (one per lane) against max-concurrency 1 with 1 intra-op thread, `jobs`
/// jobs per run, `rounds` rounds alternating which goes first; prints
/// jobs/s and the ratio (target: at least 1.7x). Leaves the process's
/// intra-op threads at 1.
void lanes_on_cpu(size_t jobs, size_t rounds);

} // namespace vidnode::bench
