// This node as its hellos describe it: fixed identity from the configuration
// and the role state the agent publishes after every change.
#ifndef CLOUDHA_AGENT_LOCAL_NODE_H_
#define CLOUDHA_AGENT_LOCAL_NODE_H_

#include <atomic>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"

namespace cloudha {

// What changes with the role; published as a whole.
struct RoleState {
  v1::Role role = v1::STARTING;
  uint64_t epoch = 0;
  uint32_t health_penalty = 0;
  v1::SyncState sync_state = v1::IN_SYNC;
  std::string selected_by;
  std::string handover_to;
  // The primary this node sees first-hand, and its epoch.
  std::string primary_id;
  uint64_t primary_epoch = 0;
  // The peers this node sees, sorted.
  std::vector<std::string> sees;

  bool operator==(const RoleState& o) const {
    return role == o.role && epoch == o.epoch && health_penalty == o.health_penalty &&
           sees == o.sees &&
           sync_state == o.sync_state && selected_by == o.selected_by &&
           handover_to == o.handover_to && primary_id == o.primary_id &&
           primary_epoch == o.primary_epoch;
  }
};

// Thread-safe: identity is immutable, the role state is behind a mutex that
// is held only to copy it, so hellos never wait on role work.
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

  void Publish(const RoleState& state);
  // Hello.session_position; changes too often to count as role state.
  void SetSessionPosition(uint64_t position) { session_position_.store(position); }
  RoleState state() const;

  // A hello with this node's identity and state at monotonic time `now`;
  // sequence, send time and echo fields are the caller's.
  // A hello to `peer`.
  v1::Hello MakeHello(absl::Time now, const std::string& peer) const;
  // The interval hellos announce, after a reload changed it.
  void SetHeartbeatInterval(uint32_t interval_ms) { interval_ms_ = interval_ms; }
  // Adds per-peer fields (config revision and checksums) to every hello;
  // set once, before any hello is made.
  using HelloFiller = std::function<void(const std::string& peer, v1::Hello* hello)>;
  void SetHelloFiller(HelloFiller filler) { filler_ = std::move(filler); }

 private:
  const std::string node_id_;
  const std::string cluster_;
  const uint32_t group_id_;
  const uint64_t boot_id_;
  const uint32_t priority_;
  // A reload may change it (SetHeartbeatInterval).
  std::atomic<uint32_t> interval_ms_;
  const bool override_;
  const uint32_t uptime_margin_s_;
  const absl::Time started_;
  mutable absl::Mutex mu_;
  RoleState state_ ABSL_GUARDED_BY(mu_);
  uint64_t state_version_ ABSL_GUARDED_BY(mu_) = 1;
  std::atomic<uint64_t> session_position_{0};
  HelloFiller filler_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_LOCAL_NODE_H_
