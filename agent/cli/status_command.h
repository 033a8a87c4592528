// `cloudha status`: the node and its peers, as a table or JSON.
#ifndef CLOUDHA_AGENT_CLI_STATUS_COMMAND_H_
#define CLOUDHA_AGENT_CLI_STATUS_COMMAND_H_

#include <string>

#include "agent/cli/admin_client.h"
#include "cloudha/v1/admin.pb.h"

namespace cloudha {

// Returns the exit code: 0, or 1 when the agent cannot be reached.
int RunStatus(const AdminTarget& target, bool json);

// The human-readable rendering.
std::string FormatStatus(const v1::StatusResponse& status);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_STATUS_COMMAND_H_
