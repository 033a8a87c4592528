#include "agent/role_machine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cloudha {

RoleMachine::RoleMachine(Options options, uint64_t stored_epoch, absl::Time started)
    : options_(std::move(options)),
      started_(started),
      role_since_(started),
      known_epoch_(stored_epoch),
      primary_since_(started) {}

uint64_t RoleMachine::hello_epoch() const {
  return role_ == v1::PRIMARY ? primary_epoch_ : known_epoch_;
}

Candidate RoleMachine::Self(const RoleInputs& in) const {
  return Candidate{options_.node_id, in.health_penalty, in.now - started_, options_.priority};
}

Candidate RoleMachine::AsCandidate(const PeerView& p) {
  return Candidate{p.id, p.health_penalty, p.uptime, p.priority};
}

RoleChange RoleMachine::Change(v1::Role to, const char* cause, std::string reason,
                               absl::Time now) {
  RoleChange change{role_, to, 0, reason, cause};
  role_ = to;
  reason_ = std::move(reason);
  role_since_ = now;
  if (to != v1::SECONDARY) handover_to_.clear();
  better_since_.reset();
  return change;
}

void RoleMachine::TrackPrimary(const std::string& id, absl::Time now) {
  if (id != primary_) {
    if (!id.empty()) primary_since_ = now;
    primary_ = id;
  }
}

namespace {

// The same-epoch tie between two primaries, on values both sides agree on.
bool WinsTie(uint32_t priority_a, const std::string& id_a, uint32_t priority_b,
             const std::string& id_b) {
  if (priority_a != priority_b) return priority_a > priority_b;
  return id_a < id_b;
}

}  // namespace

std::optional<RoleChange> RoleMachine::Promote(const char* cause, std::string reason,
                                               std::string selected_by, const RoleInputs& in) {
  if (!MayBecomePrimary(in.configured_peers, in.arbiter)) {
    promotion_blocked_ = true;
    return std::nullopt;
  }
  if (known_epoch_ >= kMaxEpoch) {
    if (reason_.find("epoch ceiling") == std::string::npos) {
      reason_ = absl::StrCat("cannot promote: the epoch ceiling ", kMaxEpoch,
                             " is reached (restore the peers' epoch files)");
    }
    return std::nullopt;
  }
  primary_epoch_ = ++known_epoch_;
  selected_by_ = std::move(selected_by);
  awaited_handover_.clear();
  awaited_winner_.clear();
  RoleChange change = Change(v1::PRIMARY, cause, std::move(reason), in.now);
  change.epoch = primary_epoch_;
  TrackPrimary(options_.node_id, in.now);
  return change;
}

RoleChange RoleMachine::HandOver(const std::string& target, const char* cause,
                                 std::string reason, const RoleInputs& in) {
  handover_epoch_ = primary_epoch_;
  RoleChange change = Change(v1::SECONDARY, cause, std::move(reason), in.now);
  handover_to_ = target;
  handover_started_ = in.now;
  TrackPrimary("", in.now);
  return change;
}

std::vector<const PeerView*> RoleMachine::EligibleSecondaries(const RoleInputs& in) const {
  std::vector<const PeerView*> out;
  for (const PeerView& p : in.live_peers) {
    // A node handing over to another is busy; one that handed over to this
    // node is done with it.
    bool handing_over = !p.handover_to.empty() && p.handover_to != options_.node_id;
    if (p.role == v1::SECONDARY && p.in_sync && !handing_over) out.push_back(&p);
  }
  return out;
}

std::optional<RoleChange> RoleMachine::Evaluate(const RoleInputs& in) {
  promotion_blocked_ = false;
  for (const PeerView& p : in.live_peers) {
    // (Hellos above kMaxEpoch are refused before they get here.)
    known_epoch_ = std::max(known_epoch_, std::min(p.epoch, kMaxEpoch));
    heard_from_.insert(p.id);
  }
  std::optional<RoleChange> change = Decide(in);
  // What hellos report: only a primary seen first-hand.
  direct_primary_.clear();
  direct_primary_epoch_ = 0;
  if (role_ == v1::PRIMARY) {
    direct_primary_ = options_.node_id;
    direct_primary_epoch_ = primary_epoch_;
  } else {
    // Of several primaries seen, the one that wins: the highest epoch, then
    // the same tie rule the primaries apply among themselves.
    const PeerView* best = nullptr;
    for (const PeerView& p : in.live_peers) {
      if (p.role != v1::PRIMARY) continue;
      if (best == nullptr || p.epoch > best->epoch ||
          (p.epoch == best->epoch && WinsTie(p.priority, p.id, best->priority, best->id))) {
        best = &p;
      }
    }
    if (best != nullptr) {
      direct_primary_ = best->id;
      direct_primary_epoch_ = best->epoch;
    }
  }
  return change;
}

std::optional<RoleChange> RoleMachine::Decide(const RoleInputs& in) {

  // Own health first: a node whose every monitor fails may hold no role.
  if (in.all_monitors_failing) {
    if (role_ == v1::FAULT && fault_from_monitors_) return std::nullopt;
    fault_from_monitors_ = true;
    if (role_ == v1::PRIMARY) TrackPrimary("", in.now);
    return Change(v1::FAULT, "monitors_failing", "all monitors failing", in.now);
  }
  if (role_ == v1::FAULT) {
    if (fault_from_monitors_) {
      fault_from_monitors_ = false;
      return Change(v1::SECONDARY, "monitors_recovered", "monitors recovered", in.now);
    }
    if (in.now < fault_until_) return std::nullopt;
    return Change(v1::SECONDARY, "fault_hold_down_over", "fault hold-down over", in.now);
  }
  if (role_ == v1::PRIMARY) {
    std::string why;
    if (!MayStayPrimary(in.configured_peers, in.arbiter, &why)) {
      TrackPrimary("", in.now);
      return Change(v1::SECONDARY, "isolated", why, in.now);
    }
    return EvaluatePrimary(in);
  }
  return EvaluateFollower(in);
}

std::optional<RoleChange> RoleMachine::EvaluatePrimary(const RoleInputs& in) {
  const Candidate self = Self(in);
  // Another primary: the lower epoch, or the same epoch and the worse rank,
  // steps down.
  for (const PeerView& p : in.live_peers) {
    if (p.role != v1::PRIMARY) continue;
    bool yield = p.epoch > primary_epoch_ ||
                 (p.epoch == primary_epoch_ &&
                  WinsTie(p.priority, p.id, options_.priority, options_.node_id));
    if (yield) {
      RoleChange change = Change(
          v1::SECONDARY, "other_primary",
          p.epoch > primary_epoch_
              ? absl::StrCat("peer ", p.id, " is primary at higher epoch ", p.epoch)
              : absl::StrCat("peer ", p.id, " is primary at the same epoch ", p.epoch,
                             " and wins the tie by ",
                             p.priority != options_.priority ? kByPriority : kByNodeId),
          in.now);
      TrackPrimary(p.id, in.now);
      selected_by_ = p.selected_by;
      return change;
    }
  }
  // A primary this node cannot see, reported by a peer that sees it: at a
  // higher epoch it wins; at the same epoch the peer, which sees both of
  // us, chose it by the tie rule.
  for (const PeerView& p : in.live_peers) {
    if (p.sees_primary.empty() || p.sees_primary == options_.node_id) continue;
    // A primary this node sees itself was judged above, first-hand.
    bool seen_directly = std::any_of(in.live_peers.begin(), in.live_peers.end(),
                                     [&](const PeerView& q) { return q.id == p.sees_primary; });
    if (seen_directly) continue;
    if (p.sees_primary_epoch >= primary_epoch_) {
      RoleChange change =
          Change(v1::SECONDARY, "other_primary",
                 absl::StrCat("peer ", p.id, " sees primary ", p.sees_primary, " at epoch ",
                              p.sees_primary_epoch),
                 in.now);
      TrackPrimary(p.sees_primary, in.now);
      return change;
    }
  }
  // Somebody promoted above this node's epoch while it could not see them:
  // claim the role again above it.
  if (known_epoch_ > primary_epoch_) {
    return Promote("reassert",
                   absl::StrCat("epoch ", known_epoch_, " seen while primary at ", primary_epoch_,
                                "; re-asserting"),
                   selected_by_, in);
  }

  const bool hold = in.now - primary_since_ < options_.failover_hold;
  std::vector<const PeerView*> eligible = EligibleSecondaries(in);

  // Health: hand over to a healthier eligible secondary.
  if (in.health_penalty > 0 && !hold) {
    std::vector<Candidate> healthier;
    for (const PeerView* p : eligible) {
      if (p->health_penalty < in.health_penalty) healthier.push_back(AsCandidate(*p));
    }
    if (!healthier.empty()) {
      ElectionResult best = Elect(healthier, options_.rules);
      return HandOver(best.winner, "health",
                      absl::StrCat("health: penalty ", in.health_penalty, ", ", best.winner,
                                   " is healthier"),
                      in);
    }
  }

  // Override: a better node takes the role back after override_wait.
  if (options_.rules.override) {
    std::vector<Candidate> all = {self};
    for (const PeerView* p : eligible) all.push_back(AsCandidate(*p));
    ElectionResult best = Elect(all, options_.rules);
    if (best.winner != options_.node_id) {
      if (!better_since_.has_value()) better_since_ = in.now;
      if (in.now - *better_since_ >= options_.override_wait && !hold) {
        std::string criterion;
        for (const Candidate& c : all) {
          if (c.id == best.winner) RanksAbove(c, self, options_.rules, &criterion);
        }
        return HandOver(best.winner, "override",
                        absl::StrCat("override: ", best.winner, " ranks above by ", criterion),
                        in);
      }
    } else {
      better_since_.reset();
    }
  }
  return std::nullopt;
}

std::optional<RoleChange> RoleMachine::EvaluateFollower(const RoleInputs& in) {
  // The handover is over when it timed out, or when a higher epoch than the
  // one handed over shows that the target promoted.
  if (!handover_to_.empty() && (in.now - handover_started_ >= options_.handover_timeout ||
                                known_epoch_ > handover_epoch_)) {
    handover_to_.clear();
  }
  // A live primary: follow it.
  const PeerView* primary = nullptr;
  for (const PeerView& p : in.live_peers) {
    if (p.role == v1::PRIMARY && (primary == nullptr || p.epoch > primary->epoch)) primary = &p;
  }
  if (primary != nullptr) {
    TrackPrimary(primary->id, in.now);
    selected_by_ = primary->selected_by;
    awaited_handover_.clear();
    if (!handover_to_.empty() && primary->id == handover_to_) handover_to_.clear();
    if (role_ == v1::STARTING) {
      return Change(v1::SECONDARY, "primary_up", absl::StrCat("primary ", primary->id, " is up"),
                    in.now);
    }
    return std::nullopt;
  }
  // A primary this node cannot see but a live peer sees first-hand (three or
  // more nodes, a partial partition): follow it, do not start another.
  const PeerView* relay = nullptr;
  for (const PeerView& p : in.live_peers) {
    if (p.sees_primary.empty() || p.sees_primary == options_.node_id) continue;
    bool seen_otherwise = std::any_of(
        in.live_peers.begin(), in.live_peers.end(),
        [&](const PeerView& q) { return q.id == p.sees_primary; });
    // A peer this node sees itself, and not as primary: the report is stale.
    if (seen_otherwise) continue;
    if (relay == nullptr || p.sees_primary_epoch > relay->sees_primary_epoch) relay = &p;
  }
  if (relay != nullptr) {
    TrackPrimary(relay->sees_primary, in.now);
    awaited_handover_.clear();
    if (role_ == v1::STARTING) {
      return Change(v1::SECONDARY, "primary_up",
                    absl::StrCat("primary ", relay->sees_primary, " is up (seen by ", relay->id,
                                 ")"),
                    in.now);
    }
    return std::nullopt;
  }
  TrackPrimary("", in.now);

  // A handover names this node: take the role now. One from an older epoch
  // is stale (this node promoted since), whatever the hello still says.
  for (const PeerView& p : in.live_peers) {
    if (p.handover_to == options_.node_id && p.epoch >= known_epoch_) {
      return Promote("handover", absl::StrCat("handover from ", p.id), "handover", in);
    }
  }
  // A handover names another live node: give it time.
  for (const PeerView& p : in.live_peers) {
    if (p.handover_to.empty() || p.handover_to == options_.node_id) continue;
    bool target_live = std::any_of(in.live_peers.begin(), in.live_peers.end(),
                                   [&](const PeerView& q) { return q.id == p.handover_to; });
    if (!target_live) continue;
    if (awaited_handover_ != p.handover_to) {
      awaited_handover_ = p.handover_to;
      awaited_since_ = in.now;
    }
    if (in.now - awaited_since_ < options_.handover_timeout) return std::nullopt;
  }
  // This node just handed the role over: it stays out of the election.
  if (!handover_to_.empty()) return std::nullopt;

  // Whatever the role (a node can leave FAULT early), nobody becomes primary
  // before every peer was heard from once or hello_holddown passed.
  bool all_heard = static_cast<int>(heard_from_.size()) >= in.configured_peers;
  if (!all_heard && in.now - started_ < options_.hello_holddown) return std::nullopt;

  // A node whose bulk sync has not finished stands only when no node that
  // holds a complete replica does: promoting it would lose sessions.
  bool any_in_sync = in.in_sync;
  for (const PeerView& p : in.live_peers) {
    if ((p.role == v1::SECONDARY || p.role == v1::STARTING) && p.handover_to.empty() &&
        p.in_sync) {
      any_in_sync = true;
    }
  }
  // (Out of the running, this node still takes the role if the winner does
  // not promote in time, below.)
  std::vector<Candidate> candidates;
  if (in.in_sync || !any_in_sync) candidates.push_back(Self(in));
  for (const PeerView& p : in.live_peers) {
    if (p.role == v1::SECONDARY || p.role == v1::STARTING) {
      if (p.handover_to.empty() && (p.in_sync || !any_in_sync)) {
        candidates.push_back(AsCandidate(p));
      }
    }
  }
  ElectionResult result = Elect(candidates, options_.rules);
  if (result.winner != options_.node_id) {
    // Views can differ (settings, a link only one side sees): a winner that
    // does not promote in time is not waited for any longer.
    if (awaited_winner_ != result.winner) {
      awaited_winner_ = result.winner;
      awaited_winner_since_ = in.now;
    } else if (in.now - awaited_winner_since_ >= options_.handover_timeout) {
      return Promote("elected", absl::StrCat(result.winner, " was elected but did not promote"),
                     kByOnlyCandidate, in);
    }
  } else {
    std::string why = in.live_peers.empty()
                          ? std::string("no live peer")
                          : absl::StrCat("elected by ", result.selected_by);
    const char* cause = !in.live_peers.empty() ? "elected"
                        : role_ == v1::STARTING ? "alone"
                                                : "peer_lost";
    return Promote(cause, why, result.selected_by, in);
  }
  if (role_ == v1::STARTING) {
    return Change(v1::SECONDARY, "outranked",
                  absl::StrCat(result.winner, " ranks above by ", result.selected_by,
                               "; waiting for it to promote"),
                  in.now);
  }
  return std::nullopt;
}

uint32_t RoleMachine::PromotionFailurePenalty(absl::Time now) const {
  // Remembered for six hold-downs, at least a minute.
  absl::Duration memory = std::max(absl::Minutes(1), options_.failover_hold * 6);
  return promotion_failed_at_.has_value() && now - *promotion_failed_at_ < memory
             ? kPromotionFailurePenalty
             : 0;
}

std::optional<RoleChange> RoleMachine::OnPromotionFailed(uint64_t epoch, const std::string& why,
                                                         absl::Time now) {
  if (role_ != v1::PRIMARY || epoch != primary_epoch_) return std::nullopt;
  promotion_failed_at_ = now;
  fault_from_monitors_ = false;
  fault_until_ = now + std::max(options_.failover_hold, absl::Seconds(1));
  TrackPrimary("", now);
  return Change(v1::FAULT, "promotion_failed", absl::StrCat("promotion to epoch ", epoch, " failed: ", why), now);
}

absl::StatusOr<RoleChange> RoleMachine::RequestHandover(const std::string& to,
                                                        const RoleInputs& in) {
  if (role_ != v1::PRIMARY) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this node is ", v1::Role_Name(role_),
        primary_.empty() ? std::string(", and no primary is known")
                         : absl::StrCat("; run it on the primary, ", primary_)));
  }
  std::vector<const PeerView*> eligible = EligibleSecondaries(in);
  std::string target = to;
  if (target.empty()) {
    if (eligible.empty()) {
      return absl::FailedPreconditionError(
          "no eligible peer: none is up, SECONDARY and in sync");
    }
    std::vector<Candidate> candidates;
    for (const PeerView* p : eligible) candidates.push_back(AsCandidate(*p));
    target = Elect(candidates, options_.rules).winner;
  } else {
    if (target == options_.node_id) {
      return absl::FailedPreconditionError(absl::StrCat(target, " is already the primary"));
    }
    const PeerView* peer = nullptr;
    for (const PeerView& p : in.live_peers) {
      if (p.id == target) peer = &p;
    }
    if (peer == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(target, " is not eligible: it is not a live peer"));
    }
    if (peer->role != v1::SECONDARY) {
      return absl::FailedPreconditionError(
          absl::StrCat(target, " is not eligible: it is ", v1::Role_Name(peer->role)));
    }
    if (!peer->in_sync) {
      return absl::FailedPreconditionError(
          absl::StrCat(target, " is not eligible: its bulk sync has not finished"));
    }
    if (peer->health_penalty > in.health_penalty) {
      return absl::FailedPreconditionError(absl::StrCat(
          target, " is not eligible: it is less healthy (penalty ", peer->health_penalty,
          ", this node's is ", in.health_penalty, ")"));
    }
    std::string criterion;
    if (options_.rules.override &&
        RanksAbove(Self(in), AsCandidate(*peer), options_.rules, &criterion)) {
      return absl::FailedPreconditionError(absl::StrCat(
          target, " is not eligible: with override, this node ranks above it by ", criterion,
          " and would take the role back"));
    }
  }
  return HandOver(target, "operator",
                  absl::StrCat("handover to ", target, " requested by the operator"), in);
}

}  // namespace cloudha
