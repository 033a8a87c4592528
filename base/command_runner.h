// Runs an executable (no shell) with a timeout, its environment and its
// output captured: what exec monitors and hooks share.
#ifndef CLOUDHA_BASE_COMMAND_RUNNER_H_
#define CLOUDHA_BASE_COMMAND_RUNNER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cloudha {

struct CommandOutcome {
  // The exit code; -1 when it did not exit normally (killed, timed out, or
  // could not start).
  int exit_code = -1;
  bool timed_out = false;
  // stdout and stderr together, at most kMaxCapturedOutput bytes; bytes
  // that are not UTF-8 are replaced by '?'.
  std::string output;
  // Why it failed, in a few words ("exit 3", "killed by signal 9",
  // "timed out after 2s", "cannot run /x: No such file or directory").
  std::string summary;

  bool ok() const { return exit_code == 0 && !timed_out; }
};

inline constexpr size_t kMaxCapturedOutput = 64 * 1024;

// Runs argv[0] (a path) with argv[1..] and `env` added to the agent's
// environment, stdin from /dev/null, in a process group of its own. After
// `timeout`, or when `cancel` (if given) is notified, the process group is
// killed (SIGKILL). Blocks the calling thread until the command exited and
// its output was read (at most 100 ms past the exit: a background child
// that keeps the pipe open is not waited for; it is left running after a
// normal exit). Thread-safe.
CommandOutcome RunCommand(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env, absl::Duration timeout,
                          const absl::Notification* cancel = nullptr);

}  // namespace cloudha

#endif  // CLOUDHA_BASE_COMMAND_RUNNER_H_
