#include "base/secure_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace cloudha {
namespace {

absl::Status ErrnoStatus(int err, absl::string_view what,
                         absl::string_view path) {
  std::string message = absl::StrCat(what, " ", path, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

// Closes a file descriptor when it goes out of scope.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(absl::string_view path) {
  std::string p(path);
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever;
  // the type is checked right after, and on a regular file the flag does
  // nothing.
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  FdCloser closer(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxSmallFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is ", st.st_size, " bytes; at most ", kMaxSmallFileBytes,
        " are read"));
  }
  std::string content;
  char buffer[16384];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot read", path);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > kMaxSmallFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " grew past ", kMaxSmallFileBytes, " bytes"));
    }
  }
  return content;
}

absl::Status WriteFileAtomically(absl::string_view path,
                                 absl::string_view content, int mode,
                                 Overwrite overwrite) {
  std::string target(path);
  if (overwrite == Overwrite::kRefuse && access(target.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat(path, " exists; it is not overwritten (use --force)"));
  }
  // A unique name (mkostemp): a file left by a crash between create and
  // rename never blocks a later write, even by a process with the same pid.
  std::string temp = absl::StrCat(target, ".tmp.XXXXXX");
  int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", temp);
  FdCloser closer(fd);
  auto fail = [&](absl::string_view what) {
    absl::Status status = ErrnoStatus(errno, what, temp);
    unlink(temp.c_str());
    return status;
  };
  // open() applies the umask; the caller asked for exactly `mode`.
  if (fchmod(fd, mode) != 0) return fail("cannot chmod");
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("cannot flush");
  if (close(closer.Release()) != 0) return fail("cannot close");
  if (overwrite == Overwrite::kRefuse) {
    // link() fails when the target appeared meanwhile, unlike rename().
    if (link(temp.c_str(), target.c_str()) != 0) {
      absl::Status status = ErrnoStatus(errno, "cannot create", path);
      unlink(temp.c_str());
      return status;
    }
    unlink(temp.c_str());
  } else if (rename(temp.c_str(), target.c_str()) != 0) {
    absl::Status status = ErrnoStatus(errno, "cannot replace", path);
    unlink(temp.c_str());
    return status;
  }
  // The new name is durable only once the folder is flushed too.
  size_t slash = target.rfind('/');
  std::string folder = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  int dir = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoStatus(errno, "cannot open the folder of", path);
  const int synced = fsync(dir);
  const int error = errno;
  close(dir);
  if (synced != 0) return ErrnoStatus(error, "cannot flush the folder of", path);
  return absl::OkStatus();
}

absl::Status MakeDirectories(const std::string& path, int mode) {
  if (path.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a folder"));
    }
    return absl::OkStatus();
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s = MakeDirectories(path.substr(0, slash), 0755); !s.ok()) return s;
  }
  if (mkdir(path.c_str(), mode) != 0) {
    if (errno == EEXIST) return absl::OkStatus();  // made meanwhile by someone else
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create folder ", path, ": ", strerror(errno)));
  }
  // mkdir() applies the umask; the caller asked for exactly `mode`.
  if (chmod(path.c_str(), mode) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot set the mode of folder ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace cloudha
