/// @file
/// The journal's records: cereal archives of journaled_job, with class
/// versions (see journal_records.hpp).

#include "journal_records.hpp"

#include <cstring>
#include <ostream>
#include <streambuf>
#include <type_traits>

#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>

#include "vidnode/runtime/errc.hpp"

// -- records ---------------------------------------------------------------
//
// Each row of `jobs` is one cereal binary archive of a journaled_job. The
// save/load functions are non-intrusive and live here only: nothing outside
// this file sees cereal. A type's version is written once per record; a
// record of a version newer than this file knows is refused as corrupt.
// Times are int64 nanoseconds; an error is (category atom as uint64, code,
// detail string).

namespace vidnode::runtime {

namespace {

/// The version of every record type this file writes but job_spec's.
constexpr std::uint32_t record_version = 1;

/// job_spec's version: 2 added `ranks` (version 1 records are jobs of one
/// rank), 3 `endpoint` (empty in older records).
constexpr std::uint32_t job_spec_version = 3;

void check_version(const char* type, std::uint32_t version,
                   std::uint32_t newest = record_version) {
  if (version > newest)
    throw cereal::Exception(
      std::string{"a "} + type + " record of version " + std::to_string(version)
      + "; this vidnode reads up to version " + std::to_string(newest));
}

int64_t nanos(caf::timespan x) noexcept {
  return x.count();
}

int64_t nanos(caf::timestamp x) noexcept {
  return x.time_since_epoch().count();
}

/// The context of an error of another category than vidnode's, as text.
std::string context_text(const caf::message& context) {
  if (context.empty())
    return {};
  if (context.match_elements<std::string>())
    return context.get_as<std::string>(0);
  return caf::to_string(context);
}

template <class Archive>
void save_error(Archive& ar, const caf::error& err) {
  if (!err) {
    ar(uint64_t{0}, uint8_t{0}, std::string{});
    return;
  }
  auto category = err.category();
  auto detail =
    category == error_category() ? detail_of(err) : context_text(err.context());
  ar(static_cast<uint64_t>(category), err.code(), detail);
}

template <class Archive>
void load_error(Archive& ar, caf::error& err) {
  uint64_t category = 0;
  uint8_t code = 0;
  std::string detail;
  ar(category, code, detail);
  auto atom = static_cast<caf::atom_value>(category);
  if (code == 0)
    err = caf::error{};
  else if (atom == error_category())
    err = detail.empty()
            ? make_error(static_cast<errc>(code))
            : make_error(static_cast<errc>(code), std::move(detail));
  else if (detail.empty())
    err = caf::error{code, atom};
  else
    err = caf::error{code, atom, caf::make_message(std::move(detail))};
}

} // namespace

// Found by cereal through argument-dependent lookup. Defined in this file
// only (no other file may define save/load for these types).

template <class Archive>
void save(Archive& ar, const job_spec& x, std::uint32_t) {
  ar(x.model, x.prompt, x.width, x.height, x.frames, x.fps, x.steps, x.seed,
     x.priority, nanos(x.queue_timeout), nanos(x.run_timeout),
     x.idempotency_key, x.options, x.audio_url, x.output_url, x.webhook_url,
     x.ranks, x.endpoint);
}

template <class Archive>
void load(Archive& ar, job_spec& x, std::uint32_t version) {
  check_version("job_spec", version, job_spec_version);
  int64_t queue_timeout = 0;
  int64_t run_timeout = 0;
  ar(x.model, x.prompt, x.width, x.height, x.frames, x.fps, x.steps, x.seed,
     x.priority, queue_timeout, run_timeout, x.idempotency_key, x.options,
     x.audio_url, x.output_url, x.webhook_url);
  x.ranks = 1;
  if (version >= 2)
    ar(x.ranks);
  x.endpoint.clear();
  if (version >= 3)
    ar(x.endpoint);
  x.queue_timeout = caf::timespan{queue_timeout};
  x.run_timeout = caf::timespan{run_timeout};
}

template <class Archive>
void save(Archive& ar, const job_result& x, std::uint32_t) {
  ar(x.id.value, static_cast<uint8_t>(x.state));
  save_error(ar, x.error);
  ar(x.output, x.output_node, x.model, x.priority, x.device, x.node, x.attempts,
     x.step, x.steps, x.reserved_bytes, nanos(x.accepted_at),
     nanos(x.started_at), nanos(x.computed_at), nanos(x.finished_at),
     nanos(x.queue_time), nanos(x.run_time));
}

template <class Archive>
void load(Archive& ar, job_result& x, std::uint32_t version) {
  check_version("job_result", version);
  uint8_t state = 0;
  ar(x.id.value, state);
  if (state > static_cast<uint8_t>(job_state::timed_out))
    throw cereal::Exception("a job state of " + std::to_string(state));
  x.state = static_cast<job_state>(state);
  load_error(ar, x.error);
  int64_t times[6] = {};
  ar(x.output, x.output_node, x.model, x.priority, x.device, x.node, x.attempts,
     x.step, x.steps, x.reserved_bytes, times[0], times[1], times[2], times[3],
     times[4], times[5]);
  x.accepted_at = caf::timestamp{caf::timespan{times[0]}};
  x.started_at = caf::timestamp{caf::timespan{times[1]}};
  x.computed_at = caf::timestamp{caf::timespan{times[2]}};
  x.finished_at = caf::timestamp{caf::timespan{times[3]}};
  x.queue_time = caf::timespan{times[4]};
  x.run_time = caf::timespan{times[5]};
}

} // namespace vidnode::runtime

namespace vidnode::actors {

template <class Archive>
void save(Archive& ar, const journaled_job& x, std::uint32_t) {
  ar(x.result, x.spec, x.charged_failures, x.lease, x.device_index);
}

template <class Archive>
void load(Archive& ar, journaled_job& x, std::uint32_t version) {
  runtime::check_version("journaled_job", version);
  ar(x.result, x.spec, x.charged_failures, x.lease, x.device_index);
}

} // namespace vidnode::actors

CEREAL_CLASS_VERSION(vidnode::runtime::job_spec,
                     vidnode::runtime::job_spec_version)
CEREAL_CLASS_VERSION(vidnode::runtime::job_result, 1)
CEREAL_CLASS_VERSION(vidnode::actors::journaled_job, 1)

namespace vidnode::actors {

namespace {

// -- encoding and decoding ---------------------------------------------------

/// A stream buffer that appends to a string: cereal's output archive writes
/// records through it into a buffer that is reused.
class string_sink : public std::streambuf {
public:
  explicit string_sink(std::string& out) : out_(out) {}

protected:
  std::streamsize xsputn(const char* data, std::streamsize size) override {
    out_.append(data, static_cast<size_t>(size));
    return size;
  }

  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

private:
  std::string& out_;
};

/// Reads what cereal::BinaryOutputArchive wrote, from one record in memory.
/// Unlike cereal::BinaryInputArchive it checks every size (of a string or a
/// map) against the bytes left before anything is allocated, so that a
/// damaged record fails to decode instead of asking for gigabytes.
class record_reader
  : public cereal::InputArchive<record_reader, cereal::AllowEmptyClassElision> {
public:
  record_reader(const void* data, size_t size)
    : InputArchive(this), pos_(static_cast<const char*>(data)),
      end_(pos_ + size) {}

  /// Copies the next `size` bytes to `out`; throws cereal::Exception when
  /// fewer are left.
  void read(void* out, size_t size) {
    if (size > left())
      throw cereal::Exception("the record ends early");
    if (size > 0)
      std::memcpy(out, pos_, size);
    pos_ += size;
  }

  /// Bytes not read yet.
  size_t left() const noexcept {
    return static_cast<size_t>(end_ - pos_);
  }

private:
  const char* pos_;
  const char* end_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>>
CEREAL_LOAD_FUNCTION_NAME(record_reader& ar, T& x) {
  ar.read(std::addressof(x), sizeof(x));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(record_reader& ar, cereal::NameValuePair<T>& x) {
  ar(x.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(record_reader& ar, cereal::SizeTag<T>& x) {
  ar(x.size);
  // Every element of a string or a map takes at least one byte.
  if (x.size > ar.left())
    throw cereal::Exception("a size of " + std::to_string(x.size)
                            + " with only " + std::to_string(ar.left())
                            + " bytes left");
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(record_reader& ar, cereal::BinaryData<T>& x) {
  ar.read(x.data, static_cast<size_t>(x.size));
}

} // namespace

void encode_record(const journaled_job& job, std::string& out) {
  out.clear();
  string_sink sink{out};
  std::ostream stream{&sink};
  cereal::BinaryOutputArchive archive{stream};
  archive(job);
}

journaled_job decode_record(const void* data, size_t size) {
  journaled_job job;
  record_reader reader{data, size};
  reader(job);
  if (reader.left() != 0)
    throw cereal::Exception(std::to_string(reader.left())
                            + " bytes after the record");
  return job;
}

} // namespace vidnode::actors
