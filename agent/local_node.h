// This node as its hellos describe it.
#ifndef CLOUDHA_AGENT_LOCAL_NODE_H_
#define CLOUDHA_AGENT_LOCAL_NODE_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"

namespace cloudha {

// Immutable after construction; thread-safe.
class LocalNode {
 public:
  // `boot_id` is this process's incarnation (random, chosen by main());
  // `started` the monotonic time the agent started.
  LocalNode(const v1::AgentConfig& config, uint64_t boot_id, absl::Time started);

  const std::string& node_id() const { return node_id_; }
  const std::string& cluster() const { return cluster_; }
  uint32_t group_id() const { return group_id_; }
  uint64_t boot_id() const { return boot_id_; }
  uint32_t priority() const { return priority_; }
  absl::Time started() const { return started_; }

  // A hello with this node's identity and state at monotonic time `now`;
  // sequence, send time and echo fields are the caller's.
  v1::Hello MakeHello(absl::Time now) const;

 private:
  std::string node_id_;
  std::string cluster_;
  uint32_t group_id_;
  uint64_t boot_id_;
  uint32_t priority_;
  uint32_t interval_ms_;
  absl::Time started_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_LOCAL_NODE_H_
