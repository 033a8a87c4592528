// Fuzzes what a peer's hellos reach: PeerVerifier's checks, then Membership
// (agent/membership.h: OnInboundHello, OnReply, OnHelloSent, status) and the
// role logic stepped on them (agent/node_core.h: NodeCore::Step, the role
// machine, the election and the arbiter's rules), as the agent's hello
// threads and role thread drive them, on explicit time.
//
// Input: a byte of variant flags (bit 0: override; bit 1: an arbiter; bit 2:
// three nodes instead of a pair; bit 3: on_isolation KEEP), a byte with the
// epoch stored before the start, then records (fuzz_support.h), by kind:
//   0 a hello on a stream the peer dialed: payload[0] bits 0-1 the peer,
//     bit 2 keeps the identity fields as fuzzed (else they are the peer's,
//     as a certificate-checked stream has them); then a v1::Hello
//   1 a reply on one of our paths: payload[0] bits 0-1 the peer, bits 2-3
//     the path, bit 4 as above; then a v1::Hello (the round-trip time comes
//     from its echo_send_time_us, as HelloPath computes it)
//   2 a hello sent: payload[0] the peer and path, then u64 sequence
//   3 a role step after u16 milliseconds
//   4 local state: payload[0] bits 0-4: every monitor failing, not in
//     sync, the epoch store failing, the arbiter's lease held, the arbiter
//     reachable; payload[1] the monitor penalty
//   5 the operator's handover to payload ("" for any)
//   6 TO_PRIMARY hooks of the last promotion done: payload[0] bit 0 ok
//   7 reads: status, next expiry, the core's view, a hello of ours
// Invariants checked as the core calls its environment: an epoch stored is
// above every epoch stored before it, a primary's epoch is stored before
// the role is announced, and the node never serves as primary and
// secondary at once.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/node_core.h"
#include "agent/peer_verifier.h"
#include "test/fuzz/fuzz_support.h"

namespace cloudha {
namespace {

constexpr char kCluster[] = "fuzz";
constexpr uint32_t kGroup = 7;

v1::AgentConfig MakeConfig(uint8_t flags) {
  v1::AgentConfig c;
  c.mutable_cluster()->set_name(kCluster);
  c.mutable_cluster()->set_group_id(kGroup);
  c.mutable_node()->set_id("a");
  c.mutable_node()->set_priority(150);
  v1::PeerConfig* b = c.add_peers();
  b->set_id("b");
  b->add_addresses("198.18.0.2:7801");
  b->add_addresses("198.18.1.2:7801");
  if ((flags & 4) != 0) {
    v1::PeerConfig* p = c.add_peers();
    p->set_id("c");
    p->add_addresses("198.18.0.3:7801");
  }
  c.mutable_heartbeat()->set_interval_ms(100);
  c.mutable_heartbeat()->set_lost_threshold(6);
  c.mutable_election()->set_override((flags & 1) != 0);
  c.mutable_election()->set_uptime_margin_s(300);
  c.mutable_election()->set_hello_holddown_s(1);
  c.mutable_election()->set_override_wait_s(1);
  c.mutable_election()->set_failover_hold_s(2);
  if ((flags & 2) != 0) {
    c.mutable_arbiter()->mutable_witness()->add_addresses("198.18.0.9:7801");
    c.mutable_arbiter()->set_lease_ttl_ms(2000);
    c.mutable_arbiter()->set_on_isolation((flags & 8) != 0 ? v1::ArbiterConfig::KEEP
                                                          : v1::ArbiterConfig::STEP_DOWN);
  }
  return c;
}

class FuzzEnv : public NodeCoreEnv {
 public:
  explicit FuzzEnv(bool arbiter, bool keep) {
    arbiter_.enabled = arbiter;
    arbiter_.keep_on_isolation = keep;
  }

  uint32_t MonitorPenalty() override { return penalty_; }
  bool AllMonitorsFailing() override { return all_failing_; }
  bool InSync() override { return in_sync_; }
  absl::Status StoreEpoch(uint64_t epoch) override {
    FUZZ_CHECK(!stored_any_ || epoch > max_stored_, "StoreEpoch(", epoch,
               ") after epoch ", max_stored_, " was stored");
    if (store_fails_) return absl::ResourceExhaustedError("disk full (fuzz)");
    stored_any_ = true;
    max_stored_ = epoch;
    return absl::OkStatus();
  }
  void FollowRole(v1::Role role, uint64_t epoch, const std::string&,
                  const std::vector<Membership::LivePeer>&) override {
    if (role == v1::PRIMARY) {
      FUZZ_CHECK(stored_any_ && epoch <= max_stored_, "primary at epoch ", epoch,
                 " announced before it was stored (stored: ", max_stored_, ")");
    }
  }
  void OnRoleChanged(const RoleChange& change, const RoleMachine&) override {
    if (change.to == v1::PRIMARY) promoted_epoch_ = change.epoch;
    if (verbose_) {
      printf("role %s -> %s epoch %llu: %s\n", v1::Role_Name(change.from).c_str(),
             v1::Role_Name(change.to).c_str(), static_cast<unsigned long long>(change.epoch),
             change.reason.c_str());
    }
  }
  void SetServing(bool primary, bool secondary) override {
    FUZZ_CHECK(!(primary && secondary), "serving as primary and secondary at once");
  }
  void OnMembershipChange(const Membership::Change&) override {}
  ArbiterInput Arbiter(absl::Time) override { return arbiter_; }
  void WantLease(bool, uint64_t) override {}

  void Set(absl::string_view payload) {
    const uint64_t bits = fuzz::ReadUint(payload, 0, 1);
    all_failing_ = (bits & 1) != 0;
    in_sync_ = (bits & 2) == 0;
    store_fails_ = (bits & 4) != 0;
    arbiter_.lease_held = arbiter_.enabled && (bits & 8) != 0;
    arbiter_.reachable = arbiter_.enabled && (bits & 16) != 0;
    penalty_ = static_cast<uint32_t>(fuzz::ReadUint(payload, 1, 1));
  }
  uint64_t promoted_epoch() const { return promoted_epoch_; }

 private:
  uint32_t penalty_ = 0;
  bool all_failing_ = false;
  bool in_sync_ = true;
  bool store_fails_ = false;
  ArbiterInput arbiter_;
  bool stored_any_ = false;
  uint64_t max_stored_ = 0;
  uint64_t promoted_epoch_ = 0;
  // CLOUDHA_FUZZ_VERBOSE=1 prints the role changes (to read a crash).
  const bool verbose_ = getenv("CLOUDHA_FUZZ_VERBOSE") != nullptr;
};

// The hello in `payload` after its selector byte, as the stream delivers
// it: nullopt when it does not decode.
std::optional<v1::Hello> DecodeHello(absl::string_view payload, const std::string& peer,
                                     bool keep_identity) {
  v1::Hello hello;
  if (payload.empty()) return hello;
  if (!hello.ParseFromArray(payload.data() + 1, static_cast<int>(payload.size() - 1))) {
    return std::nullopt;
  }
  if (!keep_identity) {
    hello.set_node_id(peer);
    hello.set_cluster_name(kCluster);
    hello.set_group_id(kGroup);
  }
  return hello;
}

void Run(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const uint8_t flags = data[0];
  const v1::AgentConfig config = MakeConfig(flags);
  const absl::Time start = absl::FromUnixSeconds(1000);
  absl::Time now = start;
  Membership membership(config);
  LocalNode local(config, /*boot_id=*/42, start);
  PeerVerifier verifier(config);
  FuzzEnv env((flags & 2) != 0, (flags & 8) != 0);
  // Stored before: the epoch file of the last run.
  if (data[1] != 0) FUZZ_CHECK(env.StoreEpoch(data[1]).ok(), "store");
  NodeCore core(config, /*stored_epoch=*/data[1], start, &membership, &local, &env);
  core.Publish(now);

  std::vector<std::string> peers;
  for (const auto& p : config.peers()) peers.push_back(p.id());
  fuzz::Records records(data + 2, size - 2);
  uint8_t kind = 0;
  absl::string_view payload;
  while (records.Next(&kind, &payload)) {
    const uint64_t selector = fuzz::ReadUint(payload, 0, 1);
    const std::string& peer = peers[(selector & 3) % peers.size()];
    const int paths = config.peers((selector & 3) % peers.size()).addresses_size();
    switch (kind % 8) {
      case 0: {
        std::optional<v1::Hello> hello = DecodeHello(payload, peer, (selector & 4) != 0);
        if (!hello.has_value()) break;
        // What PeerServiceImpl::Hello does with a certificate-checked stream.
        if (absl::Status s = verifier.CheckHello({kCluster, peer}, *hello); !s.ok()) {
          membership.OnRefused(peer, std::string(s.message()));
          break;
        }
        membership.OnInboundHello(peer, *hello, now);
        break;
      }
      case 1: {
        std::optional<v1::Hello> hello = DecodeHello(payload, peer, (selector & 16) != 0);
        if (!hello.has_value()) break;
        if (absl::Status s = verifier.CheckHello({kCluster, peer}, *hello); !s.ok()) {
          membership.OnRefused(peer, std::string(s.message()));
          break;
        }
        const absl::Duration rtt = hello->echo_send_time_us() != 0
                                       ? now - absl::FromUnixMicros(hello->echo_send_time_us())
                                       : absl::ZeroDuration();
        membership.OnReply(peer, static_cast<int>((selector >> 2) & 3) % paths, *hello, rtt, now);
        break;
      }
      case 2:
        membership.OnHelloSent(peer, static_cast<int>((selector >> 2) & 3) % paths,
                               fuzz::ReadUint(payload, 1, 8), now);
        break;
      case 3:
        now += absl::Milliseconds(fuzz::ReadUint(payload, 0, 2));
        core.Step(now);
        break;
      case 4:
        env.Set(payload);
        break;
      case 5: {
        absl::StatusOr<std::string> to = core.RequestHandover(std::string(payload), now);
        if (to.ok()) FUZZ_CHECK(core.view(now).role == v1::SECONDARY, "handed over, still ",
                                v1::Role_Name(core.view(now).role));
        break;
      }
      case 6:
        core.OnPrimaryHooksDone(env.promoted_epoch(), (selector & 1) != 0, "fuzz", now);
        break;
      case 7: {
        (void)membership.Status(now);
        (void)membership.NextExpiry();
        NodeCore::View view = core.view(now);
        v1::Hello ours = local.MakeHello(now, peer);
        FUZZ_CHECK(ours.role() == view.role, "hellos say ", v1::Role_Name(ours.role()),
                   ", the core ", v1::Role_Name(view.role));
        break;
      }
    }
  }
}

}  // namespace
}  // namespace cloudha

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cloudha::Run(data, size);
  return 0;
}
