#include "agent/cli/admin_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/agent_config.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace cloudha {

absl::StatusOr<std::string> ResolveAdminSocket(const AdminTarget& target) {
  if (!target.socket.empty()) return target.socket;
  if (target.config.empty()) return std::string(kDefaultAdminSocket);
  LoadedConfig loaded = LoadAgentConfig(target.config, absl::Now(), TlsCheck::kSkip);
  if (!loaded.problems.empty()) {
    return absl::InvalidArgumentError(loaded.problems[0].ToString());
  }
  return loaded.config.admin().socket();
}

std::unique_ptr<v1::AdminService::Stub> ConnectAdmin(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);  // config list/export of a big store
  return v1::AdminService::NewStub(
      grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args));
}

}  // namespace cloudha
