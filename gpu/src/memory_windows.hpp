#pragma once

/// @file
/// Which measurements of a device's memory can be attributed to one job
/// (private to gpu/; plain C++, no libtorch, so tests build it anywhere).

#include <cstdint>
#include <map>
#include <mutex>

namespace vidnode::gpu {

/// The measurement windows in flight on one device. A device's allocator
/// keeps one set of statistics (current and peak bytes) for everything that
/// runs on it, so what a window sees is one job's only while no other
/// window (another lane's job, a model loading) is open at the same time:
/// such a window is *clean*. Windows that overlap are not clean, whichever
/// opened first; and a window that is not alone must not reset the peak
/// statistics, which the other window reads. Thread-safe.
///
/// Work on the device that opens no window (a run's tensors freed by its
/// destructor) is invisible here: callers open a window around any such
/// work that can change the statistics while another job is measured.
class memory_windows {
public:
  /// What open() saw.
  struct ticket {
    /// The number of windows opened before and with this one.
    uint64_t opened = 0;
    /// No other window was open when it opened.
    bool alone = false;
  };

  /// Opens a window. `if_alone` runs, under the registry's lock, only when
  /// no other window is open: the caller resets the peak statistics and
  /// reads what is allocated there, and no other window can open meanwhile.
  template <class F>
  ticket open(F&& if_alone) {
    std::lock_guard<std::mutex> guard{mutex_};
    ticket t;
    t.alone = open_ == 0;
    t.opened = ++opened_;
    ++open_;
    if (t.alone)
      if_alone();
    return t;
  }

  /// Closes the window that `t` opened. `if_clean` runs, under the lock,
  /// only when the window was clean: no other window was open at any time
  /// while it was (so nothing else reset or moved the statistics through a
  /// window). Returns whether it ran. Every open() must be closed once.
  template <class F>
  bool close(const ticket& t, F&& if_clean) {
    std::lock_guard<std::mutex> guard{mutex_};
    bool clean = t.alone && opened_ == t.opened && open_ == 1;
    --open_;
    if (clean)
      if_clean();
    return clean;
  }

  /// Windows open now.
  int32_t open_windows() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return open_;
  }

  /// The registry of device `index` (a CUDA ordinal), one per process.
  static memory_windows& of(int32_t index) {
    static std::mutex mutex;
    static std::map<int32_t, memory_windows> registries;
    std::lock_guard<std::mutex> guard{mutex};
    return registries[index];
  }

private:
  mutable std::mutex mutex_;
  int32_t open_ = 0;
  uint64_t opened_ = 0;
};

} // namespace vidnode::gpu
