#include "agent/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace cloudha {
namespace {

int PidFdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

CommandOutcome RunCommand(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env, absl::Duration timeout) {
  CommandOutcome outcome;
  if (argv.empty()) {
    outcome.summary = "empty command";
    return outcome;
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    outcome.summary = absl::StrCat("pipe: ", strerror(errno));
    return outcome;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    if (env.count(key) == 0) env_strings.push_back(entry);
  }
  for (const auto& [key, value] : env) env_strings.push_back(absl::StrCat(key, "=", value));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  // Its own process group, so a timeout kills whatever it started too.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    outcome.summary = absl::StrCat("cannot run ", argv[0], ": ", strerror(rc));
    return outcome;
  }

  int pidfd = PidFdOpen(pid);
  const int64_t deadline = SteadyMillis() + absl::ToInt64Milliseconds(timeout);
  bool pipe_open = true;
  bool exited = false;
  while (!exited || pipe_open) {
    int64_t left = deadline - SteadyMillis();
    if (left <= 0 && !outcome.timed_out) {
      outcome.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
    }
    pollfd fds[2];
    int n = 0;
    if (pipe_open) fds[n++] = {pipe_fds[0], POLLIN, 0};
    if (!exited && pidfd >= 0) fds[n++] = {pidfd, POLLIN, 0};
    // Without a pidfd (old kernels) the exit is noticed by polling waitpid.
    int wait_ms = outcome.timed_out ? 100 : static_cast<int>(std::max<int64_t>(left, 0));
    if (pidfd < 0) wait_ms = std::min(wait_ms, 20);
    if (n == 0) break;
    int ready = poll(fds, n, wait_ms);
    if (ready < 0 && errno != EINTR) break;
    if (pipe_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buffer[4096];
      ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer));
      if (got > 0) {
        size_t room = kMaxCapturedOutput - std::min(kMaxCapturedOutput, outcome.output.size());
        outcome.output.append(buffer, std::min(room, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        pipe_open = false;
      }
    }
    if (!exited) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        if (WIFEXITED(status)) {
          outcome.exit_code = WEXITSTATUS(status);
          outcome.summary = absl::StrCat("exit ", outcome.exit_code);
        } else if (WIFSIGNALED(status)) {
          outcome.summary = absl::StrCat("killed by signal ", WTERMSIG(status));
        }
        // A child it left behind may hold the pipe open: stop reading soon.
        if (pipe_open) {
          pollfd rest{pipe_fds[0], POLLIN, 0};
          while (poll(&rest, 1, 50) > 0) {
            char buffer[4096];
            ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer));
            if (got <= 0) break;
            size_t room =
                kMaxCapturedOutput - std::min(kMaxCapturedOutput, outcome.output.size());
            outcome.output.append(buffer, std::min(room, static_cast<size_t>(got)));
          }
          pipe_open = false;
        }
      }
    }
  }
  if (pidfd >= 0) close(pidfd);
  close(pipe_fds[0]);
  if (outcome.timed_out) {
    outcome.exit_code = -1;
    outcome.summary = absl::StrCat("timed out after ", absl::FormatDuration(timeout));
  }
  return outcome;
}

}  // namespace cloudha
