// Test client of the probe listeners (agent/http_probe.h): one request as a
// load balancer makes it, with civetweb's own client.
#ifndef CLOUDHA_AGENT_PROBE_CLIENT_H_
#define CLOUDHA_AGENT_PROBE_CLIENT_H_

#include <string>

namespace cloudha {

struct ProbeAnswer {
  int code = 0;  // 0: no connection or no answer
  std::string body;
};

// METHOD PATH to 127.0.0.1:PORT, at most 5 s.
ProbeAnswer ProbeRequest(int port, const std::string& method, const std::string& path);

// Whether a TCP connection to 127.0.0.1:PORT opens (a TCP health check).
bool ProbeConnects(int port);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_PROBE_CLIENT_H_
