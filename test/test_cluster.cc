#include "test/test_cluster.h"

#include <signal.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cloudha/v1/admin.grpc.pb.h"
#include "base/secure_file.h"
#include "grpcpp/create_channel.h"

namespace cloudha {

TestCluster::TestCluster(std::vector<std::string> nodes, std::string cluster, uint32_t group_id)
    : nodes_(std::move(nodes)),
      cluster_(std::move(cluster)),
      group_id_(group_id),
      dir_(MakeShortTempDir()) {
  Validity validity{absl::Now() - absl::Hours(1), absl::Hours(24)};
  ca_ = CreateClusterCa(cluster_, validity).value();
  WriteFileAtomically(dir_ + "/ca.crt", ca_.cert_pem, 0644, Overwrite::kReplace).IgnoreError();
  for (const std::string& node : nodes_) {
    WriteCertificate(ca_, cluster_, node, node);
    ports_[node] = PickUnusedPort();
    health_ports_[node] = PickUnusedPort();
  }
}

TestCluster::~TestCluster() {
  agents_.clear();  // kills what still runs
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TestCluster::socket(const std::string& node) const {
  return absl::StrCat(dir_, "/", node, ".sock");
}

std::string TestCluster::config_path(const std::string& node) const {
  return absl::StrCat(dir_, "/", node, ".textproto");
}

void TestCluster::WriteCertificate(const PemPair& ca, const std::string& cluster,
                                   const std::string& node, const std::string& name) {
  Validity validity{absl::Now() - absl::Hours(1), absl::Hours(24)};
  PemPair pair = IssueNodeCertificate(ca, {cluster, node}, validity).value();
  WriteFileAtomically(absl::StrCat(dir_, "/", name, ".crt"), pair.cert_pem, 0644,
                      Overwrite::kReplace)
      .IgnoreError();
  WriteFileAtomically(absl::StrCat(dir_, "/", name, ".key"), pair.key_pem, 0600,
                      Overwrite::kReplace)
      .IgnoreError();
}

std::unique_ptr<grpc::health::v1::Health::Stub> TestCluster::HealthStub(
    const std::string& node) const {
  return grpc::health::v1::Health::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", health_ports_.at(node)), grpc::InsecureChannelCredentials()));
}

std::string TestCluster::Config(const std::string& node, const Settings& settings) const {
  std::string text = absl::StrCat(
      "cluster { name: \"", cluster_, "\" group_id: ", group_id_, " }\n", "node { id: \"", node,
      "\"", settings.priority >= 0 ? absl::StrCat(" priority: ", settings.priority) : "", " }\n",
      "listen: \"127.0.0.1:", ports_.at(node), "\"\n");
  for (const std::string& peer : settings.peers.empty() ? nodes_ : settings.peers) {
    if (peer == node) continue;
    absl::StrAppend(&text, "peers { id: \"", peer, "\" addresses: \"127.0.0.1:", ports_.at(peer),
                    "\" }\n");
  }
  absl::StrAppend(&text, "tls { ca_file: \"ca.crt\" cert_file: \"", node, ".crt\" key_file: \"",
                  node, ".key\" }\n", "heartbeat { interval_ms: ", settings.interval_ms,
                  " lost_threshold: ", settings.lost_threshold, " }\n", "admin { socket: \"", node,
                  ".sock\" }\n", "health { listen: \"127.0.0.1:", health_ports_.at(node), "\" }\n",
                  "state_dir: \"state-", node, "\"\n");
  if (!settings.election.empty()) absl::StrAppend(&text, "election { ", settings.election, " }\n");
  return text + settings.extra;
}

void TestCluster::WriteConfig(const std::string& node, const std::string& text) {
  WriteFileAtomically(config_path(node), text.empty() ? DefaultConfig(node) : text, 0644,
                      Overwrite::kReplace)
      .IgnoreError();
  written_[node] = true;
}

Subprocess* TestCluster::Start(const std::string& node, const std::vector<std::string>& wrapper) {
  if (!written_[node]) WriteConfig(node);
  std::vector<std::string> argv = wrapper;
  for (const std::string& arg : {CloudhaBinary(), std::string("agent"), std::string("--config"),
                                 config_path(node)}) {
    argv.push_back(arg);
  }
  auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/", node, "-agent"));
  if (!p.ok()) return nullptr;
  agents_[node] = *std::move(p);
  return agents_[node].get();
}

void TestCluster::Kill(const std::string& node, int signal) {
  auto it = agents_.find(node);
  if (it != agents_.end()) it->second->Signal(signal);
}

absl::StatusOr<v1::StatusResponse> TestCluster::Status(const std::string& node) {
  auto stub = v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + socket(node), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::StatusResponse response;
  grpc::Status s = stub->GetStatus(&context, v1::GetStatusRequest(), &response);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return response;
}

bool TestCluster::WaitFor(const std::string& node,
                          const std::function<bool(const v1::StatusResponse&)>& condition,
                          absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::StatusResponse> status = Status(node);
    if (status.ok() && condition(*status)) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

bool TestCluster::WaitForPeerState(const std::string& node, const std::string& peer,
                                   v1::PeerStatus::State state, absl::Duration timeout) {
  return WaitFor(
      node,
      [&](const v1::StatusResponse& s) {
        for (const auto& p : s.peers()) {
          if (p.id() == peer) return p.state() == state;
        }
        return false;
      },
      timeout);
}

CommandResult TestCluster::Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {CloudhaBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, dir_);
}

std::string Logs(Subprocess* agent) {
  return agent == nullptr ? "(no agent)" : agent->Stderr();
}

bool WaitForLog(Subprocess* agent, const std::string& text, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (Logs(agent).find(text) != std::string::npos) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

}  // namespace cloudha
