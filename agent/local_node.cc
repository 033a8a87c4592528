#include "agent/local_node.h"

#include "base/build_info.h"

namespace cloudha {

LocalNode::LocalNode(const v1::AgentConfig& config, uint64_t boot_id, absl::Time started)
    : node_id_(config.node().id()),
      cluster_(config.cluster().name()),
      group_id_(config.cluster().group_id()),
      boot_id_(boot_id),
      priority_(config.node().priority()),
      interval_ms_(config.heartbeat().interval_ms()),
      override_(config.election().override()),
      uptime_margin_s_(config.election().uptime_margin_s()),
      started_(started) {}

void LocalNode::Publish(const RoleState& state) {
  absl::MutexLock lock(&mu_);
  if (state == state_) return;
  state_ = state;
  ++state_version_;
}

RoleState LocalNode::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

v1::Hello LocalNode::MakeHello(absl::Time now, const std::string& peer) const {
  v1::Hello hello;
  hello.set_cluster_name(cluster_);
  hello.set_group_id(group_id_);
  hello.set_node_id(node_id_);
  hello.set_boot_id(boot_id_);
  hello.set_priority(priority_);
  hello.set_override(override_);
  hello.set_uptime_margin_s(uptime_margin_s_);
  hello.set_uptime_ms(absl::ToInt64Milliseconds(now - started_));
  hello.set_heartbeat_interval_ms(interval_ms_);
  hello.set_version(BuildVersionLine());
  RoleState state;
  {
    absl::MutexLock lock(&mu_);
    state = state_;
    hello.set_state_version(state_version_);
  }
  hello.set_role(state.role);
  hello.set_primary_id(state.primary_id);
  hello.set_primary_epoch(state.primary_epoch);
  for (const std::string& id : state.sees) hello.add_sees(id);
  hello.set_epoch(state.epoch);
  hello.set_health_penalty(state.health_penalty);
  hello.set_sync_state(state.sync_state);
  hello.set_session_position(session_position_.load());
  hello.set_selected_by(state.selected_by);
  hello.set_handover_to(state.handover_to);
  if (filler_) filler_(peer, &hello);
  return hello;
}

}  // namespace cloudha
