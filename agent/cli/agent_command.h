// `cloudha agent --config FILE`: the long-running process.
#ifndef CLOUDHA_AGENT_CLI_AGENT_COMMAND_H_
#define CLOUDHA_AGENT_CLI_AGENT_COMMAND_H_

#include <string>

namespace cloudha {

// Refuses to start (exit 2) on any configuration problem; exits 1 when a
// listener cannot be opened; runs until SIGTERM or SIGINT, then turns health
// NOT_SERVING, shuts down and exits 0.
int RunAgent(const std::string& config_path);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_AGENT_COMMAND_H_
