// The checks local monitors run: a command's exit code, a TCP connect, an
// interface's link state. Each returns OK when passing, or why not.
//
// Thread-safe: the functions keep no state. They block for at most the
// timeout given.
#ifndef CLOUDHA_AGENT_HEALTH_CHECKS_H_
#define CLOUDHA_AGENT_HEALTH_CHECKS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cloudha {

// Passes when the command exits 0 within `timeout`.
absl::Status CheckCommand(const std::vector<std::string>& argv, absl::Duration timeout);

// Passes when a TCP connection to host:port opens within `timeout`.
absl::Status CheckTcpConnect(const std::string& address, absl::Duration timeout);

// Passes when SYSFS/NAME/operstate says "up" (or "unknown" with carrier 1,
// as loopback and tunnels report). `sysfs` is normally /sys/class/net.
absl::Status CheckInterface(const std::string& sysfs, const std::string& name);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_HEALTH_CHECKS_H_
