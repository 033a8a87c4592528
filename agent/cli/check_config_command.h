// `cloudha check-config FILE`.
#ifndef CLOUDHA_AGENT_CLI_CHECK_CONFIG_COMMAND_H_
#define CLOUDHA_AGENT_CLI_CHECK_CONFIG_COMMAND_H_

#include <string>

namespace cloudha {

inline constexpr int kExitBadConfig = 2;

// Prints "FILE:LINE: problem" for each problem to stderr. Returns 0 when the
// file is good, kExitBadConfig when not.
int RunCheckConfig(const std::string& path);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_CHECK_CONFIG_COMMAND_H_
