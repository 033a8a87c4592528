// Real processes for end-to-end tests: start, signal, wait, capture output.
#ifndef CLOUDHA_TEST_SUBPROCESS_H_
#define CLOUDHA_TEST_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cloudha {

// One child process whose stdout and stderr go to files; argv[0] is looked
// up in PATH. Not thread-safe.
// The destructor kills (SIGKILL) a child still running.
class Subprocess {
 public:
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const std::string& output_prefix);
  ~Subprocess();

  pid_t pid() const { return pid_; }
  void Signal(int signal);
  // The exit code (128 + signal when killed), or nullopt if still running
  // after `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  bool Running();
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  Subprocess(pid_t pid, std::string prefix) : pid_(pid), prefix_(std::move(prefix)) {}
  pid_t pid_;
  std::string prefix_;
  std::optional<int> exit_code_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion (killed after `timeout`).
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         absl::Duration timeout = absl::Seconds(30));

// The path of the cloudha binary in the test's runfiles.
std::string CloudhaBinary();

// A fresh folder with a short path (Unix socket paths hold 107 bytes), removed
// by the caller's fixture.
std::string MakeShortTempDir();

// A TCP port on 127.0.0.1 that was free a moment ago.
int PickUnusedPort();

}  // namespace cloudha

#endif  // CLOUDHA_TEST_SUBPROCESS_H_
