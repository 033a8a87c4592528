#include "test/arbiter_lab.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/secure_file.h"

namespace cloudha {

ArbiterLab::ArbiterLab() {
  tag_ = absl::StrCat(getpid() % 100000);
  for (const char* n : {"a", "b", "w"}) ns_[n] = absl::StrCat("cloudha-", tag_, "-", n);
}

ArbiterLab::~ArbiterLab() {
  for (const char* node : {"a", "b"}) cluster_.Kill(node, SIGKILL);
  witness_.reset();
  etcd_.reset();
  if (created_) {
    for (const char* n : {"a", "b", "w"}) Ip({"netns", "del", ns_[n]});
  }
}

CommandResult ArbiterLab::Ip(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  return RunCommand(args, cluster_.dir());
}

std::string ArbiterLab::Dev(int link, const std::string& side) const {
  return absl::StrCat("ca", tag_, side, link);  // at most 15 characters
}

absl::Status ArbiterLab::AddLink(int link, const std::string& x, const std::string& x_host,
                                 const std::string& y, const std::string& y_host) {
  ends_[link] = {x, y};
  CommandResult r = Ip({"link", "add", Dev(link, x), "netns", ns_[x], "type", "veth", "peer",
                        "name", Dev(link, y), "netns", ns_[y]});
  if (r.exit_code != 0) return absl::InternalError(absl::StrCat("ip link add: ", r.err));
  Ip({"-n", ns_[x], "addr", "add", absl::StrCat("198.18.", link, ".", x_host, "/24"), "dev",
      Dev(link, x)});
  Ip({"-n", ns_[y], "addr", "add", absl::StrCat("198.18.", link, ".", y_host, "/24"), "dev",
      Dev(link, y)});
  SetLink(link, true);
  return absl::OkStatus();
}

absl::Status ArbiterLab::Create() {
  if (geteuid() != 0) return absl::FailedPreconditionError("needs root to create network namespaces");
  CommandResult add = Ip({"netns", "add", ns_["a"]});
  if (add.exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat("ip netns add failed: ", add.err, add.out));
  }
  created_ = true;
  for (const char* n : {"b", "w"}) {
    if (Ip({"netns", "add", ns_[n]}).exit_code != 0) return absl::InternalError("ip netns add");
  }
  if (absl::Status s = AddLink(1, "a", "1", "b", "2"); !s.ok()) return s;
  if (absl::Status s = AddLink(2, "a", "1", "w", "3"); !s.ok()) return s;
  if (absl::Status s = AddLink(3, "b", "2", "w", "3"); !s.ok()) return s;
  for (const char* n : {"a", "b", "w"}) Ip({"-n", ns_[n], "link", "set", "lo", "up"});
  cluster_.WriteCertificate(cluster_.ca(), "demo", "witness", "witness");
  cluster_.WriteCertificate(cluster_.ca(), "demo", "etcd", "etcd");
  if (absl::Status s = WriteFileAtomically(
          cluster_.dir() + "/witness.textproto",
          "listen: \"0.0.0.0:7810\"\n"
          "tls { ca_file: \"ca.crt\" cert_file: \"witness.crt\" key_file: \"witness.key\" }\n"
          "state_dir: \"state-witness\"\n",
          0644, Overwrite::kReplace);
      !s.ok()) {
    return s;
  }
  return absl::OkStatus();
}

absl::Status ArbiterLab::StartArbiter() {
  if (options_.backend == Backend::kWitness) {
    auto p = Subprocess::Start({"ip", "netns", "exec", ns_["w"], CloudhaBinary(), "witness",
                                "--config", cluster_.dir() + "/witness.textproto"},
                               cluster_.dir() + "/witness");
    if (!p.ok()) return p.status();
    witness_ = *std::move(p);
    return absl::OkStatus();
  }
  if (EtcdTestServer::Binary().empty()) {
    return absl::FailedPreconditionError("etcd is not installed (apt-get install etcd-server)");
  }
  EtcdTestServer::Options etcd;
  etcd.wrapper = {"ip", "netns", "exec", ns_["w"]};
  // In the test's own temporary folder when there is one (a benchmark run
  // by hand has none), named after this lab's cluster folder (unique).
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string lab = cluster_.dir().substr(cluster_.dir().rfind('/') + 1);
  etcd.dir = tmp != nullptr ? absl::StrCat(tmp, "/etcd-", lab) : cluster_.dir() + "/etcd";
  etcd.client_listen = "0.0.0.0:2379";  // w's own addresses only
  etcd.client_advertise = "198.18.2.3:2379";
  etcd.peer = "127.0.0.1:2380";
  etcd.cert_file = cluster_.dir() + "/etcd.crt";
  etcd.key_file = cluster_.dir() + "/etcd.key";
  etcd.client_ca_file = cluster_.dir() + "/ca.crt";
  absl::StatusOr<std::unique_ptr<EtcdTestServer>> server = EtcdTestServer::Start(etcd);
  if (!server.ok()) return server.status();
  etcd_ = *std::move(server);
  return absl::OkStatus();
}

void ArbiterLab::KillArbiter() {
  etcd_.reset();
  if (witness_ == nullptr) return;
  witness_->Signal(SIGKILL);
  witness_->Wait(absl::Seconds(5));
}

void ArbiterLab::SetLink(int link, bool up) {
  for (const std::string& side : {ends_[link].first, ends_[link].second}) {
    Ip({"-n", ns_[side], "link", "set", Dev(link, side), up ? "up" : "down"});
  }
}

void ArbiterLab::Isolate(const std::string& node, bool isolated) {
  SetLink(1, !isolated);
  SetLink(node == "a" ? 2 : 3, !isolated);
}

std::string ArbiterLab::Config(const std::string& node) const {
  const bool a = node == "a";
  std::string text = absl::StrCat(
      "cluster { name: \"demo\" group_id: 7 }\n", "node { id: \"", node,
      "\" priority: ", a ? 200 : 100, " }\n", "listen: \"0.0.0.0:7801\"\n", "peers { id: \"",
      a ? "b" : "a", "\" addresses: \"198.18.1.", a ? "2" : "1", ":7801\" }\n",
      "tls { ca_file: \"ca.crt\" cert_file: \"", node, ".crt\" key_file: \"", node, ".key\" }\n",
      "heartbeat { interval_ms: 100 lost_threshold: 5 }\n",
      "election { hello_holddown_s: 1 failover_hold_s: 0 }\n", "admin { socket: \"", node,
      ".sock\" }\n", "state_dir: \"state-", node, "\"\n");
  if (options_.on_isolation.empty()) return text;
  const char* w = a ? "198.18.2.3" : "198.18.3.3";
  const std::string backend =
      options_.backend == Backend::kEtcd
          ? absl::StrCat("etcd { endpoints: \"", w,
                         ":2379\" tls { ca_file: \"ca.crt\" cert_file: \"", node,
                         ".crt\" key_file: \"", node,
                         ".key\" } server_name: \"etcd.demo.cloudha\" }")
          : absl::StrCat("witness { addresses: \"", w, ":7810\" }");
  absl::StrAppend(&text, "arbiter { ", backend, " lease_ttl_ms: ", options_.lease_ttl_ms,
                  " on_isolation: ", options_.on_isolation, " }\n");
  return text;
}

absl::Status ArbiterLab::StartPair(const Options& options) {
  options_ = options;
  if (!options_.on_isolation.empty()) {
    if (absl::Status s = StartArbiter(); !s.ok()) return s;
  }
  for (const char* node : {"a", "b"}) cluster_.WriteConfig(node, Config(node));
  if (cluster_.Start("a", {"ip", "netns", "exec", ns_["a"]}) == nullptr ||
      cluster_.Start("b", {"ip", "netns", "exec", ns_["b"]}) == nullptr) {
    return absl::InternalError("cannot start the agents");
  }
  if (!cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
        return s.role() == v1::PRIMARY;
      })) {
    return absl::InternalError(absl::StrCat("a did not become primary\n", Logs(cluster_.agent("a"))));
  }
  if (!options_.on_isolation.empty() &&
      !cluster_.WaitFor("a", [](const v1::StatusResponse& s) {
        return s.arbiter().lease_held();
      })) {
    return absl::InternalError(absl::StrCat("a did not get the lease\n", Logs(cluster_.agent("a"))));
  }
  if (!Follows("b", "a")) {
    return absl::InternalError(absl::StrCat("b does not follow a\n", Logs(cluster_.agent("b"))));
  }
  return absl::OkStatus();
}

ArbiterLab::Roles ArbiterLab::Sample() {
  Roles r;
  absl::StatusOr<v1::StatusResponse> a = cluster_.Status("a");
  absl::StatusOr<v1::StatusResponse> b = cluster_.Status("b");
  r.a_primary = a.ok() && a->role() == v1::PRIMARY;
  r.b_primary = b.ok() && b->role() == v1::PRIMARY;
  r.a_serving = r.a_primary && a->primary_ready();
  r.b_serving = r.b_primary && b->primary_ready();
  return r;
}

absl::Duration ArbiterLab::DualPrimaryOver(absl::Duration d) {
  int dual = 0;
  for (absl::Time end = absl::Now() + d; absl::Now() < end;) {
    Roles s = Sample();
    if (s.a_primary && s.b_primary) ++dual;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::Milliseconds(20) * dual;
}

bool ArbiterLab::Follows(const std::string& node, const std::string& primary,
                         absl::Duration timeout) {
  return cluster_.WaitFor(
      node,
      [&](const v1::StatusResponse& s) {
        return s.role() == v1::SECONDARY && s.primary() == primary && s.peers_size() > 0 &&
               s.peers(0).state() == v1::PeerStatus::UP;
      },
      timeout);
}

}  // namespace cloudha
