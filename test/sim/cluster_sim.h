// A simulated cluster in one process: N nodes, each the agent's own role
// logic (Membership, LocalNode, NodeCore) with an in-memory epoch store and
// TO_PRIMARY hooks that finish at once, joined by a simulated network that
// carries their hellos with a delay and can drop, cut and heal links.
//
// With Options::config, every node also runs the agent's config replication
// parts (sync/: ConfigStore in a directory of its own that survives
// crashes, ConfigCommitter, ConfigFollower, ConfigOutboxRegistry and one
// ConfigPushSession per stream), joined as agent/config_sync.cc joins them:
// a primary opens a stream to each live peer at its epoch, a secondary
// accepts one only from the primary it follows (CheckStreamFromPrimary),
// a node's config is in sync (and it eligible) once its follower verified
// the primary's content. Stream messages travel the simulated network in
// order, and a cut link, a crash or a role change ends the stream.
//
// Time is simulated and everything runs on the caller's thread, so a run is
// a pure function of its options and seed: tests assert on simulated time
// and replay a failure from its seed. The network plays the part gRPC plays
// in the agent: a hello path sends a hello every interval
// (Membership::OnHelloSent), the peer takes it (OnInboundHello) and answers
// with its own (LocalNode::MakeHello with the echo fields), and the answer
// is a reply on the path (OnReply).
//
// Not thread-safe: one thread drives it.
#ifndef CLOUDHA_TEST_SIM_CLUSTER_SIM_H_
#define CLOUDHA_TEST_SIM_CLUSTER_SIM_H_

#include <cstdint>
#include <deque>
#include <ios>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/local_node.h"
#include "agent/membership.h"
#include "agent/node_core.h"
#include "agent/witness_leases.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"
#include "sync/config_committer.h"
#include "sync/config_follower.h"
#include "sync/config_outbox.h"
#include "sync/config_path.h"
#include "sync/config_push_session.h"
#include "sync/config_store.h"

namespace cloudha {

class ClusterSim {
 public:
  struct Options {
    int nodes = 2;
    // Each node's priority (higher first); defaults to 200, 190, 180, ...
    std::vector<uint32_t> priorities;
    int interval_ms = 100;
    int lost_threshold = 3;
    int hello_holddown_s = 1;
    int failover_hold_s = 0;
    bool override_ = false;
    int override_wait_s = 1;
    // One-way delay of each hello, drawn uniformly from [min, max].
    absl::Duration min_delay = absl::Microseconds(200);
    absl::Duration max_delay = absl::Milliseconds(2);
    // How often every node takes a role step (the agent steps on every
    // interval and sooner when a hello brings news).
    absl::Duration step = absl::Milliseconds(10);
    // TO_PRIMARY hooks take a random time up to this, and fail with this
    // probability (the promotion then goes FAULT).
    absl::Duration max_hook_time = absl::ZeroDuration();
    double hook_failure = 0;
    uint64_t seed = 1;
    // A split-brain arbiter: the agent's own witness lease table
    // (agent/witness_leases.h) on simulated time, which every node reaches
    // unless SetWitnessReachable says not. Needs lost_threshold >= 4.
    bool arbiter = false;
    absl::Duration lease_ttl = absl::Milliseconds(1000);
    // Config replication (see above). Each node excludes "zone.<id>.**".
    bool config = false;
    // Local writes per second that each primary takes (unique paths under
    // "app.r<round>."), with config.
    double writes_per_s = 0;
  };

  explicit ClusterSim(Options options);
  ~ClusterSim();
  ClusterSim(const ClusterSim&) = delete;
  ClusterSim& operator=(const ClusterSim&) = delete;

  // Node i's id: "n0", "n1", ...
  static std::string Id(int node);

  absl::Time now() const { return now_; }
  // Runs the cluster for `d` of simulated time, checking the invariants
  // after every step.
  void RunFor(absl::Duration d);
  // Runs until `done` holds (checked after every step) or `limit` passes;
  // returns whether it held.
  template <typename Pred>
  bool RunUntil(Pred done, absl::Duration limit) {
    absl::Time end = now_ + limit;
    while (now_ < end) {
      StepOnce();
      if (done()) return true;
    }
    return false;
  }

  // Links between nodes of different groups carry nothing until Heal().
  // Nodes in no group are cut from everyone.
  void Partition(const std::vector<std::set<int>>& groups);
  void Heal();
  // Whether `node` reaches the arbiter (with Options::arbiter).
  void SetWitnessReachable(int node, bool reachable) { nodes_[node]->reaches_witness = reachable; }
  // Local writes per second on each primary from now on (Options::writes_per_s).
  void SetWrites(double per_s) { options_.writes_per_s = per_s; }
  // Every hello is lost with probability `p` (0..1).
  void SetLoss(double p) { loss_ = p; }
  // Node `node`'s local health penalty (failing monitors' weights) and
  // whether its replicas are complete (a secondary out of sync is not
  // eligible while a primary lives).
  void SetHealth(int node, uint32_t penalty, bool in_sync) {
    nodes_[node]->penalty = penalty;
    nodes_[node]->in_sync = in_sync;
  }

  // One random disturbance drawn from `rng`: a partition into up to three
  // groups, a crash, hello loss up to 50%, an operator's handover (to a
  // random node, or the best one), or a heal; with `health` also a node
  // turning unhealthy or out of sync, with `witness` (which needs `health`)
  // a node losing or regaining the arbiter. Returns whether it was a
  // handover that went ahead.
  bool RandomTrouble(std::mt19937_64& rng, bool health, bool witness);

  // The node stops at once (kill -9); Restart brings it back with a new
  // boot id and what its epoch store held.
  void Crash(int node);
  void Restart(int node);
  bool alive(int node) const { return nodes_[node]->alive; }

  // The operator's `cloudha failover --to` on `node` ("" = the best peer).
  // With config, as the agent does it: local writes to synced paths are
  // refused meanwhile, and the handover is refused (UNAVAILABLE) unless the
  // target (every live secondary with "") applied the last commit within
  // 2 s of simulated time. A handover that goes ahead checks that the
  // target holds every write the old primary acknowledged.
  absl::StatusOr<std::string> Handover(int node, const std::string& to);

  // With config: a local write on `node` (the admin API's put), recorded as
  // acknowledged when it succeeds. Returns the revision.
  absl::StatusOr<uint64_t> Write(int node, const std::string& path, const std::string& value);
  // Whether every alive secondary verifiably holds the primary's content at
  // its last revision (Settled, and every pusher caught up).
  bool ConfigConverged() const;
  // Checks that every write acknowledged since the last EndRound is on the
  // primary or was saved (config-replaced.jsonl) by a node whose resync
  // replaced it: a violation names each one lost. Then the primary deletes
  // the round's paths, and a new round begins. Call once ConfigConverged.
  void EndRound();
  uint64_t writes_acked() const { return writes_acked_total_; }
  uint64_t writes_saved() const { return writes_saved_total_; }
  const ConfigStore* store(int node) const { return nodes_[node]->store.get(); }

  NodeCore::View view(int node) const;
  // Alive nodes that are PRIMARY now.
  std::vector<int> Primaries() const;
  // Whether exactly one alive node is primary and every other alive node is
  // SECONDARY following it at its epoch.
  bool Settled() const;
  uint64_t stored_epoch(int node) const { return nodes_[node]->stored_epoch; }

  // Invariant violations seen so far (empty when all held), checked after
  // every step: no node's known epoch goes back, across restarts too; a
  // primary's epoch is stored before its state reaches the node's hellos;
  // two primaries that hear each other (on a loss-free network) do not
  // outlast detection.
  const std::vector<std::string>& violations() const { return violations_; }

  // With an arbiter, any two nodes primary at once while their link is cut
  // is also a violation (split brain). With config: a secondary whose
  // follower says it holds the primary's content, at the primary's
  // revision, with another root checksum; an acknowledged write a handover
  // lost, or one lost silently (EndRound).
  //
  // Epochs at which two nodes were primary at once in different partitions
  // (see docs/architecture.md, "Known limits": without an arbiter, two
  // partitions can promote to the same next epoch).
  int same_epoch_across_partitions() const { return same_epoch_across_partitions_; }

  // What happened, newest last: role changes, crashes, restarts, partitions
  // (the last 200), to explain a violation.
  std::string History() const;

 private:
  struct Node;
  // The environment the core of one node sees.
  class Env : public NodeCoreEnv {
   public:
    Env(ClusterSim* sim, Node* node) : sim_(sim), node_(node) {}
    uint32_t MonitorPenalty() override { return node_->penalty; }
    bool AllMonitorsFailing() override { return false; }
    bool InSync() override { return node_->in_sync && sim_->ConfigInSync(*node_); }
    absl::Status StoreEpoch(uint64_t epoch) override;
    void FollowRole(v1::Role role, uint64_t epoch, const std::string& primary,
                    const std::vector<Membership::LivePeer>& live) override;
    void OnRoleChanged(const RoleChange& change, const RoleMachine& role) override;
    void SetServing(bool, bool) override {}
    void OnMembershipChange(const Membership::Change&) override {}
    ArbiterInput Arbiter(absl::Time now) override;
    void WantLease(bool want, uint64_t epoch) override {
      node_->lease_wanted = want;
      node_->lease_epoch = epoch;
    }

   private:
    ClusterSim* sim_;
    Node* node_;
  };
  struct Node {
    int index = 0;
    bool alive = false;
    // Survives crashes, like STATE_DIR/epoch.
    uint64_t stored_epoch = 0;
    uint64_t boot_id = 0;
    uint64_t highest_known_epoch = 0;
    uint32_t penalty = 0;
    bool in_sync = true;
    // TO_PRIMARY hooks running: epoch and when they finish.
    std::vector<std::pair<uint64_t, absl::Time>> pending_primary_hooks;
    std::unique_ptr<Env> env;
    std::unique_ptr<LocalNode> local;
    std::unique_ptr<Membership> membership;
    std::unique_ptr<NodeCore> core;
    // Per peer: the next hello sequence and when the next hello goes out.
    std::map<int, uint64_t> sequence;
    absl::Time next_hello;
    // The arbiter's lease as this node's client keeps it (ArbiterClient's
    // rules, with requests answered at once).
    bool reaches_witness = true;
    bool lease_wanted = false;
    uint64_t lease_epoch = 0;
    bool witness_answered = false;
    bool may_hold = false;
    absl::Time held_until = absl::InfinitePast();
    absl::Time next_ask = absl::InfinitePast();
    uint64_t fence = 0;
    // Config replication (Options::config). The directory survives crashes
    // like STATE_DIR; the rest is the running agent's.
    std::string config_dir;
    ExclusionSet own;
    std::unique_ptr<ConfigStore> store;
    std::unique_ptr<ConfigOutboxRegistry> outboxes;
    std::unique_ptr<ConfigCommitter> committer;
    std::unique_ptr<ConfigFollower> follower;
    // What the role logic last told config sync (NodeCoreEnv::FollowRole).
    v1::Role role = v1::STARTING;
    uint64_t role_epoch = 0;
    std::string primary;
    std::set<int> live;
    bool handing_over = false;
    // The stream the follower serves (0: none), and per peer when the
    // pusher may dial again.
    uint64_t follow_stream = 0;
    std::map<int, absl::Time> redial_at;
    // How far SavedValues read its config-replaced.jsonl.
    std::streamoff replaced_read = 0;
  };
  // One SyncConfig stream from a primary to a secondary.
  struct ConfigStream {
    int primary = 0;
    int secondary = 0;
    uint64_t epoch = 0;
    uint64_t primary_boot = 0;
    uint64_t secondary_boot = 0;
    // The follower's id for it, once the secondary accepted the open.
    uint64_t follower_id = 0;
    std::unique_ptr<ConfigPushSession> session;
    // Messages of one direction arrive in order: not before the last.
    absl::Time last_to_secondary = absl::InfinitePast();
    absl::Time last_to_primary = absl::InfinitePast();
  };
  struct AckedWrite {
    int node;
    std::string path;
    std::string value;
  };
  class SimClock;
  // A hello (or a reply) in flight.
  struct Message {
    absl::Time at;
    uint64_t order;  // ties keep sending order
    int from;
    int to;
    uint64_t from_boot;
    bool reply;
    absl::Time sent;  // of the hello a reply answers
    v1::Hello hello;
    // A config stream's message (0: a hello or reply).
    uint64_t stream = 0;
    v1::ConfigSyncMessage config;
    bool operator>(const Message& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  v1::AgentConfig ConfigFor(int node) const;
  void Boot(Node& node);
  void StepOnce();
  // One node's lease client: ask, renew or release as the core wants.
  void StepLease(Node& node);
  void SendHellos(Node& node);
  void Deliver(const Message& m);
  bool LinkUp(int a, int b) const;
  void Send(Message m);
  void CheckInvariants();
  void Violation(std::string what);

  // Config replication.
  void OpenConfig(Node& node);
  void CloseConfig(Node& node);
  bool ConfigInSync(const Node& node) const;
  absl::Status CheckWritable(const Node& node, const std::vector<ConfigChange>& changes) const;
  absl::Status StillFollows(const Node& node, const std::string& primary) const;
  void StepConfig(Node& node);
  void SendConfig(ConfigStream& s, uint64_t id, bool to_secondary, v1::ConfigSyncMessage m);
  void DeliverConfig(const Message& m);
  void CloseStream(uint64_t id);
  bool CaughtUp(const Node& primary, const std::string& only) const;
  void CheckConfigInvariants();
  // (path, local value) of the saved lines of every node's config-replaced.jsonl.
  const std::set<std::pair<std::string, std::string>>& SavedValues();

  Options options_;
  std::mt19937_64 rng_;
  absl::Time now_;
  std::unique_ptr<Clock> sim_clock_;
  std::string witness_dir_;
  std::unique_ptr<WitnessLeases> witness_;
  double loss_ = 0;
  std::vector<int> group_;  // per node; -1: cut from everyone
  bool partitioned_ = false;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::priority_queue<Message, std::vector<Message>, std::greater<Message>> in_flight_;
  uint64_t order_ = 0;
  // Since when each pair of nodes has been primary at one epoch while they
  // hear each other.
  std::map<std::pair<int, int>, absl::Time> dual_since_;
  std::set<uint64_t> same_epoch_epochs_;
  std::set<std::pair<int, int>> reported_pairs_;
  int same_epoch_across_partitions_ = 0;
  std::vector<std::string> violations_;
  std::deque<std::string> history_;
  std::string config_root_;
  std::map<uint64_t, std::unique_ptr<ConfigStream>> streams_;
  uint64_t next_stream_ = 1;
  std::vector<AckedWrite> acked_;
  std::set<std::pair<std::string, std::string>> saved_;
  uint64_t round_ = 0;
  uint64_t next_write_ = 0;
  uint64_t writes_acked_total_ = 0;
  uint64_t writes_saved_total_ = 0;
  void Record(std::string what);
};

}  // namespace cloudha

#endif  // CLOUDHA_TEST_SIM_CLUSTER_SIM_H_
