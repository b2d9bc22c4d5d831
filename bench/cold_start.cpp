/// @file
/// Cold start: how long a pipeline's load() takes against reading the same
/// file with `cat FILE > /dev/null` (the disk's limit), from a cold page
/// cache and from a warm one, for the tiny-t2v weights and for a TorchScript
/// file of a few hundred MB (written by examples/toy_torchscript). Each
/// round drops the file from the page cache, then times cat and load, then
/// both again warm; which of the two goes first alternates between rounds;
/// medians of several rounds. Prints load time / cat time.
///
/// The page cache is dropped per file with fsync + posix_fadvise(DONTNEED),
/// which needs no privileges and leaves other files' pages alone; with
/// VIDNODE_BENCH_DROP_CACHES=1 it also writes 1 to /proc/sys/vm/drop_caches
/// (root; drops every clean page of the machine). The table says which was
/// used and how much of the file was still resident afterwards (mincore).
///
/// A last column times writing as many bytes of fresh memory (new[] and
/// memset), which every copying loader must do on top of reading the file.
///
/// Usage: bench_cold_start [SCALE [DIR]]: SCALE (or VIDNODE_BENCH_SCALE)
/// multiplies the rounds (default 5); DIR (or VIDNODE_BENCH_DIR) holds the
/// files, on a disk (not tmpfs, where nothing can be dropped; default: the
/// build's bench folder). VIDNODE_BENCH_TOY_GIB sets the TorchScript
/// file's weights (default 0.3 GiB of bf16).

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "measurement.hpp"
#include "vidnode/gpu/model_catalog.hpp"
#include "vidnode/gpu/pipeline.hpp"
#include "vidnode/gpu/tiny_t2v.hpp"
#include "vidnode/runtime/job.hpp"

namespace {

using namespace vidnode;
using clock_type = std::chrono::steady_clock;

constexpr long tmpfs_magic = 0x01021994;

double ms_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - start)
    .count();
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs.empty() ? 0 : xs[xs.size() / 2];
}

/// Share of `path`'s pages in the page cache (0 to 1), by mincore.
double resident_share(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return -1;
  struct stat st {};
  ::fstat(fd, &st);
  auto size = static_cast<size_t>(st.st_size);
  auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  auto map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED)
    return -1;
  std::vector<unsigned char> pages((size + page - 1) / page);
  ::mincore(map, size, pages.data());
  ::munmap(map, size);
  auto in = std::count_if(pages.begin(), pages.end(),
                          [](unsigned char p) { return (p & 1) != 0; });
  return pages.empty() ? 0 : static_cast<double>(in) / pages.size();
}

/// How the page cache was dropped for the last file: "fadvise" or
/// "fadvise+drop_caches" (drop_caches failing falls back to fadvise).
std::string drop_method = "fadvise";

/// Drops `path` from the page cache; the share still resident.
double drop_from_cache(const std::string& path, bool drop_caches) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  drop_method = "fadvise";
  if (drop_caches) {
    ::sync();
    std::ofstream out{"/proc/sys/vm/drop_caches"};
    out << "1\n";
    out.flush();
    if (out)
      drop_method = "fadvise+drop_caches";
  }
  return resident_share(path);
}

double time_cat(const std::string& path) {
  auto command = "cat '" + path + "' > /dev/null";
  auto start = clock_type::now();
  if (std::system(command.c_str()) != 0)
    std::cerr << "bench_cold_start: '" << command << "' failed\n";
  return ms_since(start);
}

/// Writing `bytes` of memory the process never touched before (what a loader
/// does to the tensors it fills): on a VM whose host backs guest memory
/// lazily this costs far more than reading the page cache.
double time_fresh_fill(size_t bytes) {
  auto start = clock_type::now();
  std::unique_ptr<char[]> buffer{new char[bytes]};
  std::memset(buffer.get(), 1, bytes);
  auto ms = ms_since(start);
  if (buffer[bytes / 2] != 1)
    std::cerr << "bench_cold_start: memset did not fill\n";
  return ms;
}

double time_load(const gpu::model_factory& factory, const std::string& model,
                 const runtime::device_info& device) {
  runtime::job_spec spec;
  spec.model = model;
  auto start = clock_type::now();
  auto pipeline = factory.make(model, device);
  pipeline->load(spec);
  auto ms = ms_since(start);
  pipeline.reset();
  return ms;
}

struct figures {
  std::vector<double> cat_cold, load_cold, cat_warm, load_warm, resident,
    fresh_fill;
};

figures measure(const gpu::model_factory& factory, const std::string& model,
                const std::string& path, size_t rounds, bool drop_caches) {
  runtime::device_info device;
  device.kind = runtime::device_kind::cpu;
  device.memory_bytes = uint64_t{8} << 30;
  figures f;
  // One load first: libtorch's own one-time set-up is not a cold start of
  // the file.
  time_load(factory, model, device);
  for (size_t round = 0; round < rounds; ++round) {
    auto cat_first = round % 2 == 0;
    for (int i = 0; i < 2; ++i) {
      f.resident.push_back(drop_from_cache(path, drop_caches));
      if ((i == 0) == cat_first)
        f.cat_cold.push_back(time_cat(path));
      else
        f.load_cold.push_back(time_load(factory, model, device));
    }
    f.fresh_fill.push_back(
      time_fresh_fill(static_cast<size_t>(std::filesystem::file_size(path))));
    for (int i = 0; i < 2; ++i) {
      if ((i == 0) == cat_first)
        f.cat_warm.push_back(time_cat(path));
      else
        f.load_warm.push_back(time_load(factory, model, device));
    }
  }
  return f;
}

} // namespace

int main(int argc, char** argv) {
  auto factor = bench::scale(argc, argv);
  auto rounds = bench::scaled(5, factor, 3);
  std::string dir = argc > 2 ? argv[2]
                    : std::getenv("VIDNODE_BENCH_DIR")
                      ? std::getenv("VIDNODE_BENCH_DIR")
                      : BENCH_WORK_DIR;
  double toy_gib = 0.3;
  if (auto text = std::getenv("VIDNODE_BENCH_TOY_GIB"))
    toy_gib = std::atof(text);
  auto drop_caches =
    std::getenv("VIDNODE_BENCH_DROP_CACHES") != nullptr
    && std::string{std::getenv("VIDNODE_BENCH_DROP_CACHES")} == "1";
  dir += "/cold-start";
  std::filesystem::create_directories(dir);
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) == 0 && fs.f_type == tmpfs_magic)
    std::cout << "bench_cold_start: " << dir
              << " is on tmpfs: no cold figures there (give DIR on a disk)\n";

  auto tiny = dir + "/tiny-t2v.weights";
  if (auto err = gpu::save_tiny_t2v_weights(tiny)) {
    std::cerr << "bench_cold_start: " << *err << "\n";
    return 1;
  }
  auto toy = dir + "/toy.pt";
  auto command = std::string{TOY_TORCHSCRIPT_BIN} + " '" + toy + "' --weights "
                 + std::to_string(toy_gib) + " > /dev/null";
  if (std::system(command.c_str()) != 0) {
    std::cerr << "bench_cold_start: '" << command << "' failed\n";
    return 1;
  }
  gpu::catalog_options options;
  options.tiny_t2v_weights = tiny;
  options.torchscript_models = {{"toy", toy}};
  std::string error;
  auto catalog = gpu::model_catalog::make(options, error);
  if (!catalog) {
    std::cerr << "bench_cold_start: " << error << "\n";
    return 1;
  }

  std::cout << "## Cold start: load() on cpu against cat\n\n"
            << rounds << " rounds of each, medians; files in " << dir << "\n\n";
  bench::markdown_table table{
    {"model", "file MB", "dropped by", "resident after drop", "cat cold ms",
     "load cold ms", "load / cat cold", "cat warm ms", "load warm ms",
     "load / cat warm", "load cold MB/s", "fill fresh memory ms"}};
  for (auto [model, path] :
       {std::pair<std::string, std::string>{"tiny-t2v", tiny}, {"toy", toy}}) {
    auto f = measure(*catalog->find(model), model, path, rounds, drop_caches);
    auto mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
    auto cat_cold = median(f.cat_cold);
    auto load_cold = median(f.load_cold);
    auto cat_warm = median(f.cat_warm);
    auto load_warm = median(f.load_warm);
    auto resident = *std::max_element(f.resident.begin(), f.resident.end());
    table.add({model, bench::fixed(mb, 1), drop_method,
               bench::fixed(100 * resident, 1) + "%", bench::fixed(cat_cold),
               bench::fixed(load_cold),
               bench::fixed(load_cold / cat_cold, 2) + "x",
               bench::fixed(cat_warm), bench::fixed(load_warm),
               bench::fixed(load_warm / cat_warm, 2) + "x",
               bench::fixed(mb / (load_cold / 1000), 0),
               bench::fixed(median(f.fresh_fill))});
    bench::record_summary({"cold start: " + model + " load (cpu, cold cache)",
                           bench::fixed(load_cold) + " ms",
                           "cat " + bench::fixed(cat_cold) + " ms",
                           bench::fixed(load_cold / cat_cold, 2) + "x",
                           "as fast as the disk allows", false});
  }
  table.print("load() against cat, cpu");
  return 0;
}
