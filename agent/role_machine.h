// The node's role: STARTING -> SECONDARY or PRIMARY, FAULT when its own
// health fails, with epoch fencing and anti-flap hold-down.
//
// The machine is deterministic: it decides from what the caller tells it
// (the time, the live peers' last hellos, the node's own health) and returns
// the change to apply. The caller stores a promotion's epoch durably before
// announcing it, runs the hooks, and reports a promotion whose hooks failed.
//
// Rules (DESIGN.md, Election):
//  - A starting node waits hello_holddown for its peers (or until all are
//    up) before it may become primary alone; a live primary makes it
//    secondary at once.
//  - With no live primary, the best of the live, non-FAULT nodes (election.h)
//    promotes; every promotion takes epoch = (highest epoch known) + 1.
//  - While a primary lives there is no election: a recovered node does not
//    take the role back, except with override after override_wait, or when
//    the primary's health is worse than an eligible secondary's. Those
//    voluntary handovers wait failover_hold after any change of primary.
//  - Two primaries: the one with the lower epoch steps down; at the same
//    epoch the lower priority, then the higher node id (values both sides
//    agree on). A peer reporting a primary at a higher epoch counts too, so
//    a partial partition of three nodes settles on one. A primary that learns
//    of a higher epoch nobody holds any more promotes again above it, so its
//    hooks re-claim the cloud resources with a fresh epoch.
//  - A follower that cannot see the primary but whose peer does, follows it
//    and does not elect. One waiting for an election winner that does not
//    promote within the handover timeout promotes itself.
//  - A handover (operator, health, override): the primary turns secondary and
//    names the target in its hellos; the target promotes at once; the old
//    primary stays out of elections until the handover times out.
//  - With an arbiter (arbiter_rules.h): every promotion above also needs a
//    majority of the nodes and the arbiter (one that lacks it waits, and
//    wants the arbiter's lease meanwhile), and a primary without one steps
//    down to SECONDARY.
//
// Not thread-safe: the owner serializes every call.
#ifndef CLOUDHA_AGENT_ROLE_MACHINE_H_
#define CLOUDHA_AGENT_ROLE_MACHINE_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/arbiter_rules.h"
#include "agent/election.h"
#include "agent/epoch_limit.h"
#include "cloudha/v1/peer.pb.h"

namespace cloudha {

// A live peer as its last hello describes it.
struct PeerView {
  std::string id;
  v1::Role role = v1::ROLE_UNSPECIFIED;
  uint64_t epoch = 0;
  uint32_t priority = 0;
  uint32_t health_penalty = 0;
  absl::Duration uptime;
  bool in_sync = true;
  std::string handover_to;
  std::string selected_by;
  // The primary this peer sees directly, and its epoch ("" if none).
  std::string sees_primary;
  uint64_t sees_primary_epoch = 0;
};

struct RoleInputs {
  absl::Time now;
  // Peers that are UP (a hello within interval * lost_threshold).
  std::vector<PeerView> live_peers;
  // How many peers the configuration names.
  int configured_peers = 0;
  // This node's health.
  uint32_t health_penalty = 0;
  // Every monitor of this node fails (false when it has none).
  bool all_monitors_failing = false;
  // This node holds a complete replica.
  bool in_sync = true;
  // The split-brain arbiter, when one is configured (arbiter_rules.h).
  ArbiterInput arbiter;
};

struct RoleChange {
  v1::Role from = v1::ROLE_UNSPECIFIED;
  v1::Role to = v1::ROLE_UNSPECIFIED;
  // For a promotion: the new epoch, to be stored before it is announced.
  uint64_t epoch = 0;
  std::string reason;
  // The reason's kind, one of a fixed few (a metric label; agent/metrics.cc
  // lists them): "elected", "peer_lost" (no live peer left), "alone" (no
  // peer heard since the start), "handover", "operator", "health", "override", "reassert",
  // "other_primary", "primary_up", "outranked", "isolated",
  // "monitors_failing", "monitors_recovered", "fault_hold_down_over",
  // "promotion_failed".
  const char* cause = "";
};

class RoleMachine {
 public:
  struct Options {
    std::string node_id;
    uint32_t priority = 128;
    ElectionRules rules;
    absl::Duration hello_holddown = absl::Seconds(5);
    absl::Duration override_wait = absl::Seconds(5);
    absl::Duration failover_hold = absl::Seconds(10);
    // How long a handover may take before the others elect without it.
    absl::Duration handover_timeout = absl::Seconds(5);
  };

  // `stored_epoch` is the highest epoch this node stored before (0 if none);
  // `started` the time the agent started.
  RoleMachine(Options options, uint64_t stored_epoch, absl::Time started);

  // Decides at `in.now`. Returns the change to apply, if any.
  std::optional<RoleChange> Evaluate(const RoleInputs& in);

  // The promotion to `epoch` could not complete (its epoch could not be
  // stored, or its TO_PRIMARY hooks failed past their retries): the node
  // gives the role up and goes FAULT for failover_hold, so a peer can try.
  // Ignored when the node has left that promotion already.
  std::optional<RoleChange> OnPromotionFailed(uint64_t epoch, const std::string& why,
                                              absl::Time now);

  // The operator's `cloudha failover [--to NODE]`. On success the node is
  // SECONDARY, names the target in its hellos, and the returned change is to
  // be applied like Evaluate's. FAILED_PRECONDITION explains a refusal.
  absl::StatusOr<RoleChange> RequestHandover(const std::string& to, const RoleInputs& in);

  // Added to the health penalty for a while after a promotion of this node
  // failed (its hooks could not claim the resources): the node ranks below
  // healthy peers, so override does not hand the role back to it only to
  // fail again.
  static constexpr uint32_t kPromotionFailurePenalty = 1000;
  uint32_t PromotionFailurePenalty(absl::Time now) const;

  v1::Role role() const { return role_; }
  // The epoch hellos carry: a primary's own epoch, otherwise the highest
  // known.
  uint64_t hello_epoch() const;
  // The highest epoch known.
  uint64_t known_epoch() const { return known_epoch_; }
  const std::string& reason() const { return reason_; }
  absl::Time role_since() const { return role_since_; }
  // The primary as this node knows it ("" if none), directly or through a
  // peer that sees it.
  const std::string& primary() const { return primary_; }
  // The primary this node sees itself (itself when primary), and its epoch:
  // what hellos report. Never learned second-hand, so reports cannot
  // circulate after the primary is gone.
  const std::string& direct_primary() const { return direct_primary_; }
  uint64_t direct_primary_epoch() const { return direct_primary_epoch_; }
  const std::string& selected_by() const { return selected_by_; }
  const std::string& handover_to() const { return handover_to_; }
  const Options& options() const { return options_; }
  // New options derived from the heartbeat timers (a reload): the handover
  // timeout and the hold-down. The election rules stay as they were.
  void SetTimers(const Options& options) {
    options_.handover_timeout = options.handover_timeout;
    options_.hello_holddown = options.hello_holddown;
  }
  // Whether this node wants the arbiter's lease: a primary does, and so
  // does a node whose last evaluation would have promoted but lacked a
  // majority without it.
  bool wants_lease() const { return role_ == v1::PRIMARY || promotion_blocked_; }

 private:
  Candidate Self(const RoleInputs& in) const;
  static Candidate AsCandidate(const PeerView& p);
  RoleChange Change(v1::Role to, const char* cause, std::string reason, absl::Time now);
  // nullopt when the arbiter's rules forbid it now (wants_lease() then).
  std::optional<RoleChange> Promote(const char* cause, std::string reason,
                                    std::string selected_by, const RoleInputs& in);
  RoleChange HandOver(const std::string& target, const char* cause, std::string reason,
                      const RoleInputs& in);
  std::optional<RoleChange> Decide(const RoleInputs& in);
  std::optional<RoleChange> EvaluatePrimary(const RoleInputs& in);
  std::optional<RoleChange> EvaluateFollower(const RoleInputs& in);
  void TrackPrimary(const std::string& id, absl::Time now);
  std::vector<const PeerView*> EligibleSecondaries(const RoleInputs& in) const;

  Options options_;
  const absl::Time started_;
  v1::Role role_ = v1::STARTING;
  std::string reason_ = "starting: waiting for peers";
  absl::Time role_since_;
  uint64_t known_epoch_;
  uint64_t primary_epoch_ = 0;
  std::string primary_;
  absl::Time primary_since_;
  // Peers seen live at least once since the start.
  std::set<std::string> heard_from_;
  std::string direct_primary_;
  uint64_t direct_primary_epoch_ = 0;
  // An election winner this node waits for, and since when.
  std::string awaited_winner_;
  absl::Time awaited_winner_since_;
  std::string selected_by_;
  // Handover this node started (as the old primary).
  std::string handover_to_;
  absl::Time handover_started_;
  uint64_t handover_epoch_ = 0;
  // A handover to another node that this node is waiting for.
  std::string awaited_handover_;
  absl::Time awaited_since_;
  // Override: since when a better node has been seen.
  std::optional<absl::Time> better_since_;
  // FAULT: why, and until when (hook failures; monitors decide themselves).
  bool fault_from_monitors_ = false;
  absl::Time fault_until_;
  std::optional<absl::Time> promotion_failed_at_;
  // The last evaluation wanted to promote but the arbiter's rules did not
  // allow it.
  bool promotion_blocked_ = false;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ROLE_MACHINE_H_
