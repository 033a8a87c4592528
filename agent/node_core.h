// The deterministic heart of one node: what it hears from its peers
// (Membership), what it tells them (LocalNode's hellos) and its role
// (RoleMachine), stepped with explicit time. No threads, no sockets, no
// clock: the agent steps it from its role thread and feeds it hellos from
// gRPC; test/sim runs many of them in one process over a simulated network.
//
// What the core needs of the node around it (durable epochs, local health,
// replication, hooks, health publishing) comes through NodeCoreEnv.
#ifndef CLOUDHA_AGENT_NODE_CORE_H_
#define CLOUDHA_AGENT_NODE_CORE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/role_machine.h"
#include "cloudha/v1/config.pb.h"

namespace cloudha {

// What the core asks of the node around it. Every method but
// OnMembershipChange is called with the core's lock held: implementations
// must not call back into the core.
class NodeCoreEnv {
 public:
  virtual ~NodeCoreEnv() = default;

  // Local health: the failing monitors' weights, and whether every monitor
  // fails (false when there are none).
  virtual uint32_t MonitorPenalty() = 0;
  virtual bool AllMonitorsFailing() = 0;
  // Whether this node holds complete replicas (sessions and config).
  virtual bool InSync() = 0;

  // Makes `epoch` durable. Called before any peer or hook hears of it; a
  // failure turns the promotion into FAULT.
  virtual absl::Status StoreEpoch(uint64_t epoch) = 0;

  // The role as it now stands, for replication to follow: `epoch` is the
  // primary's (its own when primary), `live` the peers that are UP.
  virtual void FollowRole(v1::Role role, uint64_t epoch, const std::string& primary,
                          const std::vector<Membership::LivePeer>& live) = 0;

  // The role changed (a promotion's epoch is stored already): log it and
  // run its hooks. A TO_PRIMARY change must end, later and from outside the
  // lock, in NodeCore::OnPrimaryHooksDone.
  virtual void OnRoleChanged(const RoleChange& change, const RoleMachine& role) = 0;

  // What health checks see: cloudha.v1.Primary and cloudha.v1.Secondary.
  virtual void SetServing(bool primary, bool secondary) = 0;

  // A peer or path went up, down or restarted.
  virtual void OnMembershipChange(const Membership::Change& change) = 0;

  // The split-brain arbiter as this node sees it at `now` (disabled when
  // none is configured), and whether the role machine wants its lease (at
  // `epoch`). Without an arbiter there is nothing to do.
  virtual ArbiterInput Arbiter(absl::Time now) {
    (void)now;
    return ArbiterInput{};
  }
  virtual void WantLease(bool want, uint64_t epoch) {
    (void)want;
    (void)epoch;
  }
};

// Thread-safe: one internal lock, held for each call. Membership and
// LocalNode are thread-safe themselves (hello threads use them directly).
class NodeCore {
 public:
  // `membership`, `local` and `env` outlive the core. `stored_epoch` is the
  // highest epoch this node stored before.
  NodeCore(const v1::AgentConfig& config, uint64_t stored_epoch, absl::Time started,
           Membership* membership, LocalNode* local, NodeCoreEnv* env);
  NodeCore(const NodeCore&) = delete;
  NodeCore& operator=(const NodeCore&) = delete;

  // New heartbeat timers in `config` (a reload): the vote window, the
  // handover timeout and the hold-down follow them.
  void SetHeartbeat(const v1::AgentConfig& config);

  // The role step: re-evaluates the peers at `now`, lets the role machine
  // decide, applies its change (epoch first), publishes the state hellos
  // carry, and stores an epoch learned from a peer.
  void Step(absl::Time now);

  // Publishes the current state without deciding anything (at start).
  void Publish(absl::Time now);

  // The operator's handover (see RoleMachine::RequestHandover). On success
  // this node is SECONDARY and the target's id is returned.
  absl::StatusOr<std::string> RequestHandover(const std::string& to, absl::Time now);

  // The TO_PRIMARY hooks of the promotion to `epoch` finished. On success
  // the node serves cloudha.v1.Primary and true is returned; on failure it
  // goes FAULT. Ignored (false) when the node has left that promotion.
  bool OnPrimaryHooksDone(uint64_t epoch, bool ok, const std::string& detail, absl::Time now);

  // Whether the node is still primary at `epoch` (a late hook must not
  // claim resources for a promotion already left).
  bool IsPrimaryAt(uint64_t epoch) const;

  // A copy of what status shows.
  struct View {
    v1::Role role = v1::ROLE_UNSPECIFIED;
    uint64_t epoch = 0;
    uint64_t known_epoch = 0;
    std::string primary;
    std::string selected_by;
    std::string reason;
    absl::Time role_since;
    uint32_t health_penalty = 0;
    bool primary_ready = false;
  };
  View view(absl::Time now) const;

 private:
  RoleInputs Inputs(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(const RoleChange& change, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WarnOnDifferentElectionSettings(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int configured_peers_;
  const bool override_;
  const uint32_t uptime_margin_s_;
  absl::Duration vote_window_ ABSL_GUARDED_BY(mu_);
  Membership* const membership_;
  LocalNode* const local_;
  NodeCoreEnv* const env_;
  mutable absl::Mutex mu_;
  RoleMachine role_ ABSL_GUARDED_BY(mu_);
  // cloudha.v1.Primary is SERVING: primary and every TO_PRIMARY hook done.
  bool primary_ready_ ABSL_GUARDED_BY(mu_) = false;
  // The highest epoch stored.
  uint64_t stored_epoch_ ABSL_GUARDED_BY(mu_);
  // Peers whose election settings differ from ours (warned once).
  std::set<std::string> mismatch_warned_ ABSL_GUARDED_BY(mu_);
};

// The role machine's options from the agent's configuration.
RoleMachine::Options RoleOptionsFor(const v1::AgentConfig& config);

// How fresh a peer's vote must be to count with an arbiter: the loss
// window less two intervals and twice the clock drift allowed over it (at
// least one interval), so that a primary without the lease stops counting a
// silent peer before that peer declares it lost and asks the arbiter for
// the lease.
absl::Duration VoteWindow(const v1::AgentConfig& config);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_NODE_CORE_H_
