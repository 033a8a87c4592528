#include "agent/cli/probe_command.h"

#include <iostream>

#include "absl/time/time.h"
#include "base/secure_file.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace cloudha {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

int BadArguments(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return kProbeBadArguments;
}

bool ParseTimeout(const std::string& text, absl::Duration* out) {
  return absl::ParseDuration(text, out) && *out > absl::ZeroDuration();
}

}  // namespace

int RunProbe(const ProbeOptions& o) {
  if (o.addr.empty()) return BadArguments("--addr not specified");
  absl::Duration connect_timeout, rpc_timeout;
  if (!ParseTimeout(o.connect_timeout, &connect_timeout)) {
    return BadArguments("--connect-timeout must be a positive duration such as 1s or 250ms");
  }
  if (!ParseTimeout(o.rpc_timeout, &rpc_timeout)) {
    return BadArguments("--rpc-timeout must be a positive duration such as 1s or 250ms");
  }
  if (!o.tls && (!o.tls_ca_cert.empty() || !o.tls_client_cert.empty() ||
                 !o.tls_client_key.empty() || !o.tls_server_name.empty())) {
    return BadArguments("--tls-* flags given without --tls");
  }
  if (o.tls_client_cert.empty() != o.tls_client_key.empty()) {
    return BadArguments("--tls-client-cert and --tls-client-key go together");
  }

  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  args.SetUserAgentPrefix(o.user_agent);
  if (o.tls) {
    grpc::SslCredentialsOptions ssl;
    struct File {
      const std::string& path;
      std::string* into;
      const char* flag;
    };
    for (const File& f : {File{o.tls_ca_cert, &ssl.pem_root_certs, "--tls-ca-cert"},
                          File{o.tls_client_cert, &ssl.pem_cert_chain, "--tls-client-cert"},
                          File{o.tls_client_key, &ssl.pem_private_key, "--tls-client-key"}}) {
      if (f.path.empty()) continue;
      absl::StatusOr<std::string> content = ReadSmallFile(f.path);
      if (!content.ok()) {
        return BadArguments(std::string(f.flag) + ": " + std::string(content.status().message()));
      }
      *f.into = *content;
    }
    credentials = grpc::SslCredentials(ssl);
    if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  }

  auto channel = grpc::CreateCustomChannel(o.addr, credentials, args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + connect_timeout))) {
    std::cerr << "timeout: failed to connect service \"" << o.addr << "\" within "
              << absl::FormatDuration(connect_timeout) << "\n";
    return kProbeConnectionFailure;
  }
  if (o.verbose) std::cerr << "established connection to " << o.addr << "\n";

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout));
  HealthCheckRequest request;
  request.set_service(o.service);
  HealthCheckResponse response;
  grpc::Status status = Health::NewStub(channel)->Check(&context, request, &response);
  if (!status.ok()) {
    switch (status.error_code()) {
      case grpc::StatusCode::UNIMPLEMENTED:
        std::cerr << "error: this server does not implement the grpc health protocol "
                     "(grpc.health.v1.Health): "
                  << status.error_message() << "\n";
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        std::cerr << "timeout: health rpc did not complete within "
                  << absl::FormatDuration(rpc_timeout) << "\n";
        break;
      default:
        std::cerr << "error: health rpc failed: code = " << status.error_code()
                  << " desc = " << status.error_message() << "\n";
    }
    return kProbeRpcFailure;
  }
  if (response.status() != HealthCheckResponse::SERVING) {
    std::cerr << "service unhealthy (responded with \""
              << HealthCheckResponse::ServingStatus_Name(response.status()) << "\")\n";
    return kProbeNotServing;
  }
  std::cout << "status: SERVING\n";
  return kProbeServing;
}

}  // namespace cloudha
