#include "agent/cli/check_config_command.h"

#include <iostream>

#include "absl/time/clock.h"
#include "agent/agent_config.h"

namespace cloudha {

int RunCheckConfig(const std::string& path) {
  LoadedConfig loaded = LoadAgentConfig(path, absl::Now());
  for (const ConfigProblem& problem : loaded.problems) {
    std::cerr << problem.ToString() << "\n";
  }
  if (!loaded.problems.empty()) {
    std::cerr << path << ": " << loaded.problems.size() << " problem"
              << (loaded.problems.size() == 1 ? "" : "s") << "\n";
    return kExitBadConfig;
  }
  std::cout << path << ": ok (node " << loaded.config.node().id() << " of cluster "
            << loaded.config.cluster().name() << ", " << loaded.config.peers_size() << " peer"
            << (loaded.config.peers_size() == 1 ? "" : "s") << ")\n";
  return 0;
}

}  // namespace cloudha
