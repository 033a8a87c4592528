// A cluster of real `cloudha agent` processes on loopback for end-to-end
// tests: a CA and node certificates, one configuration file per node with
// free ports, and admin-socket clients.
#ifndef CLOUDHA_TEST_TEST_CLUSTER_H_
#define CLOUDHA_TEST_TEST_CLUSTER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cloudha/v1/admin.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "crypto/certificate_authority.h"
#include "test/subprocess.h"

namespace cloudha {

// Not thread-safe. Everything it starts or writes goes away with it.
class TestCluster {
 public:
  explicit TestCluster(std::vector<std::string> nodes, std::string cluster = "demo",
                       uint32_t group_id = 7);
  ~TestCluster();

  const std::string& dir() const { return dir_; }
  const PemPair& ca() const { return ca_; }
  int port(const std::string& node) const { return ports_.at(node); }
  int health_port(const std::string& node) const { return health_ports_.at(node); }
  std::string socket(const std::string& node) const;
  std::string config_path(const std::string& node) const;

  // What a test may change in a node's configuration.
  struct Settings {
    int priority = -1;  // -1: the default
    int interval_ms = 100;
    int lost_threshold = 5;
    // Inside election { ... }; empty: no election block.
    std::string election;
    // Appended as is (monitors, hooks).
    std::string extra;
    // The peers this node knows; empty: every other node.
    std::vector<std::string> peers;
  };

  // The configuration text this cluster would give `node`.
  std::string DefaultConfig(const std::string& node) const { return Config(node, Settings()); }
  std::string Config(const std::string& node, const Settings& settings) const;

  // A grpc.health.v1 client on `node`'s plaintext health listener.
  std::unique_ptr<grpc::health::v1::Health::Stub> HealthStub(const std::string& node) const;
  // Writes `text` as `node`'s configuration (DefaultConfig when empty).
  void WriteConfig(const std::string& node, const std::string& text = "");
  // Writes a certificate and key for `node` of `cluster` signed by `ca`, as
  // DIR/NAME.crt and DIR/NAME.key.
  void WriteCertificate(const PemPair& ca, const std::string& cluster, const std::string& node,
                        const std::string& name);

  // Starts `cloudha agent` for `node` (writing its default configuration if
  // none was written), behind `wrapper` if given (e.g. ip netns exec NS).
  Subprocess* Start(const std::string& node, const std::vector<std::string>& wrapper = {});
  Subprocess* agent(const std::string& node) { return agents_.at(node).get(); }
  void Kill(const std::string& node, int signal);

  absl::StatusOr<v1::StatusResponse> Status(const std::string& node);
  // Polls `node`'s status until `condition` holds or `timeout` passes.
  bool WaitFor(const std::string& node,
               const std::function<bool(const v1::StatusResponse&)>& condition,
               absl::Duration timeout = absl::Seconds(15));
  bool WaitForPeerState(const std::string& node, const std::string& peer,
                        v1::PeerStatus::State state, absl::Duration timeout = absl::Seconds(15));

  // Runs the cloudha binary with `args`.
  CommandResult Cli(const std::vector<std::string>& args);

 private:
  std::vector<std::string> nodes_;
  std::string cluster_;
  uint32_t group_id_;
  std::string dir_;
  PemPair ca_;
  std::map<std::string, int> ports_;
  std::map<std::string, int> health_ports_;
  std::map<std::string, bool> written_;
  std::map<std::string, std::unique_ptr<Subprocess>> agents_;
};

// The whole of an agent's log, for failure messages.
std::string Logs(Subprocess* agent);

// Polls `agent`'s log until it holds `text` or `timeout` passes.
bool WaitForLog(Subprocess* agent, const std::string& text,
                absl::Duration timeout = absl::Seconds(10));

}  // namespace cloudha

#endif  // CLOUDHA_TEST_TEST_CLUSTER_H_
