#include "agent/http_server.h"

#include <civetweb.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cloudha {

absl::StatusOr<HostPort> CheckHttpListen(const std::string& listen) {
  absl::StatusOr<HostPort> split = SplitHostPort("listener", listen);
  if (!split.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", listen, "\" is not HOST:PORT (e.g. 0.0.0.0:7902 or [::]:7902): ", split.status().message()));
  }
  return split;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                              int threads, Handler handler) {
  if (absl::StatusOr<HostPort> split = CheckHttpListen(listen); !split.ok()) return split.status();
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(handler)));
  mg_init_library(0);
  const std::string thread_count = absl::StrCat(threads);
  const char* options[] = {"listening_ports",    listen.c_str(), "num_threads",
                           thread_count.c_str(), "request_timeout_ms", "1000",
                           "enable_keep_alive",  "no",           nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  // civetweb logs to stderr by default; its errors come back through
  // mg_start2's error text instead.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init;
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = options;
  char text[256] = {0};
  mg_error_data error;
  unsigned code = 0;
  error.code = &code;
  error.text = text;
  error.text_buffer_size = sizeof(text);
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ",
                                               text[0] != 0 ? text : "civetweb refused to start"));
  }
  mg_server_port ports[4];
  std::memset(ports, 0, sizeof(ports));
  int n = mg_get_server_ports(server->context_, 4, ports);
  server->port_ = n > 0 ? ports[0].port : 0;
  mg_set_request_handler(server->context_, "/", &HttpServer::Handle, server.get());
  return server;
}

HttpServer::~HttpServer() {
  if (context_ != nullptr) mg_stop(context_);
}

int HttpServer::Handle(mg_connection* conn, void* self) {
  const mg_request_info* request = mg_get_request_info(conn);
  const std::string method = request->request_method != nullptr ? request->request_method : "";
  const std::string path = request->local_uri != nullptr ? request->local_uri : "";
  HttpReply reply = static_cast<HttpServer*>(self)->handler_(method, path);
  const char* reason = reply.code == 200   ? "OK"
                       : reply.code == 503 ? "Service Unavailable"
                       : reply.code == 404 ? "Not Found"
                       : reply.code == 405 ? "Method Not Allowed"
                                           : "Error";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
            "Content-Length: %zu\r\nCache-Control: no-store\r\n%sConnection: close\r\n\r\n",
            reply.code, reason, reply.content_type.c_str(), reply.body.size(),
            reply.code == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (method != "HEAD") mg_write(conn, reply.body.data(), reply.body.size());
  return reply.code;
}

}  // namespace cloudha
