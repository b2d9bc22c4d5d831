#include "vidctl/downloads.hpp"

#include <sys/stat.h>

#include <iostream>
#include <optional>
#include <utility>

#include "vidctl/interrupts.hpp"
#include "vidctl/output.hpp"
#include "vidnode/net/download_file.hpp"
#include "vidnode/runtime/errc.hpp"
#include "vidnode/runtime/units.hpp"

namespace vidnode::vidctl {

namespace {

using net::download_file;

download_file::existing policy_of(const download_target& target) {
  return target.replace ? download_file::existing::replace
                        : download_file::existing::refuse;
}

/// A download_file that a signal removes too: created and forgotten with
/// the signal thread held off, so that no signal falls in between.
class interruptible_file {
public:
  /// Creates the file for `target`; an error as download_file::create.
  caf::error create(const download_target& target) {
    auto held = hold_interrupts();
    auto created = download_file::create(target.path, policy_of(target));
    if (!created)
      return std::move(created.error());
    file_ = std::move(*created);
    remove_if_interrupted(held, file_->temporary_path());
    return caf::none;
  }

  ~interruptible_file() {
    auto held = hold_interrupts();
    remove_if_interrupted(held, {});
    file_.reset();
  }

  download_file& operator*() {
    return *file_;
  }

  /// Renames the file to its target (download_file::commit).
  caf::error commit() {
    auto held = hold_interrupts();
    auto err = file_->commit();
    remove_if_interrupted(held, {});
    if (err)
      file_.reset();
    return err;
  }

private:
  std::optional<download_file> file_;
};

} // namespace

int check_download_target(const download_target& target) {
  if (target.path.empty())
    return 0;
  // Every other problem first: a directory at the path is not "a file
  // --force would replace".
  auto err =
    download_file::check(target.path, download_file::existing::replace);
  struct stat st {};
  std::string why;
  if (err)
    why = runtime::detail_of(err);
  else if (!target.replace && ::lstat(target.path.c_str(), &st) == 0)
    why = "'" + target.path + "' exists; --force replaces it";
  if (why.empty())
    return 0;
  std::cerr << "vidctl: " << target.argument << ": " << why << "\n";
  return exit_usage;
}

int download(net::client& node, runtime::job_id id,
             const download_target& target, uint64_t& bytes) {
  interruptible_file file;
  if (auto err = file.create(target))
    return fail_local_file(target.argument + ": " + runtime::detail_of(err));
  caf::error local;
  auto written = node.fetch_output(id, [&](const std::vector<uint8_t>& chunk) {
    local = (*file).write(chunk.data(), chunk.size());
    return local;
  });
  if (!written && local)
    return fail_local_file(target.argument + ": " + runtime::detail_of(local));
  if (!written)
    return fail(written.error());
  if (auto err = file.commit())
    return fail_local_file(target.argument + ": " + runtime::detail_of(err));
  bytes = *written;
  if (!json_output)
    std::cerr << "vidctl: wrote " << runtime::format_bytes(bytes) << " ("
              << bytes << " bytes) to " << target.path << "\n";
  return 0;
}

int finish_with_download(net::client& node, const runtime::job_result& r,
                         const download_target& target) {
  if (target.path.empty() || r.state != runtime::job_state::succeeded)
    return finish_with(r);
  uint64_t bytes = 0;
  if (auto status = download(node, r.id, target, bytes)) {
    print_result(r);
    return status;
  }
  if (json_output) {
    auto doc = net::to_json(r);
    doc["download"] = {{"path", target.path}, {"bytes", bytes}};
    std::cout << net::to_json_text(doc) << "\n";
    return 0;
  }
  return finish_with(r);
}

} // namespace vidnode::vidctl
