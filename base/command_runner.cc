#include "base/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

#include "google/protobuf/stubs/common.h"

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
                          const std::map<std::string, std::string>& env, absl::Duration timeout,
                          const absl::Notification* cancel) {
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
  // After the exit, output still in the pipe is read for a short while: a
  // background child that keeps the pipe open must not hold the caller.
  constexpr int64_t kDrainMs = 100;
  int64_t drain_until = 0;
  bool pipe_open = true;
  bool exited = false;
  bool killed = false;
  bool cancelled = false;
  int status = 0;
  auto append = [&](const char* data, ssize_t n) {
    size_t room = kMaxCapturedOutput - std::min(kMaxCapturedOutput, outcome.output.size());
    outcome.output.append(data, std::min(room, static_cast<size_t>(n)));
  };
  while (true) {
    int64_t now = SteadyMillis();
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      drain_until = now + kDrainMs;
    }
    if (exited && (!pipe_open || now >= drain_until)) break;
    if (!exited && !killed) {
      cancelled = cancel != nullptr && cancel->HasBeenNotified();
      if (now >= deadline || cancelled) {
        outcome.timed_out = !cancelled;
        // The whole process group: whatever the command started goes too.
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        killed = true;
      }
    }
    pollfd fds[2];
    int n = 0;
    if (pipe_open) fds[n++] = {pipe_fds[0], POLLIN, 0};
    if (!exited && pidfd >= 0) fds[n++] = {pidfd, POLLIN, 0};
    // Short slices: the deadline, a cancellation and (without a pidfd) the
    // exit are noticed within 50 ms.
    int64_t until = exited ? drain_until : (killed ? now + 50 : deadline);
    int wait_ms = static_cast<int>(std::clamp<int64_t>(until - now, 0, 50));
    int ready = poll(n > 0 ? fds : nullptr, n, wait_ms);
    if (ready <= 0 || !pipe_open) continue;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[4096];
      ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer));
      if (got > 0) {
        append(buffer, got);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        pipe_open = false;
      }
    }
  }
  if (pidfd >= 0) close(pidfd);
  close(pipe_fds[0]);
  if (WIFEXITED(status)) {
    outcome.exit_code = WEXITSTATUS(status);
    outcome.summary = absl::StrCat("exit ", outcome.exit_code);
  } else if (WIFSIGNALED(status)) {
    outcome.summary = absl::StrCat("killed by signal ", WTERMSIG(status));
  }
  if (outcome.timed_out || cancelled) {
    outcome.exit_code = -1;
    outcome.summary = cancelled ? std::string("cancelled: the agent is stopping")
                                : absl::StrCat("timed out after ", absl::FormatDuration(timeout));
  }
  // Output goes into logs, events and status (proto3 strings): bytes that
  // are not UTF-8 (binary output, a character cut at the size limit)
  // become '?'.
  google::protobuf::internal::UTF8CoerceToStructurallyValid(outcome.output, outcome.output.data(),
                                                            '?');
  return outcome;
}

}  // namespace cloudha
