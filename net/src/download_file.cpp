#include "vidnode/net/download_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include "vidnode/runtime/errc.hpp"

namespace vidnode::net {

namespace {

using runtime::errc;

/// Longest part of the target's name that goes into the temporary name, so
/// that the name with its suffix stays within NAME_MAX (255).
constexpr size_t max_name_in_temporary = 200;

constexpr const char* temporary_suffix = ".part";

caf::error fail(const std::string& what) {
  return runtime::make_error(errc::invalid_request, what);
}

std::string quoted(const std::string& path) {
  return "'" + path + "'";
}

std::string cause() {
  return std::strerror(errno);
}

/// The process's umask, read without changing it (umask(2) would, for a
/// moment, for every thread): from /proc, else the common 022.
mode_t current_umask() {
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Umask:", 0) == 0)
      return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  return 022;
}

/// Splits `target` into its directory ("." if it names none) and its name;
/// an error if it names no file.
caf::error split(const std::string& target, std::string& dir,
                 std::string& name) {
  if (target.empty())
    return fail("an empty path names no file");
  auto slash = target.rfind('/');
  name = slash == std::string::npos ? target : target.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return fail(quoted(target) + " names a directory, not a file");
  if (slash == std::string::npos)
    dir = ".";
  else if (slash == 0)
    dir = "/";
  else
    dir = target.substr(0, slash);
  return caf::none;
}

/// Creates a fresh temporary file for `name` in `dir`; its descriptor, or
/// -1 with errno set. `path` receives its name.
int make_temporary(const std::string& dir, const std::string& name,
                   std::string& path) {
  auto stem = name.substr(0, max_name_in_temporary);
  std::string pattern = dir + "/" + stem + ".XXXXXX" + temporary_suffix;
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  auto fd = ::mkostemps(
    buffer.data(), static_cast<int>(std::strlen(temporary_suffix)), O_CLOEXEC);
  if (fd < 0)
    return -1;
  path = buffer.data();
  static const mode_t mask = current_umask();
  if (::fchmod(fd, 0666 & ~mask) != 0) {
    auto saved = errno;
    ::close(fd);
    ::unlink(path.c_str());
    errno = saved;
    return -1;
  }
  return fd;
}

/// Checks `target` (see download_file::check) and splits it.
caf::error check_target(const std::string& target,
                        download_file::existing policy, std::string& dir,
                        std::string& name) {
  if (auto err = split(target, dir, name))
    return err;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return fail(quoted(target) + ": its directory " + quoted(dir)
                  + " does not exist");
    return fail(quoted(target) + ": " + quoted(dir) + ": " + cause());
  }
  if (!S_ISDIR(st.st_mode))
    return fail(quoted(target) + ": " + quoted(dir) + " is not a directory");
  if (::lstat(target.c_str(), &st) == 0) {
    struct stat followed {};
    if (S_ISDIR(st.st_mode)
        || (S_ISLNK(st.st_mode) && ::stat(target.c_str(), &followed) == 0
            && S_ISDIR(followed.st_mode)))
      return fail(quoted(target) + " is a directory");
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
      return fail(quoted(target) + " exists and is not a regular file");
    if (policy == download_file::existing::refuse)
      return fail(quoted(target) + " exists");
  } else if (errno != ENOENT) {
    return fail(quoted(target) + ": " + cause());
  }
  return caf::none;
}

} // namespace

caf::error download_file::check(const std::string& target, existing policy) {
  auto created = create(target, policy);
  return created ? caf::none : std::move(created.error());
}

caf::expected<download_file> download_file::create(const std::string& target,
                                                   existing policy) {
  std::string dir;
  std::string name;
  if (auto err = check_target(target, policy, dir, name))
    return err;
  std::string temporary;
  auto fd = make_temporary(dir, name, temporary);
  if (fd < 0)
    return fail(quoted(target) + ": cannot create a file in " + quoted(dir)
                + ": " + cause());
  return download_file{target, std::move(temporary), fd, policy};
}

download_file::download_file(std::string target, std::string temporary, int fd,
                             existing policy) noexcept
  : target_(std::move(target)), temporary_(std::move(temporary)), fd_(fd),
    policy_(policy) {}

download_file::download_file(download_file&& other) noexcept
  : target_(std::move(other.target_)), temporary_(std::move(other.temporary_)),
    fd_(std::exchange(other.fd_, -1)), policy_(other.policy_),
    committed_(other.committed_) {
  other.temporary_.clear();
}

download_file& download_file::operator=(download_file&& other) noexcept {
  if (this != &other) {
    drop();
    target_ = std::move(other.target_);
    temporary_ = std::move(other.temporary_);
    other.temporary_.clear();
    fd_ = std::exchange(other.fd_, -1);
    policy_ = other.policy_;
    committed_ = other.committed_;
  }
  return *this;
}

download_file::~download_file() {
  drop();
}

void download_file::drop() noexcept {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  if (!committed_ && !temporary_.empty())
    ::unlink(temporary_.c_str());
  temporary_.clear();
}

caf::error download_file::write(const uint8_t* data, size_t size) {
  if (fd_ < 0)
    return fail("writing " + quoted(temporary_) + ": the file is closed");
  while (size > 0) {
    auto n = ::write(fd_, data, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail("writing " + quoted(temporary_) + " (for " + quoted(target_)
                  + "): " + (n < 0 ? cause() : "no progress"));
    data += n;
    size -= static_cast<size_t>(n);
  }
  return caf::none;
}

caf::error download_file::commit() {
  if (fd_ < 0)
    return fail("writing " + quoted(temporary_) + ": the file is closed");
  auto synced = ::fsync(fd_) == 0;
  auto sync_error = cause();
  auto closed = ::close(fd_) == 0;
  fd_ = -1;
  if (!synced || !closed)
    return fail("writing " + quoted(temporary_) + " (for " + quoted(target_)
                + "): " + (synced ? cause() : sync_error));
  if (policy_ == existing::replace) {
    if (::rename(temporary_.c_str(), target_.c_str()) != 0)
      return fail("renaming " + quoted(temporary_) + " to " + quoted(target_)
                  + ": " + cause());
  } else {
    auto renamed = ::renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD,
                               target_.c_str(), RENAME_NOREPLACE)
                   == 0;
    if (!renamed && (errno == EINVAL || errno == ENOSYS)) {
      // The file system cannot rename without replacing: a hard link
      // fails just as atomically when the target exists.
      renamed = ::link(temporary_.c_str(), target_.c_str()) == 0;
      if (renamed)
        ::unlink(temporary_.c_str());
    }
    if (!renamed) {
      if (errno == EEXIST)
        return fail(quoted(target_)
                    + " appeared during the download and was kept");
      return fail("renaming " + quoted(temporary_) + " to " + quoted(target_)
                  + ": " + cause());
    }
  }
  committed_ = true;
  temporary_.clear();
  return caf::none;
}

} // namespace vidnode::net
