#include "agent/etcd_test_server.h"

#include <algorithm>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/command_runner.h"
#include "base/secure_file.h"

namespace cloudha {
namespace {

// What etcd logs once its client listeners serve requests.
constexpr char kServingMarker[] = "serving client traffic";

// The path of `name` on PATH ("" when absent); a path is taken as it is.
std::string FindInPath(const std::string& name) {
  if (absl::StrContains(name, "/")) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ReadFrom(const std::string& path, std::streamoff offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::streamoff SizeOf(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return in ? static_cast<std::streamoff>(in.tellg()) : 0;
}

}  // namespace

std::string EtcdTestServer::Binary() { return FindInPath("etcd"); }

int EtcdTestServer::PickUnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<std::unique_ptr<EtcdTestServer>> EtcdTestServer::Start(Options options,
                                                                       absl::Duration timeout) {
  const std::string etcd = Binary();
  if (etcd.empty()) {
    return absl::FailedPreconditionError("etcd is not installed (apt-get install etcd-server)");
  }
  if (absl::Status s = MakeDirectories(options.dir, 0700); !s.ok()) return s;
  const bool tls = !options.cert_file.empty();
  const std::string scheme = tls ? "https://" : "http://";
  std::vector<std::string> argv = options.wrapper;
  argv.insert(argv.end(),
              {etcd, "--name", "cloudha-test", "--data-dir", options.dir + "/data",
               "--listen-client-urls", scheme + options.client_listen, "--advertise-client-urls",
               scheme + options.client_advertise, "--listen-peer-urls",
               "http://" + options.peer, "--initial-advertise-peer-urls",
               "http://" + options.peer, "--initial-cluster",
               "cloudha-test=http://" + options.peer, "--logger", "zap", "--log-outputs",
               options.dir + "/etcd.log"});
  if (tls) {
    argv.insert(argv.end(),
                {"--cert-file", options.cert_file, "--key-file", options.key_file});
    if (!options.client_ca_file.empty()) {
      argv.insert(argv.end(),
                  {"--trusted-ca-file", options.client_ca_file, "--client-cert-auth"});
    }
  }
  argv[0] = FindInPath(argv[0]);
  if (argv[0].empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(options.wrapper.empty() ? etcd : options.wrapper[0], " is not on PATH"));
  }
  const std::string log = options.dir + "/etcd.log";
  const std::streamoff log_start = SizeOf(log);
  std::unique_ptr<EtcdTestServer> server(new EtcdTestServer(std::move(options)));
  auto output = std::make_shared<std::string>();
  EtcdTestServer* s = server.get();
  server->thread_ = std::thread([s, argv, output] {
    CommandOutcome outcome = RunCommand(argv, {}, absl::Hours(24), &s->kill_);
    *output = absl::StrCat(outcome.summary, "\n", outcome.output);
    s->exited_.Notify();
  });
  // Counted in 50 ms waits on etcd's exit, not read off the wall clock.
  const int64_t rounds = std::max<int64_t>(1, timeout / absl::Milliseconds(50));
  for (int64_t round = 0; round < rounds; ++round) {
    if (absl::StrContains(ReadFrom(log, log_start), kServingMarker)) return server;
    if (server->exited_.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      return absl::InternalError(absl::StrCat("etcd exited at start: ", *output, "\n",
                                              server->LogTail()));
    }
  }
  const std::string tail = server->LogTail();
  server.reset();  // kills etcd and waits: then its output is complete
  return absl::DeadlineExceededError(absl::StrCat("etcd did not serve clients within ",
                                                  absl::FormatDuration(timeout), ": ", *output,
                                                  "\n", tail));
}

EtcdTestServer::~EtcdTestServer() {
  kill_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::string EtcdTestServer::LogTail() const {
  const std::string text = ReadFrom(options_.dir + "/etcd.log", 0);
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

}  // namespace cloudha
