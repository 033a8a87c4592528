#include "agent/http_probe.h"

#include <civetweb.h>
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
#include "base/host_port.h"

namespace cloudha {
namespace {

// civetweb's listening_ports takes "HOST:PORT" for IPv4 and "[V6]:PORT"
// for IPv6, as cloudha's other listeners are written; civetweb checks the
// rest (it refuses what it cannot bind).
absl::StatusOr<HostPort> CheckListen(const std::string& listen) {
  absl::StatusOr<HostPort> split = SplitHostPort("listener", listen);
  if (!split.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", listen, "\" is not HOST:PORT (e.g. 0.0.0.0:7902 or [::]:7902): ", split.status().message()));
  }
  return split;
}

struct Started {
  mg_context* context = nullptr;
  int port = 0;
};

// Starts civetweb on `listen` with only the options a probe needs: no
// document root (nothing but the handlers is served), no keep-alive (each
// probe is one connection), 16 workers, a client that sends no request
// within 1 s cut off (idle connections must not hold every worker while
// load balancers probe).
absl::StatusOr<Started> StartCivetweb(const std::string& listen, void* user_data) {
  if (absl::StatusOr<HostPort> split = CheckListen(listen); !split.ok()) return split.status();
  mg_init_library(0);
  const char* options[] = {"listening_ports",   listen.c_str(), "num_threads", "16",
                           "request_timeout_ms", "1000",         "enable_keep_alive",
                           "no",                 nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  // civetweb logs to stderr by default; its errors come back through
  // mg_start2's error text instead.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init;
  init.callbacks = &callbacks;
  init.user_data = user_data;
  init.configuration_options = options;
  char text[256] = {0};
  mg_error_data error;
  unsigned code = 0;
  error.code = &code;
  error.text = text;
  error.text_buffer_size = sizeof(text);
  mg_context* context = mg_start2(&init, &error);
  if (context == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ",
                                               text[0] != 0 ? text : "civetweb refused to start"));
  }
  mg_server_port ports[4];
  std::memset(ports, 0, sizeof(ports));
  int n = mg_get_server_ports(context, 4, ports);
  return Started{context, n > 0 ? ports[0].port : 0};
}

int Reply(mg_connection* conn, int code, const std::string& body, bool head) {
  const char* reason = code == 200   ? "OK"
                       : code == 503 ? "Service Unavailable"
                       : code == 404 ? "Not Found"
                                     : "Method Not Allowed";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: %zu\r\nCache-Control: no-store\r\n%sConnection: close\r\n\r\n",
            code, reason, body.size(), code == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (!head) mg_write(conn, body.data(), body.size());
  return code;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpProbe>> HttpProbe::Start(const std::string& listen,
                                                            std::function<ProbeView()> view) {
  std::unique_ptr<HttpProbe> probe(new HttpProbe(std::move(view)));
  absl::StatusOr<Started> started = StartCivetweb(listen, probe.get());
  if (!started.ok()) return started.status();
  probe->context_ = started->context;
  probe->port_ = started->port;
  mg_set_request_handler(probe->context_, "/", &HttpProbe::Handle, probe.get());
  return probe;
}

HttpProbe::~HttpProbe() {
  if (context_ != nullptr) mg_stop(context_);
}

int HttpProbe::Handle(mg_connection* conn, void* self) {
  const mg_request_info* request = mg_get_request_info(conn);
  const std::string method = request->request_method != nullptr ? request->request_method : "";
  const std::string path = request->local_uri != nullptr ? request->local_uri : "";
  const bool head = method == "HEAD";
  if (path != "/healthz" && path != "/primary" && path != "/secondary") {
    return Reply(conn, 404, "not found: the paths are /healthz, /primary and /secondary\n", head);
  }
  if (method != "GET" && !head) return Reply(conn, 405, "only GET and HEAD\n", false);
  ProbeView view = static_cast<HttpProbe*>(self)->view_();
  bool serving = path == "/healthz" ? view.alive : path == "/primary" ? view.primary : view.secondary;
  return Reply(conn, serving ? 200 : 503, view.line + "\n", head);
}

namespace {

// A listening TCP socket on `listen`, or why not.
absl::StatusOr<int> Listen(const std::string& listen) {
  absl::StatusOr<HostPort> split = CheckListen(listen);
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
