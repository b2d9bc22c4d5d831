#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace vidnode::net {

/// The file a download writes until every byte has arrived: a temporary
/// file that this object creates itself, exclusively (mkstemp: a fresh
/// name, `O_CREAT | O_EXCL`, so never through a symbolic link and never a
/// file that was there), in the target's directory, named
/// `TARGET.XXXXXX.part`. `commit` renames it over the target; until then
/// the target is left alone, and a download_file destroyed before a
/// successful commit removes its temporary file.
///
/// Every error is `invalid_request` whose context names the path and the
/// cause. Blocking (file system calls); not thread-safe; move-only.
class download_file {
public:
  /// What happens to a file already at the target.
  enum class existing : uint8_t {
    /// It is kept and the download fails (checked first, and again
    /// atomically by the rename).
    refuse,
    /// A regular file, or a symbolic link (the link, not what it points
    /// to), is replaced.
    replace,
  };

  /// Checks that a download can be written to `target`: it names a file
  /// (not "dir/"), its directory exists and a file can be created there
  /// (tried, and removed at once), and what is at `target` is nothing, or,
  /// with existing::replace, a regular file or a symbolic link. A
  /// directory or any other kind of file at `target` is refused whatever
  /// the policy. Leaves nothing behind.
  static caf::error check(const std::string& target, existing policy);

  /// Checks as `check` does, then creates the temporary file (mode 0666
  /// less the umask, as an ordinary new file).
  static caf::expected<download_file> create(const std::string& target,
                                             existing policy);

  download_file(download_file&& other) noexcept;
  download_file& operator=(download_file&& other) noexcept;
  download_file(const download_file&) = delete;
  download_file& operator=(const download_file&) = delete;

  /// Removes the temporary file unless commit succeeded.
  ~download_file();

  /// Where the bytes go until commit.
  const std::string& temporary_path() const noexcept {
    return temporary_;
  }

  /// The file the download is for.
  const std::string& target() const noexcept {
    return target_;
  }

  /// Appends `size` bytes. Fails on any short or failed write (e.g. the
  /// disk is full); the file is then useless and should be dropped.
  caf::error write(const uint8_t* data, size_t size);

  /// Flushes the file to disk (fsync), closes it and renames it to the
  /// target: with existing::refuse only if nothing is there by then
  /// (renameat2 with RENAME_NOREPLACE, else link and unlink). On success
  /// this object owns nothing more; on failure the temporary file is still
  /// removed when it is destroyed, and the target is as it was.
  caf::error commit();

private:
  download_file(std::string target, std::string temporary, int fd,
                existing policy) noexcept;

  void drop() noexcept;

  std::string target_;
  std::string temporary_;
  int fd_ = -1;
  existing policy_ = existing::refuse;
  bool committed_ = false;
};

} // namespace vidnode::net
