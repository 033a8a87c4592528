#include "agent/local_node.h"

namespace cloudha {

LocalNode::LocalNode(const v1::AgentConfig& config, uint64_t boot_id, absl::Time started)
    : node_id_(config.node().id()),
      cluster_(config.cluster().name()),
      group_id_(config.cluster().group_id()),
      boot_id_(boot_id),
      priority_(config.node().priority()),
      interval_ms_(config.heartbeat().interval_ms()),
      started_(started) {}

v1::Hello LocalNode::MakeHello(absl::Time now) const {
  v1::Hello hello;
  hello.set_cluster_name(cluster_);
  hello.set_group_id(group_id_);
  hello.set_node_id(node_id_);
  hello.set_boot_id(boot_id_);
  hello.set_priority(priority_);
  hello.set_uptime_ms(absl::ToInt64Milliseconds(now - started_));
  hello.set_heartbeat_interval_ms(interval_ms_);
  return hello;
}

}  // namespace cloudha
