// Probes for load balancers that speak HTTP or TCP, not gRPC (AWS Network
// Load Balancers, Azure Load Balancer, HAProxy, most appliances):
//
// - HttpProbe, `health.http_listen`: GET (or HEAD) /healthz, /primary and
//   /secondary answer 200 when the agent, cloudha.v1.Primary or
//   cloudha.v1.Secondary is SERVING and 503 otherwise, with a one-line body
//   ("primary epoch 7 node a"). Any other path is 404, any other method 405.
// - TcpPrimaryListener, `health.tcp_primary_listen`: a port that is open
//   only while this node serves cloudha.v1.Primary (the "probe response"
//   pattern of TCP health checks): connections are accepted there, and
//   refused everywhere else (the port is closed, not merely unanswered).
//
// Both read the same serving states as grpc.health.v1 (HealthPublisher), so
// the rules are the same: primary only once its TO_PRIMARY hooks
// succeeded; everything NOT_SERVING first on SIGTERM.
//
// The HTTP probe is served by agent/http_server.h (civetweb).
#ifndef CLOUDHA_AGENT_HTTP_PROBE_H_
#define CLOUDHA_AGENT_HTTP_PROBE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/http_server.h"

namespace cloudha {

// What a probe answers: which services serve, and the line it says.
struct ProbeView {
  bool alive = false;
  bool primary = false;
  bool secondary = false;
  // "primary epoch 7 node a", "secondary epoch 7 node b primary a",
  // with " (not serving)" when the agent is not.
  std::string line;
};

// An HTTP server with the probe handlers.
class HttpProbe {
 public:
  // Listens on `listen` (HOST:PORT, [V6]:PORT; port 0 picks one) and asks
  // `view` (thread-safe, cheap) on every request.
  static absl::StatusOr<std::unique_ptr<HttpProbe>> Start(const std::string& listen,
                                                          std::function<ProbeView()> view);
  HttpProbe(const HttpProbe&) = delete;
  HttpProbe& operator=(const HttpProbe&) = delete;

  // The port it listens on.
  int port() const { return server_->port(); }

 private:
  explicit HttpProbe(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}

  std::unique_ptr<HttpServer> server_;
};

// Opens and closes a TCP listener as this node starts and stops serving
// cloudha.v1.Primary: connections are accepted and closed at once (a TCP
// probe needs only the handshake). The listener opens and closes on a
// thread of its own, so SetOpen never blocks the caller (the role thread).
class TcpPrimaryListener {
 public:
  // Checks that `listen` can be bound (and releases it); nothing listens
  // until SetOpen(true). `on_error` hears of a later start that fails (the
  // port taken meanwhile), once until a start succeeds again.
  static absl::StatusOr<std::unique_ptr<TcpPrimaryListener>> Create(
      const std::string& listen, std::function<void(const absl::Status&)> on_error);
  ~TcpPrimaryListener();
  TcpPrimaryListener(const TcpPrimaryListener&) = delete;
  TcpPrimaryListener& operator=(const TcpPrimaryListener&) = delete;

  void SetOpen(bool open);

  // Closed for good: later SetOpen(true) calls change nothing (the agent is
  // stopping, and a role tick still under way must not reopen the port).
  void Close();

  // For tests: waits until the listener is as last asked (at most `timeout`);
  // true when it is.
  bool WaitSettled(int timeout_ms);

 private:
  TcpPrimaryListener(std::string listen, std::function<void(const absl::Status&)> on_error)
      : listen_(std::move(listen)), on_error_(std::move(on_error)) {}
  void Run();
  void Wake();

  const std::string listen_;
  const std::function<void(const absl::Status&)> on_error_;
  absl::Mutex mu_;
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool is_open_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Written on every change, so the worker sleeps in poll() until one
  // comes or a connection does.
  int wake_fd_ = -1;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HTTP_PROBE_H_
