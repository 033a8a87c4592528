#include "test/bench/conntrackd_pair.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/substitute.h"
#include "absl/time/clock.h"

namespace cloudha {
namespace {

constexpr int kSyncPort = 3780;

// See the header for why each setting is what it is.
std::string ConfigText(const std::string& interface, const std::string& address,
                       const std::string& peer_address, const std::string& lock_path,
                       const std::string& socket_path, const std::string& log_path) {
  return absl::Substitute(
      R"(Sync {
	Mode FTFW {
		DisableExternalCache On
	}
	UDP {
		IPv4_address $1
		IPv4_Destination_Address $2
		Port $6
		Interface $0
		SndSocketBuffer 16777216
		RcvSocketBuffer 16777216
		Checksum on
	}
}
General {
	Systemd off
	HashSize 65536
	HashLimit 524288
	LogFile $5
	LockFile $3
	UNIX {
		Path $4
	}
	NetlinkBufferSize 134217728
	NetlinkBufferSizeMaxGrowth 268435456
	Filter From Userspace {
		Protocol Accept {
			TCP
		}
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address $1
			IPv4_address $2
		}
	}
}
)",
      interface, address, peer_address, lock_path, socket_path, log_path, kSyncPort);
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  if (std::fclose(file) != 0 || !written) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": write failed"));
  }
  return absl::OkStatus();
}

// True when something listens on the UNIX socket `path`.
bool Listening(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string Tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

}  // namespace

std::string ConntrackdPair::ConntrackdBinary() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  }
  dirs.push_back("/usr/sbin");
  dirs.push_back("/sbin");
  for (const std::string& dir : dirs) {
    std::string candidate = absl::StrCat(dir, "/conntrackd");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

ConntrackdPair::ConntrackdPair(std::string scratch_dir, std::string netns_a, std::string netns_b,
                               std::string interface_a, std::string interface_b,
                               std::string address_a, std::string address_b, std::string binary)
    : scratch_dir_(std::move(scratch_dir)),
      binary_(binary.empty() ? ConntrackdBinary() : std::move(binary)) {
  a_.name = "a";
  a_.netns = std::move(netns_a);
  a_.interface = std::move(interface_a);
  a_.address = address_a;
  a_.peer_address = address_b;
  b_.name = "b";
  b_.netns = std::move(netns_b);
  b_.interface = std::move(interface_b);
  b_.address = std::move(address_b);
  b_.peer_address = std::move(address_a);
  for (Daemon* daemon : {&a_, &b_}) {
    const std::string prefix = absl::StrCat(scratch_dir_, "/conntrackd-", daemon->name);
    daemon->config_path = prefix + ".conf";
    daemon->socket_path = prefix + ".ctl";
    daemon->lock_path = prefix + ".lock";
    daemon->log_path = prefix + ".log";
  }
}

ConntrackdPair::~ConntrackdPair() { Stop(); }

absl::Status ConntrackdPair::Start(absl::Duration timeout) {
  if (binary_.empty()) {
    return absl::FailedPreconditionError("conntrackd is not installed: apt-get install conntrackd");
  }
  if (a_.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scratch directory ", scratch_dir_, " is too long for a UNIX socket path (",
        a_.socket_path.size(), " bytes, at most ", sizeof(sockaddr_un::sun_path) - 1, ")"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status status = StartDaemon(a_);
  if (status.ok()) status = StartDaemon(b_);
  if (status.ok()) status = WaitReady(a_, deadline);
  if (status.ok()) status = WaitReady(b_, deadline);
  if (!status.ok()) Stop();
  return status;
}

absl::Status ConntrackdPair::StartDaemon(Daemon& daemon) {
  if (daemon.process != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("conntrackd ", daemon.name, " already runs: Stop() first"));
  }
  absl::Status written = WriteTextFile(
      daemon.config_path, ConfigText(daemon.interface, daemon.address, daemon.peer_address,
                                     daemon.lock_path, daemon.socket_path, daemon.log_path));
  if (!written.ok()) return written;
  // Left by a daemon that was killed; conntrackd refuses to start beside a
  // lock file.
  unlink(daemon.lock_path.c_str());
  unlink(daemon.socket_path.c_str());
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start({"ip", "netns", "exec", daemon.netns, binary_, "-C", daemon.config_path},
                        absl::StrCat(scratch_dir_, "/conntrackd-", daemon.name));
  if (!process.ok()) return process.status();
  daemon.process = std::move(*process);
  return absl::OkStatus();
}

absl::Status ConntrackdPair::WaitReady(Daemon& daemon, absl::Time deadline) {
  // The socket listens once the daemon has set up its netlink and UDP
  // sockets; `-s` then proves that its loop serves requests.
  while (!Listening(daemon.socket_path)) {
    if (!daemon.process->Running()) {
      return absl::FailedPreconditionError(absl::StrCat("conntrackd ", daemon.name, " in ",
                                                        daemon.netns, " exited: ", Output(daemon)));
    }
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat("conntrackd ", daemon.name, " in ", daemon.netns,
                                                 " did not open ", daemon.socket_path, ": ",
                                                 Output(daemon)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const CommandResult stats = RunCommand({binary_, "-C", daemon.config_path, "-s"}, scratch_dir_,
                                         std::max(deadline - absl::Now(), absl::Seconds(1)));
  if (stats.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("conntrackd ", daemon.name, " -s: exit ", stats.exit_code, ": ", stats.err));
  }
  return absl::OkStatus();
}

void ConntrackdPair::Stop() {
  // SIGTERM to both first, so that they wind down side by side.
  for (Daemon* daemon : {&a_, &b_}) {
    if (daemon->process != nullptr) daemon->process->Signal(SIGTERM);
  }
  for (Daemon* daemon : {&a_, &b_}) StopDaemon(*daemon);
}

void ConntrackdPair::StopDaemon(Daemon& daemon) {
  if (daemon.process == nullptr) return;
  if (!daemon.process->Wait(absl::Seconds(5)).has_value()) {
    daemon.process->Signal(SIGKILL);
    daemon.process->Wait(absl::Seconds(5));
  }
  daemon.process.reset();
  // A terminated daemon removes both itself; a killed one does not.
  unlink(daemon.lock_path.c_str());
  unlink(daemon.socket_path.c_str());
}

absl::Status ConntrackdPair::RequestResync() {
  const CommandResult result = RunCommand({binary_, "-C", b_.config_path, "-n"}, scratch_dir_);
  if (result.exit_code != 0) {
    return absl::UnavailableError(
        absl::StrCat("conntrackd b -n: exit ", result.exit_code, ": ", result.out, result.err));
  }
  return absl::OkStatus();
}

std::string ConntrackdPair::Stats(const std::string& node) {
  const Daemon& daemon = node == "a" ? a_ : b_;
  const CommandResult result = RunCommand({binary_, "-C", daemon.config_path, "-s"}, scratch_dir_);
  return result.exit_code == 0 ? result.out : "";
}

std::string ConntrackdPair::Output(const Daemon& daemon) const {
  // In the foreground conntrackd logs to stdout as well as to its log file.
  return Tail(absl::StrCat(daemon.process->Stdout(), daemon.process->Stderr()), 2000);
}

}  // namespace cloudha
