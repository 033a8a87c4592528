#include "test/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"

extern char** environ;

namespace cloudha {
namespace {

std::optional<int> Decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv, const std::string& output_prefix) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  std::string out = output_prefix + ".out";
  std::string err = output_prefix + ".err";
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // A child that inherits blocked signals would ignore SIGTERM.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::InternalError(absl::StrCat("spawn ", argv[0], ": ", strerror(rc)));
  return std::unique_ptr<Subprocess>(new Subprocess(pid, output_prefix));
}

Subprocess::~Subprocess() {
  if (Running()) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(10));
  }
}

void Subprocess::Signal(int signal) {
  if (!exit_code_.has_value()) kill(pid_, signal);
}

bool Subprocess::Running() { return !Wait(absl::ZeroDuration()).has_value(); }

std::optional<int> Subprocess::Wait(absl::Duration timeout) {
  if (exit_code_.has_value()) return exit_code_;
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = Decode(status);
      return exit_code_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string Subprocess::Stdout() const {
  return ReadSmallFile(prefix_ + ".out").value_or("");
}

std::string Subprocess::Stderr() const {
  return ReadSmallFile(prefix_ + ".err").value_or("");
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         absl::Duration timeout) {
  static int counter = 0;
  CommandResult result;
  absl::StatusOr<std::unique_ptr<Subprocess>> p =
      Subprocess::Start(argv, absl::StrCat(scratch_dir, "/cmd", ++counter));
  if (!p.ok()) {
    result.err = std::string(p.status().message());
    return result;
  }
  std::optional<int> code = (*p)->Wait(timeout);
  if (!code.has_value()) {
    (*p)->Signal(SIGKILL);
    code = (*p)->Wait(absl::Seconds(10));
  }
  result.exit_code = code.value_or(-1);
  result.out = (*p)->Stdout();
  result.err = (*p)->Stderr();
  return result;
}

std::string CloudhaBinary() {
  // `bazel test` names the runfiles folder; `bazel run` and direct runs of a
  // benchmark find it beside the executable.
  const char* workspace = getenv("TEST_WORKSPACE");
  std::string root;
  if (const char* srcdir = getenv("TEST_SRCDIR")) {
    root = srcdir;
  } else if (const char* runfiles = getenv("RUNFILES_DIR")) {
    root = runfiles;
  } else {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    root = absl::StrCat(std::string(self, n > 0 ? n : 0), ".runfiles");
  }
  return absl::StrCat(root, "/", workspace ? workspace : "cloudha", "/agent/cli/cloudha");
}

std::string MakeShortTempDir() {
  char templ[] = "/tmp/cloudha-test-XXXXXX";
  const char* dir = mkdtemp(templ);
  return dir ? dir : "/tmp";
}

int PickUnusedPort() {
  // Below Linux's ephemeral range (32768-60999), so that no outgoing
  // connection takes the port between this check and the agent's bind; the
  // start is random so that tests running side by side rarely meet.
  static std::mt19937 random(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  std::uniform_int_distribution<int> pick(20000, 32000);
  // Never the same port twice in one test process: none is bound yet when
  // the next is picked.
  static std::set<int> given;
  for (int attempt = 0; attempt < 100; ++attempt) {
    int port = pick(random);
    if (!given.insert(port).second) continue;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (free) return port;
  }
  return 0;
}

}  // namespace cloudha
