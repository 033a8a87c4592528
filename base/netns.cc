#include "base/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace cloudha {
namespace {

constexpr char kNetnsDir[] = "/run/netns/";
// The calling thread's own namespace (/proc/self would be the main
// thread's, which may be elsewhere).
constexpr char kThreadNetns[] = "/proc/thread-self/ns/net";

absl::Status ErrnoStatus(int error, const std::string& message) {
  absl::StatusCode code = error == EPERM || error == EACCES ? absl::StatusCode::kPermissionDenied
                                                            : absl::StatusCode::kUnavailable;
  return absl::Status(code, absl::StrCat(message, ": ", strerror(error)));
}

}  // namespace

std::string NetworkNamespacePath(absl::string_view name) { return absl::StrCat(kNetnsDir, name); }

absl::Status ValidateNetworkNamespaceName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("the network namespace name is empty");
  if (name.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("network namespace name is ", name.size(), " bytes; at most 255"));
  }
  if (name.find('/') != absl::string_view::npos || name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "network namespace name \"", name, "\" holds a '/': name one of /run/netns"));
  }
  if (name[0] == '.' || name[0] == '-') {
    return absl::InvalidArgumentError(absl::StrCat("network namespace name \"", name,
                                                   "\" must not start with '.' or '-'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NetworkNamespace>> NetworkNamespace::Open(absl::string_view name) {
  if (absl::Status s = ValidateNetworkNamespaceName(name); !s.ok()) return s;
  std::string path = NetworkNamespacePath(name);
  if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " does not exist (ip netns add ", name, ")"));
  }
  return OpenPath(path, std::string(name));
}

absl::StatusOr<std::unique_ptr<NetworkNamespace>> NetworkNamespace::OpenPath(
    const std::string& path, std::string name) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(errno, absl::StrCat("network namespace ", name, ": cannot open ", path));
  }
  // A file left in /run/netns after its namespace went (or any other file)
  // is not one: NS_GET_NSTYPE works only on namespace files.
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "network namespace ", name, ": ", path, " is not a network namespace",
        type < 0 ? absl::StrCat(" (", strerror(errno), ")") : ""));
  }
  return std::unique_ptr<NetworkNamespace>(new NetworkNamespace(fd, std::move(name)));
}

NetworkNamespace::~NetworkNamespace() { close(fd_); }

absl::StatusOr<ScopedNetworkNamespace> ScopedNetworkNamespace::Enter(
    const NetworkNamespace* target) {
  if (target == nullptr) return ScopedNetworkNamespace(-1);
  int origin = open(kThreadNetns, O_RDONLY | O_CLOEXEC);
  if (origin < 0) {
    return ErrnoStatus(errno, absl::StrCat("network namespace ", target->name(),
                                           ": cannot open this thread's own, ", kThreadNetns));
  }
  if (setns(target->fd(), CLONE_NEWNET) != 0) {
    int error = errno;
    close(origin);
    return ErrnoStatus(error, absl::StrCat("cannot enter network namespace ", target->name(),
                                           error == EPERM ? " (needs CAP_SYS_ADMIN)" : ""));
  }
  return ScopedNetworkNamespace(origin);
}

ScopedNetworkNamespace::ScopedNetworkNamespace(ScopedNetworkNamespace&& other) noexcept
    : origin_fd_(other.origin_fd_) {
  other.origin_fd_ = -1;
}

ScopedNetworkNamespace::~ScopedNetworkNamespace() {
  if (origin_fd_ < 0) return;
  if (setns(origin_fd_, CLONE_NEWNET) != 0) {
    LogEvent(LogLevel::kError, "netns_return_failed",
             {{"reason", strerror(errno)},
              {"detail", "a thread could not return to its network namespace; stopping"}});
    std::abort();
  }
  close(origin_fd_);
}

}  // namespace cloudha
