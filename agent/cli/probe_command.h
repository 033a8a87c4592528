// `cloudha probe`: a gRPC health check with grpc_health_probe's flags and
// exit codes, so orchestration that used that tool can use this one.
#ifndef CLOUDHA_AGENT_CLI_PROBE_COMMAND_H_
#define CLOUDHA_AGENT_CLI_PROBE_COMMAND_H_

#include <string>

namespace cloudha {

// grpc_health_probe's exit codes.
inline constexpr int kProbeServing = 0;
inline constexpr int kProbeBadArguments = 1;
inline constexpr int kProbeConnectionFailure = 2;
inline constexpr int kProbeRpcFailure = 3;
inline constexpr int kProbeNotServing = 4;

struct ProbeOptions {
  std::string addr;
  std::string service;
  bool tls = false;
  std::string tls_ca_cert;
  std::string tls_client_cert;
  std::string tls_client_key;
  std::string tls_server_name;
  std::string connect_timeout = "1s";
  std::string rpc_timeout = "1s";
  std::string user_agent = "cloudha-probe";
  bool verbose = false;
};

int RunProbe(const ProbeOptions& options);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_PROBE_COMMAND_H_
