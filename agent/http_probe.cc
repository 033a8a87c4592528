#include "agent/http_probe.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/http_server.h"

namespace cloudha {

absl::StatusOr<std::unique_ptr<HttpProbe>> HttpProbe::Start(const std::string& listen,
                                                            std::function<ProbeView()> view) {
  // 16 workers: load balancers probe every node from several places.
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      listen, 16, [view = std::move(view)](const std::string& method, const std::string& path) {
        if (path != "/healthz" && path != "/primary" && path != "/secondary") {
          return HttpReply{404, "text/plain; charset=utf-8",
                           "not found: the paths are /healthz, /primary and /secondary\n"};
        }
        if (method != "GET" && method != "HEAD") {
          return HttpReply{405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
        }
        ProbeView state = view();
        bool serving = path == "/healthz"   ? state.alive
                       : path == "/primary" ? state.primary
                                            : state.secondary;
        return HttpReply{serving ? 200 : 503, "text/plain; charset=utf-8", state.line + "\n"};
      });
  if (!server.ok()) return server.status();
  return std::unique_ptr<HttpProbe>(new HttpProbe(std::move(*server)));
}

namespace {

// A listening TCP socket on `listen`, or why not.
absl::StatusOr<int> Listen(const std::string& listen) {
  absl::StatusOr<HostPort> split = CheckHttpListen(listen);
  if (!split.ok()) return split.status();
  const std::string& host = split->host;
  const std::string port = absl::StrCat(split->port);
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", listen, ": ", gai_strerror(rc), " (an IP address is needed)"));
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int error = errno;
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      error = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", std::strerror(error)));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpPrimaryListener>> TcpPrimaryListener::Create(
    const std::string& listen, std::function<void(const absl::Status&)> on_error) {
  // Bound once to say at start what cannot work (a port in use, an address
  // not on this machine), then released until the node is primary.
  absl::StatusOr<int> fd = Listen(listen);
  if (!fd.ok()) return fd.status();
  close(*fd);
  std::unique_ptr<TcpPrimaryListener> listener(
      new TcpPrimaryListener(listen, std::move(on_error)));
  listener->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (listener->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  listener->thread_ = std::thread([l = listener.get()] { l->Run(); });
  return listener;
}

TcpPrimaryListener::~TcpPrimaryListener() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  Wake();
  thread_.join();
  close(wake_fd_);
}

void TcpPrimaryListener::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void TcpPrimaryListener::SetOpen(bool open) {
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    bool wanted = open && !closed_;
    changed = wanted != wanted_;
    wanted_ = wanted;
  }
  // The role thread calls this every tick: the worker wakes only on a change.
  if (changed) Wake();
}

void TcpPrimaryListener::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    wanted_ = false;
  }
  Wake();
}

bool TcpPrimaryListener::WaitSettled(int timeout_ms) {
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wanted_ == is_open_; };
  return mu_.AwaitWithTimeout(absl::Condition(&settled), absl::Milliseconds(timeout_ms));
}

// Not civetweb here: its mg_stop waits up to its poll quantum (2 s) before
// the listening socket closes, and a node that stops being primary must
// refuse the next probe at once. All this port does is accept a connection
// and close it, which takes a socket and poll().
void TcpPrimaryListener::Run() {
  int fd = -1;
  bool failing = false;
  for (;;) {
    bool wanted;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      wanted = wanted_;
    }
    if (wanted && fd < 0) {
      absl::StatusOr<int> opened = Listen(listen_);
      if (!opened.ok() && !failing && on_error_) on_error_(opened.status());
      failing = !opened.ok();
      if (opened.ok()) fd = *opened;
    } else if (!wanted && fd >= 0) {
      close(fd);
      fd = -1;
    }
    {
      absl::MutexLock lock(&mu_);
      is_open_ = fd >= 0;
      // A start that failed (the port taken meanwhile) counts as settled
      // closed; the next SetOpen(true) tries again.
      if (wanted && fd < 0) wanted_ = false;
    }
    // Sleeps until a change (the eventfd) or a connection: no polling.
    pollfd p[2] = {{wake_fd_, POLLIN, 0}, {fd, POLLIN, 0}};
    if (poll(p, fd >= 0 ? 2 : 1, -1) <= 0) continue;
    if (p[0].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof(count));
    }
    if (fd < 0 || !(p[1].revents & POLLIN)) continue;
    // At most 64 per wake, so a flood cannot keep the port from closing.
    for (int i = 0; i < 64; ++i) {
      int conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0) {
        close(conn);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR && errno != ECONNABORTED) {
        // Out of descriptors or memory: the connection stays queued and
        // poll would wake at once; wait before the next try.
        poll(nullptr, 0, 100);
        break;
      }
    }
  }
  if (fd >= 0) close(fd);
}

}  // namespace cloudha
