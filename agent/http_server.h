// A small plaintext HTTP/1.1 server for the agent's plaintext endpoints (the
// HTTP probe, agent/http_probe.h; the Prometheus metrics, agent/metrics.h):
// one handler answers every request, on civetweb's threads.
//
// Served by civetweb (Debian's libcivetweb), an embeddable HTTP server in C
// that needs no event loop of ours: it owns its listening socket and a small
// pool of threads, limits request sizes and times out slow clients.
#ifndef CLOUDHA_AGENT_HTTP_SERVER_H_
#define CLOUDHA_AGENT_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/host_port.h"

struct mg_connection;
struct mg_context;

namespace cloudha {

struct HttpReply {
  int code = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Checks a listener address as civetweb takes it: "HOST:PORT" for IPv4 and
// "[V6]:PORT" for IPv6, as cloudha's other listeners are written (civetweb
// checks the rest: it refuses what it cannot bind).
absl::StatusOr<HostPort> CheckHttpListen(const std::string& listen);

class HttpServer {
 public:
  // Called for every request with its method and path (without the query);
  // thread-safe. A HEAD gets the reply's headers only; a 405 says
  // "Allow: GET, HEAD".
  using Handler = std::function<HttpReply(const std::string& method, const std::string& path)>;

  // Listens on `listen` (HOST:PORT, [V6]:PORT; port 0 picks one) with
  // `threads` workers. No keep-alive (each request is one connection), and a
  // client that sends no request within 1 s is cut off, so idle connections
  // cannot hold every worker.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen, int threads,
                                                           Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port it listens on.
  int port() const { return port_; }

 private:
  explicit HttpServer(Handler handler) : handler_(std::move(handler)) {}
  static int Handle(mg_connection* conn, void* self);

  Handler handler_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HTTP_SERVER_H_
