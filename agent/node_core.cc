#include "agent/node_core.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "base/log.h"

namespace cloudha {

RoleMachine::Options RoleOptionsFor(const v1::AgentConfig& c) {
  RoleMachine::Options o;
  o.node_id = c.node().id();
  o.priority = c.node().priority();
  o.rules.override = c.election().override();
  o.rules.uptime_margin = absl::Seconds(c.election().uptime_margin_s());
  o.hello_holddown = absl::Seconds(c.election().hello_holddown_s());
  o.override_wait = absl::Seconds(c.election().override_wait_s());
  o.failover_hold = absl::Seconds(c.election().failover_hold_s());
  if (c.has_arbiter()) {
    // A restarted node knows nothing of its peers: it must not take the
    // role alone before a primary that still counts its earlier vote has
    // stopped counting it (the vote window is shorter than the loss window).
    o.hello_holddown = std::max(
        o.hello_holddown,
        absl::Milliseconds(c.heartbeat().interval_ms()) * c.heartbeat().lost_threshold());
  }
  // A handover gets twice as long as detecting a lost peer, and at least 2 s.
  o.handover_timeout = std::max(
      absl::Seconds(2),
      absl::Milliseconds(c.heartbeat().interval_ms()) * c.heartbeat().lost_threshold() * 2);
  return o;
}

absl::Duration VoteWindow(const v1::AgentConfig& c) {
  const absl::Duration interval = absl::Milliseconds(c.heartbeat().interval_ms());
  const absl::Duration lost_after = interval * static_cast<int>(c.heartbeat().lost_threshold());
  // The peer measures its loss window on its own clock: keep twice the
  // drift allowed between two clocks off this one too.
  const double drift = c.arbiter().max_clock_drift_ppm() / 1e6;
  return std::max(interval, lost_after - 2 * interval - lost_after * (2 * drift));
}

NodeCore::NodeCore(const v1::AgentConfig& config, uint64_t stored_epoch, absl::Time started,
                   Membership* membership, LocalNode* local, NodeCoreEnv* env)
    : configured_peers_(config.peers_size()),
      override_(config.election().override()),
      uptime_margin_s_(config.election().uptime_margin_s()),
      vote_window_(VoteWindow(config)),
      membership_(membership),
      local_(local),
      env_(env),
      role_(RoleOptionsFor(config), stored_epoch, started),
      stored_epoch_(stored_epoch) {}

void NodeCore::SetHeartbeat(const v1::AgentConfig& config) {
  absl::MutexLock lock(&mu_);
  role_.SetTimers(RoleOptionsFor(config));
  vote_window_ = VoteWindow(config);
}

RoleInputs NodeCore::Inputs(absl::Time now) {
  RoleInputs in;
  in.now = now;
  in.configured_peers = configured_peers_;
  in.health_penalty = env_->MonitorPenalty() + role_.PromotionFailurePenalty(now);
  in.all_monitors_failing = env_->AllMonitorsFailing();
  in.in_sync = env_->InSync();
  in.arbiter = env_->Arbiter(now);
  for (const Membership::LivePeer& live : membership_->Live(now)) {
    const v1::Hello& h = live.hello;
    // With an arbiter, a peer's vote: it answered one of our recent
    // hellos saying it sees this node.
    if (live.saw_us_after.has_value() && now - *live.saw_us_after < vote_window_) {
      ++in.arbiter.peer_votes;
    }
    PeerView p;
    p.id = live.id;
    p.role = h.role();
    p.epoch = h.epoch();
    p.priority = h.priority();
    p.health_penalty = h.health_penalty();
    p.uptime = absl::Milliseconds(h.uptime_ms());
    p.in_sync = h.sync_state() != v1::SYNCING;
    p.handover_to = h.handover_to();
    p.selected_by = h.selected_by();
    p.sees_primary = h.primary_id();
    p.sees_primary_epoch = h.primary_epoch();
    in.live_peers.push_back(std::move(p));
  }
  return in;
}

void NodeCore::PublishLocked(absl::Time now) {
  uint64_t epoch = role_.role() == v1::PRIMARY ? role_.hello_epoch() : role_.known_epoch();
  env_->FollowRole(role_.role(), epoch, role_.primary(), membership_->Live(now));
  RoleState state;
  state.role = role_.role();
  state.epoch = role_.hello_epoch();
  state.health_penalty = env_->MonitorPenalty() + role_.PromotionFailurePenalty(now);
  state.sync_state = env_->InSync() ? v1::IN_SYNC : v1::SYNCING;
  state.selected_by = role_.role() == v1::PRIMARY ? role_.selected_by() : "";
  state.handover_to = role_.handover_to();
  state.primary_id = role_.direct_primary();
  state.primary_epoch = role_.direct_primary_epoch();
  for (const Membership::LivePeer& live : membership_->Live(now)) state.sees.push_back(live.id);
  std::sort(state.sees.begin(), state.sees.end());
  local_->Publish(state);
  env_->WantLease(role_.wants_lease(), role_.hello_epoch());
  env_->SetServing(state.role == v1::PRIMARY && primary_ready_,
                   state.role == v1::SECONDARY && state.sync_state == v1::IN_SYNC &&
                       state.health_penalty == 0);
}

void NodeCore::Apply(const RoleChange& change, absl::Time now) {
  if (change.to == v1::PRIMARY) {
    // The epoch is durable before any peer or hook hears of it.
    if (absl::Status s = env_->StoreEpoch(change.epoch); !s.ok()) {
      LogEvent(LogLevel::kError, "epoch_store_failed", {{"reason", s.message()}});
      std::optional<RoleChange> fault =
          role_.OnPromotionFailed(change.epoch, std::string(s.message()), now);
      if (fault.has_value()) Apply(*fault, now);
      return;
    }
    stored_epoch_ = std::max(stored_epoch_, change.epoch);
  }
  primary_ready_ = false;
  PublishLocked(now);
  env_->OnRoleChanged(change, role_);
}

void NodeCore::WarnOnDifferentElectionSettings(absl::Time now) {
  for (const Membership::LivePeer& live : membership_->Live(now)) {
    bool differs = live.hello.override() != override_ ||
                   live.hello.uptime_margin_s() != uptime_margin_s_;
    if (differs && mismatch_warned_.insert(live.id).second) {
      LogEvent(LogLevel::kWarn, "election_settings_differ",
               {{"peer", live.id},
                {"peer_override", live.hello.override() ? "true" : "false"},
                {"peer_uptime_margin_s", live.hello.uptime_margin_s()},
                {"hint", "give every node the same election settings"}});
    }
  }
}

void NodeCore::Step(absl::Time now) {
  // Membership changes are reported before the role lock is taken, as
  // they happen: the log shows a peer lost before the promotion it causes.
  for (const Membership::Change& change : membership_->Evaluate(now)) {
    env_->OnMembershipChange(change);
  }
  absl::MutexLock lock(&mu_);
  RoleInputs inputs = Inputs(now);
  WarnOnDifferentElectionSettings(now);
  std::optional<RoleChange> change = role_.Evaluate(inputs);
  if (change.has_value()) {
    Apply(*change, now);
  } else {
    PublishLocked(now);
  }
  // An epoch learned from a peer is stored too: after a restart this node
  // must never promote to an epoch another node already used.
  if (role_.known_epoch() > stored_epoch_) {
    if (absl::Status s = env_->StoreEpoch(role_.known_epoch()); s.ok()) {
      stored_epoch_ = role_.known_epoch();
    } else {
      LogEvent(LogLevel::kError, "epoch_store_failed", {{"reason", s.message()}});
    }
  }
}

void NodeCore::Publish(absl::Time now) {
  absl::MutexLock lock(&mu_);
  PublishLocked(now);
}

absl::StatusOr<std::string> NodeCore::RequestHandover(const std::string& to, absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<RoleChange> change = role_.RequestHandover(to, Inputs(now));
  if (!change.ok()) return change.status();
  Apply(*change, now);
  return role_.handover_to();
}

bool NodeCore::OnPrimaryHooksDone(uint64_t epoch, bool ok, const std::string& detail,
                                  absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (role_.role() != v1::PRIMARY || role_.hello_epoch() != epoch) return false;
  if (ok) {
    primary_ready_ = true;
    PublishLocked(now);
    LogEvent(LogLevel::kInfo, "primary_ready", {{"epoch", epoch}});
    return true;
  }
  LogEvent(LogLevel::kError, "to_primary_failed", {{"epoch", epoch}, {"reason", detail}});
  std::optional<RoleChange> fault = role_.OnPromotionFailed(epoch, detail, now);
  if (fault.has_value()) Apply(*fault, now);
  return false;
}

bool NodeCore::IsPrimaryAt(uint64_t epoch) const {
  absl::MutexLock lock(&mu_);
  return role_.role() == v1::PRIMARY && role_.hello_epoch() == epoch;
}

NodeCore::View NodeCore::view(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  View v;
  v.role = role_.role();
  v.epoch = role_.hello_epoch();
  v.known_epoch = role_.known_epoch();
  v.primary = role_.primary();
  v.selected_by = role_.selected_by();
  v.reason = role_.reason();
  v.role_since = role_.role_since();
  v.health_penalty = env_->MonitorPenalty() + role_.PromotionFailurePenalty(now);
  v.primary_ready = primary_ready_;
  return v;
}

}  // namespace cloudha

