#pragma once

/// @file
/// Loading a model onto a device, measured (private to gpu/). Apart from
/// torch_boundary.hpp because it needs ATen, whose logging macros (CHECK)
/// clash with Catch's in that header's test.

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <ATen/ATen.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include "torch_boundary.hpp"

namespace vidnode::gpu {

/// A model file as libtorch's loaders read it (torch::jit::load takes
/// one). Reads with pread straight into the buffers the loader hands it
/// (each record's own storage), so every byte is copied once, from the page
/// cache into the tensor's memory, with no stream buffer in between. At
/// open it asks the kernel to read the whole file ahead (sequential access,
/// WILLNEED): on a cold cache the disk keeps reading later records while
/// the loader unpickles earlier ones and, on a cuda device, copies each to
/// the device as it comes (torch::jit::load with a device moves every
/// tensor there right after reading its record), so the transfer overlaps
/// the reading without code of our own. Not thread-safe for concurrent
/// reads of one object (the loader reads sequentially).
class model_file_reader final : public caffe2::serialize::ReadAdapterInterface {
public:
  /// Opens `path`; throws std::runtime_error saying why it cannot.
  explicit model_file_reader(const std::string& path)
    : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0)
      throw std::runtime_error("cannot open: "
                               + std::string{std::strerror(errno)});
    auto end = ::lseek(fd_, 0, SEEK_END);
    if (end < 0) {
      auto why = std::string{std::strerror(errno)};
      ::close(fd_);
      throw std::runtime_error("cannot read: " + why);
    }
    size_ = static_cast<size_t>(end);
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_WILLNEED);
  }

  ~model_file_reader() override {
    ::close(fd_);
  }

  model_file_reader(const model_file_reader&) = delete;
  model_file_reader& operator=(const model_file_reader&) = delete;

  /// The file's size in bytes, at open.
  size_t size() const override {
    return size_;
  }

  /// Reads up to `n` bytes at `pos` into `buf`: fewer only at the end of
  /// the file. Throws std::runtime_error on a read error.
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    auto out = static_cast<char*>(buf);
    size_t done = 0;
    while (done < n) {
      auto got =
        ::pread(fd_, out + done, n - done, static_cast<off_t>(pos + done));
      if (got == 0)
        break;
      if (got < 0) {
        if (errno == EINTR)
          continue;
        throw std::runtime_error("cannot read: "
                                 + std::string{std::strerror(errno)});
      }
      done += static_cast<size_t>(got);
    }
    return done;
  }

private:
  int fd_;
  size_t size_ = 0;
};

/// Runs a pipeline's `load` on `device` and returns the device memory the
/// loaded model holds (0 on the CPU). Initializes CUDA first: the caching
/// allocator's statistics exist only after that.
template <class F>
uint64_t load_on_device(c10::Device device, F&& load) {
  with_torch(device,
             [&] { at::empty({1}, at::TensorOptions().device(device)); });
  device_memory_meter meter{device};
  meter.measure([&] { with_torch(device, load); });
  return meter.held_bytes();
}

} // namespace vidnode::gpu
