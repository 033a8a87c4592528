// `cloudha sessions [--count] [--lag] [--limit N] [--filter F]... [--json]`:
// the session table of a node (the source on a primary, the replica on a
// secondary).
#ifndef CLOUDHA_AGENT_CLI_SESSIONS_COMMAND_H_
#define CLOUDHA_AGENT_CLI_SESSIONS_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agent/cli/admin_client.h"

namespace cloudha {

struct SessionsOptions {
  AdminTarget target;
  bool count = false;  // only the number of sessions (matching the filters)
  bool lag = false;    // replication state and lag
  uint64_t limit = 0;  // at most N sessions (0 = all)
  std::vector<std::string> filters;
  bool json = false;
};

// Exit 0 on success, 1 when the agent cannot be reached or refuses.
int RunSessions(const SessionsOptions& options);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_SESSIONS_COMMAND_H_
