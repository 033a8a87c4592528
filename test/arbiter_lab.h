// A lab for the split-brain arbiter: two agents (a, b) and the arbiter (w),
// a `cloudha witness` or an etcd, each in a network namespace of its own,
// joined by three veth pairs that can be cut: link 1 a-b (198.18.1.0/24),
// link 2 a-w (198.18.2.0/24), link 3 b-w (198.18.3.0/24). The arbiter
// listens on 198.18.2.3 and 198.18.3.3; etcd speaks mutual TLS with
// certificates from the cluster CA and keeps its data in the test's
// temporary folder. Needs root and `ip netns` (and etcd-server for etcd).
// Used by //test:arbiter_netns_test and //test/bench:arbiter_bench.
#ifndef CLOUDHA_TEST_ARBITER_LAB_H_
#define CLOUDHA_TEST_ARBITER_LAB_H_

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/etcd_test_server.h"
#include "test/subprocess.h"
#include "test/test_cluster.h"

namespace cloudha {

class ArbiterLab {
 public:
  // What keeps the lease in w.
  enum class Backend { kWitness, kEtcd };
  static const char* Name(Backend backend) {
    return backend == Backend::kEtcd ? "etcd" : "witness";
  }

  struct Options {
    // With etcd, whole seconds of at least 2000.
    int lease_ttl_ms = 1000;
    // STEP_DOWN or KEEP; "" runs the pair without an arbiter.
    std::string on_isolation = "STEP_DOWN";
    Backend backend = Backend::kWitness;
  };

  ArbiterLab();
  // Kills what runs and removes the namespaces.
  ~ArbiterLab();
  ArbiterLab(const ArbiterLab&) = delete;
  ArbiterLab& operator=(const ArbiterLab&) = delete;

  // Creates the namespaces and links. FAILED_PRECONDITION (the reason to
  // skip) without root or `ip netns`.
  absl::Status Create();
  // Starts the arbiter (with one), a (primary) and b (secondary following
  // a), and waits until a holds the lease (with an arbiter). The error says
  // what did not happen; FAILED_PRECONDITION when etcd is not installed.
  absl::Status StartPair(const Options& options);

  // Starts the arbiter of the options again (etcd: until it serves), or
  // kills it (SIGKILL, like a crash); its state stays.
  absl::Status StartArbiter();
  void KillArbiter();
  void SetLink(int link, bool up);
  // Links 1 and 2 (a) or 1 and 3 (b): everything of `node`.
  void Isolate(const std::string& node, bool isolated);

  struct Roles {
    bool a_primary = false;
    bool b_primary = false;
    // cloudha.v1.Primary SERVING (primary and its hooks done).
    bool a_serving = false;
    bool b_serving = false;
  };
  Roles Sample();
  // Samples every 20 ms for `d`: how long both were primary (samples x 20 ms).
  absl::Duration DualPrimaryOver(absl::Duration d);
  // `node` follows `primary` with the link up (bounded wait).
  bool Follows(const std::string& node, const std::string& primary,
               absl::Duration timeout = absl::Seconds(15));

  TestCluster& cluster() { return cluster_; }
  int lease_ttl_ms() const { return options_.lease_ttl_ms; }

 private:
  CommandResult Ip(std::vector<std::string> args);
  std::string Dev(int link, const std::string& side) const;
  absl::Status AddLink(int link, const std::string& x, const std::string& x_host,
                       const std::string& y, const std::string& y_host);
  std::string Config(const std::string& node) const;

  std::string tag_;
  std::map<std::string, std::string> ns_;
  std::map<int, std::pair<std::string, std::string>> ends_;
  bool created_ = false;
  Options options_;
  TestCluster cluster_{{"a", "b"}};
  std::unique_ptr<Subprocess> witness_;
  std::unique_ptr<EtcdTestServer> etcd_;
};

}  // namespace cloudha

#endif  // CLOUDHA_TEST_ARBITER_LAB_H_
