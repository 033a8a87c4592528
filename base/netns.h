// Opening sockets in another network namespace.
//
// A socket belongs to the network namespace of the thread that creates it,
// for its whole life, whatever namespace the thread is in later. setns(2)
// moves only the calling thread, and a thread that the calling thread starts
// while in a namespace starts in it too. So code that must open a socket in
// another namespace (the data plane's conntrack table, while the agent's own
// listeners and peer connections stay in its namespace) enters it for as
// long as the socket takes to open, on the thread that opens it, and starts
// no thread and opens no other socket meanwhile:
//
//   absl::StatusOr<std::unique_ptr<NetworkNamespace>> ns = NetworkNamespace::Open("blue");
//   ...
//   absl::StatusOr<int> fd = InNetworkNamespace(ns->get(), [] { return OpenSocket(); });
//
// Entering a namespace needs CAP_SYS_ADMIN (in the user namespaces that own
// the target and the caller's own).
#ifndef CLOUDHA_BASE_NETNS_H_
#define CLOUDHA_BASE_NETNS_H_

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloudha {

// Where `ip netns add NAME` keeps the namespace NAME: /run/netns/NAME.
std::string NetworkNamespacePath(absl::string_view name);

// A name `ip netns` accepts and that stays inside /run/netns: not empty, at
// most 255 bytes, no '/', and not starting with '.' or '-'. INVALID_ARGUMENT
// says which rule it breaks.
absl::Status ValidateNetworkNamespaceName(absl::string_view name);

// A network namespace held open (a file descriptor on it), so it stays the
// same namespace even if its name is removed or reused. Thread-safe: it
// never changes after Open.
class NetworkNamespace {
 public:
  // The namespace `ip netns add NAME` made (/run/netns/NAME).
  // INVALID_ARGUMENT for a bad name; FAILED_PRECONDITION when there is none
  // of that name ("/run/netns/NAME does not exist (ip netns add NAME)") or
  // the file is not a network namespace.
  static absl::StatusOr<std::unique_ptr<NetworkNamespace>> Open(absl::string_view name);
  // The namespace a path names (/run/netns/NAME, /proc/PID/ns/net, a bind
  // mount of one); `name` is what messages call it.
  static absl::StatusOr<std::unique_ptr<NetworkNamespace>> OpenPath(const std::string& path,
                                                                    std::string name);
  ~NetworkNamespace();
  NetworkNamespace(const NetworkNamespace&) = delete;
  NetworkNamespace& operator=(const NetworkNamespace&) = delete;

  const std::string& name() const { return name_; }
  int fd() const { return fd_; }

 private:
  NetworkNamespace(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  const int fd_;
  const std::string name_;
};

// The calling thread inside a network namespace for the object's lifetime;
// the destructor returns the thread to the namespace it was in (it aborts
// the process should that fail, which needs the namespace of the thread to
// vanish while held open: a thread left in the wrong namespace would open
// the agent's sockets there). Move-only; destroy it on the thread that
// entered.
class ScopedNetworkNamespace {
 public:
  // Enters `target`; nullptr stays where the thread is (and needs no
  // privilege). PERMISSION_DENIED without CAP_SYS_ADMIN.
  static absl::StatusOr<ScopedNetworkNamespace> Enter(const NetworkNamespace* target);

  ScopedNetworkNamespace(ScopedNetworkNamespace&& other) noexcept;
  ScopedNetworkNamespace& operator=(ScopedNetworkNamespace&& other) = delete;
  ScopedNetworkNamespace(const ScopedNetworkNamespace&) = delete;
  ScopedNetworkNamespace& operator=(const ScopedNetworkNamespace&) = delete;
  ~ScopedNetworkNamespace();

 private:
  explicit ScopedNetworkNamespace(int origin_fd) : origin_fd_(origin_fd) {}

  // The namespace to return to; -1 when there is nothing to undo.
  int origin_fd_;
};

// Calls `fn` with the calling thread in `target` (nullptr: where it is) and
// returns the thread to its namespace. `fn` returns absl::Status or
// absl::StatusOr<T>; a failure to enter is returned as is, without calling
// `fn`.
template <typename Fn>
std::invoke_result_t<Fn> InNetworkNamespace(const NetworkNamespace* target, Fn&& fn) {
  absl::StatusOr<ScopedNetworkNamespace> inside = ScopedNetworkNamespace::Enter(target);
  if (!inside.ok()) return inside.status();
  return fn();
}

}  // namespace cloudha

#endif  // CLOUDHA_BASE_NETNS_H_
