#include "agent/health_checks.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/command_runner.h"
#include "agent/agent_config.h"
#include "base/secure_file.h"

namespace cloudha {

absl::Status CheckCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  CommandOutcome outcome = RunCommand(argv, {}, timeout);
  if (outcome.ok()) return absl::OkStatus();
  std::string output(absl::StripAsciiWhitespace(outcome.output.substr(0, 200)));
  return absl::UnavailableError(
      output.empty() ? outcome.summary : absl::StrCat(outcome.summary, ": ", output));
}

absl::Status CheckTcpConnect(const std::string& address, absl::Duration timeout) {
  absl::StatusOr<HostPort> hp = ParseHostPort("address", address);
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  std::string port = absl::StrCat(hp->port);
  int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("resolve ", hp->host, ": ", gai_strerror(rc)));
  std::string failure = "no address";
  bool connected = false;
  for (addrinfo* ai = result; ai != nullptr && !connected; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      connected = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int ready;
      do {
        ready = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      } while (ready < 0 && errno == EINTR);
      if (ready < 0) {
        failure = strerror(errno);
      } else if (ready == 0) {
        failure = absl::StrCat("connect timed out after ", absl::FormatDuration(timeout));
      } else {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) {
          connected = true;
        } else {
          failure = strerror(err);
        }
      }
    } else {
      failure = strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(result);
  if (connected) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("connect ", address, ": ", failure));
}

absl::Status CheckInterface(const std::string& sysfs, const std::string& name) {
  std::string base = absl::StrCat(sysfs, "/", name);
  absl::StatusOr<std::string> state = ReadSmallFile(base + "/operstate");
  if (!state.ok()) return absl::UnavailableError(absl::StrCat("interface ", name, " not found"));
  std::string s(absl::StripAsciiWhitespace(*state));
  if (s == "up") return absl::OkStatus();
  if (s == "unknown") {
    absl::StatusOr<std::string> carrier = ReadSmallFile(base + "/carrier");
    if (carrier.ok() && absl::StripAsciiWhitespace(*carrier) == "1") return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat("interface ", name, " is ", s));
}

}  // namespace cloudha
