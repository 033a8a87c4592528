// `cloudha failover [--to NODE]` and `cloudha events [--follow]`.
#ifndef CLOUDHA_AGENT_CLI_FAILOVER_COMMAND_H_
#define CLOUDHA_AGENT_CLI_FAILOVER_COMMAND_H_

#include <string>

#include "agent/cli/admin_client.h"

namespace cloudha {

// Hands the primary role over gracefully; run on the primary. Exit 0 when
// the new primary took the role, 1 when refused (with the reason) or when it
// did not within `timeout_s`.
int RunFailover(const AdminTarget& target, const std::string& to, int timeout_s);

// Prints the event history, and with `follow` new events as they happen
// (until interrupted). `json`: one JSON object per line.
int RunEvents(const AdminTarget& target, bool follow, bool json);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_FAILOVER_COMMAND_H_
