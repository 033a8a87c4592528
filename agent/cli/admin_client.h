// How client subcommands find the agent: --socket PATH, or the admin.socket
// of --config FILE, or the default socket.
#ifndef CLOUDHA_AGENT_CLI_ADMIN_CLIENT_H_
#define CLOUDHA_AGENT_CLI_ADMIN_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cloudha/v1/admin.grpc.pb.h"

namespace cloudha {

struct AdminTarget {
  std::string config;  // --config FILE
  std::string socket;  // --socket PATH
};

// The socket path the options name.
absl::StatusOr<std::string> ResolveAdminSocket(const AdminTarget& target);

// A stub on the agent's admin socket.
std::unique_ptr<v1::AdminService::Stub> ConnectAdmin(const std::string& socket);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_ADMIN_CLIENT_H_
