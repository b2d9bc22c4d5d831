#pragma once

/// @file
/// The records of the journal's `jobs` table: one cereal binary archive of
/// a journaled_job each (cereal is private to these files). Versions are
/// cereal class versions; a record of a version newer than this build
/// knows is refused as corrupt.

#include <cstddef>
#include <string>

#include "vidnode/actors/journal_store.hpp"

namespace vidnode::actors {

/// Writes the record of `job` into `out` (replacing what it held; reuse
/// `out` to keep its capacity).
void encode_record(const journaled_job& job, std::string& out);

/// Decodes the record of `size` bytes at `data`; throws std::exception
/// (cereal::Exception) when it does not decode, is of a newer version or
/// has bytes left over. Sizes inside are checked against the bytes left
/// before anything is allocated.
journaled_job decode_record(const void* data, size_t size);

} // namespace vidnode::actors
