// `cloudha reload`: the agent rereads its configuration file, as on SIGHUP.
#ifndef CLOUDHA_AGENT_CLI_RELOAD_COMMAND_H_
#define CLOUDHA_AGENT_CLI_RELOAD_COMMAND_H_

#include "agent/cli/admin_client.h"

namespace cloudha {

// Exit 0 when the agent applied the file (printing what changed), 1 when it
// refused it (printing why: a section that needs a restart, or the file's
// problems) or cannot be reached.
int RunReload(const AdminTarget& target);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_RELOAD_COMMAND_H_
