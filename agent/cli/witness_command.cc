#include "agent/cli/witness_command.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent_config.h"
#include "agent/cli/check_config_command.h"
#include "agent/cli/process_signals.h"
#include "agent/grpc_endpoints.h"
#include "agent/tls_watcher.h"
#include "agent/witness_leases.h"
#include "agent/witness_service.h"
#include "base/log.h"
#include "base/real_clock.h"
#include "base/secure_file.h"
#include "crypto/node_identity.h"
#include "crypto/reloadable_credentials.h"
#include "crypto/tls_material.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {

namespace {

constexpr char kDefaultWitnessStateDir[] = "/var/lib/cloudha-witness";

void Resolve(const std::string& folder, std::string* path) {
  if (!path->empty() && (*path)[0] != '/') *path = absl::StrCat(folder, "/", *path);
}

}  // namespace

absl::StatusOr<v1::WitnessConfig> LoadWitnessConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  v1::WitnessConfig c;
  if (absl::EndsWith(path, ".json")) {
    auto s = google::protobuf::util::JsonStringToMessage(*text, &c);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a valid JSON WitnessConfig: ", s.message().as_string()));
    }
  } else if (!google::protobuf::TextFormat::ParseFromString(*text, &c)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a valid textproto WitnessConfig (see docs/arbiter.md)"));
  }
  std::string folder = path.rfind('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  std::vector<std::string> problems;
  if (c.listen().empty()) {
    problems.push_back("listen: \"HOST:PORT\" is required");
  } else if (absl::StatusOr<HostPort> hp = ParseHostPort("listen", c.listen()); !hp.ok()) {
    problems.push_back(std::string(hp.status().message()));
  }
  if (c.tls().ca_file().empty() || c.tls().cert_file().empty() || c.tls().key_file().empty()) {
    problems.push_back("tls { ca_file cert_file key_file } are required");
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", absl::StrJoin(problems, absl::StrCat("\n", path, ": "))));
  }
  if (c.state_dir().empty()) c.set_state_dir(kDefaultWitnessStateDir);
  Resolve(folder, c.mutable_tls()->mutable_ca_file());
  Resolve(folder, c.mutable_tls()->mutable_cert_file());
  Resolve(folder, c.mutable_tls()->mutable_key_file());
  Resolve(folder, c.mutable_state_dir());
  return c;
}

int RunWitness(const std::string& config_path) {
  // As the agent's: SIGHUP rereads the TLS files, SIGTERM and SIGINT stop.
  const sigset_t signals = TakeProcessSignals();

  RealClock clock;
  absl::StatusOr<v1::WitnessConfig> config = LoadWitnessConfig(config_path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\ncloudha witness: refusing to start\n";
    return kExitBadConfig;
  }
  ConfigureLogging(config->log().format() == v1::LogConfig::JSON ? LogFormat::kJson
                                                                 : LogFormat::kText,
                   config->log().level() == v1::LogConfig::DEBUG ? LogLevel::kDebug
                                                                 : LogLevel::kInfo);
  absl::StatusOr<TlsMaterial> tls = LoadTlsMaterial(
      {config->tls().ca_file(), config->tls().cert_file(), config->tls().key_file()},
      clock.WallNow());
  if (!tls.ok()) {
    std::cerr << config_path << ": " << tls.status().message()
              << "\ncloudha witness: refusing to start\n";
    return kExitBadConfig;
  }
  absl::StatusOr<std::unique_ptr<WitnessLeases>> leases =
      WitnessLeases::Open(config->state_dir(), tls->identity.node, &clock);
  if (!leases.ok()) {
    LogEvent(LogLevel::kError, "witness_failed", {{"reason", leases.status().message()}});
    return 1;
  }
  // New TLS files are taken as the agent takes them (agent/tls_watcher.h).
  absl::StatusOr<std::unique_ptr<ReloadableCredentials>> credentials =
      ReloadableCredentials::Create(config->state_dir() + "/tls", *tls);
  if (!credentials.ok()) {
    LogEvent(LogLevel::kError, "witness_failed", {{"reason", credentials.status().message()}});
    return 1;
  }
  TlsWatcher tls_watcher(
      {{config->tls().ca_file(), config->tls().cert_file(), config->tls().key_file()},
       /*poll_interval=*/absl::Seconds(1),
       /*expiry_interval=*/absl::Hours(1),
       /*pick_up=*/2 * ReloadableCredentials::kRefreshInterval},
      *tls, &clock,
      [&](const TlsMaterial& material) { return (*credentials)->Install(material); },
      [](const TlsWatcher::Notice& notice) {
        LogEvent(notice.level, notice.event, {{"message", notice.message}});
      });
  WitnessServiceImpl service(leases->get(), tls->identity.cluster);
  absl::StatusOr<std::unique_ptr<grpc::Server>> server =
      StartWitnessServer(config->listen(), (*credentials)->server_credentials(), &service);
  if (!server.ok()) {
    LogEvent(LogLevel::kError, "witness_failed", {{"reason", server.status().message()}});
    return 1;
  }
  LogEvent(LogLevel::kInfo, "witness_started",
           {{"listen", config->listen()},
            {"id", tls->identity.node},
            {"cluster", tls->identity.cluster},
            {"state_dir", config->state_dir()}});
  tls_watcher.Start();
  const int signal_number = WaitForStop(signals, [&] { tls_watcher.ReloadNow(); });
  LogEvent(LogLevel::kInfo, "witness_stopping", {{"signal", strsignal(signal_number)}});
  tls_watcher.Stop();
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace cloudha
