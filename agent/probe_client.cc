#include "agent/probe_client.h"

#include <civetweb.h>

namespace cloudha {

ProbeAnswer ProbeRequest(int port, const std::string& method, const std::string& path) {
  char error[256] = {0};
  mg_connection* conn = mg_connect_client("127.0.0.1", port, 0, error, sizeof(error));
  if (conn == nullptr) return {};
  mg_printf(conn, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", method.c_str(),
            path.c_str());
  ProbeAnswer answer;
  if (mg_get_response(conn, error, sizeof(error), 5000) >= 0) {
    answer.code = mg_get_response_info(conn)->status_code;
    char buffer[512];
    int n;
    while ((n = mg_read(conn, buffer, sizeof(buffer))) > 0) answer.body.append(buffer, n);
  }
  mg_close_connection(conn);
  return answer;
}

bool ProbeConnects(int port) {
  char error[256] = {0};
  mg_connection* conn = mg_connect_client("127.0.0.1", port, 0, error, sizeof(error));
  if (conn == nullptr) return false;
  mg_close_connection(conn);
  return true;
}

}  // namespace cloudha
