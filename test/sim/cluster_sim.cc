#include "test/sim/cluster_sim.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/arbiter_client.h"
#include "agent/primary_stream_rule.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {

absl::Status ClusterSim::Env::StoreEpoch(uint64_t epoch) {
  node_->stored_epoch = std::max(node_->stored_epoch, epoch);
  return absl::OkStatus();
}

void ClusterSim::Env::FollowRole(v1::Role role, uint64_t epoch, const std::string& primary,
                                 const std::vector<Membership::LivePeer>& live) {
  // Called before the state reaches LocalNode, and so any hello.
  if (role == v1::PRIMARY && epoch > node_->stored_epoch) {
    sim_->Violation(absl::StrCat(Id(node_->index), " publishes primary at epoch ", epoch,
                                 " before storing it (stored ", node_->stored_epoch, ")"));
  }
  // What the agent hands ConfigSync::Update.
  node_->role = role;
  node_->role_epoch = epoch;
  node_->primary = primary;
  node_->live.clear();
  for (const Membership::LivePeer& p : live) {
    for (int j = 0; j < sim_->options_.nodes; ++j) {
      if (Id(j) == p.id) node_->live.insert(j);
    }
  }
}

void ClusterSim::Env::OnRoleChanged(const RoleChange& change, const RoleMachine& role) {
  sim_->Record(absl::StrCat(Id(node_->index), " ", v1::Role_Name(change.from), " -> ",
                            v1::Role_Name(change.to), " epoch ", role.hello_epoch(), " (known ",
                            role.known_epoch(), "): ", change.reason));
  // The hooks run from now; they finish after a step, outside the core's
  // lock, as the hook runner's thread would call back.
  if (change.to == v1::PRIMARY) {
    absl::Duration took = absl::ZeroDuration();
    if (sim_->options_.max_hook_time > absl::ZeroDuration()) {
      took = absl::Milliseconds(std::uniform_int_distribution<int64_t>(
          0, absl::ToInt64Milliseconds(sim_->options_.max_hook_time))(sim_->rng_));
    }
    node_->pending_primary_hooks.emplace_back(change.epoch, sim_->now_ + took);
  }
}

ArbiterInput ClusterSim::Env::Arbiter(absl::Time now) {
  if (!sim_->options_.arbiter) return ArbiterInput{};
  ArbiterInput in;
  in.enabled = true;
  in.lease_held = now < node_->held_until;
  in.reachable = node_->witness_answered;
  return in;
}

// The witness's clock: simulated time.
class ClusterSim::SimClock : public Clock {
 public:
  explicit SimClock(const absl::Time* now) : now_(now) {}
  absl::Time Now() override { return *now_; }
  absl::Time WallNow() override { return *now_; }
  bool SleepUntil(absl::Time, absl::Notification&) override { return false; }

 private:
  const absl::Time* now_;
};

std::string ClusterSim::Id(int node) { return absl::StrCat("n", node); }

ClusterSim::~ClusterSim() {
  witness_.reset();
  if (!witness_dir_.empty()) std::filesystem::remove_all(witness_dir_);
  streams_.clear();
  for (auto& node : nodes_) CloseConfig(*node);
  if (!config_root_.empty()) std::filesystem::remove_all(config_root_);
}

ClusterSim::ClusterSim(Options options)
    : options_(std::move(options)),
      rng_(options_.seed),
      // Any fixed origin: simulated time only moves by steps.
      now_(absl::FromUnixSeconds(1'800'000'000)),
      group_(options_.nodes, 0) {
  sim_clock_ = std::make_unique<SimClock>(&now_);
  if (options_.arbiter) {
    char dir[] = "/tmp/cloudha-sim-XXXXXX";
    if (mkdtemp(dir) != nullptr) witness_dir_ = dir;
    absl::StatusOr<std::unique_ptr<WitnessLeases>> w =
        WitnessLeases::Open(witness_dir_, "witness", sim_clock_.get());
    if (w.ok()) witness_ = *std::move(w);
    if (witness_ == nullptr) Violation("the simulated witness could not open its state");
  }
  if (options_.config) {
    // SQLite fsyncs every commit: on tmpfs when there is one, so that a
    // thousand rounds take seconds.
    std::string dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm/cloudha-sim-XXXXXX"
                                                                : "/tmp/cloudha-sim-XXXXXX";
    if (mkdtemp(dir.data()) != nullptr) config_root_ = dir;
    if (config_root_.empty()) Violation("the simulated config stores have no directory");
  }
  for (int i = 0; i < options_.nodes; ++i) {
    auto node = std::make_unique<Node>();
    node->index = i;
    if (options_.config) {
      node->config_dir = absl::StrCat(config_root_, "/", Id(i));
      std::filesystem::create_directories(node->config_dir);
      absl::StatusOr<ExclusionSet> own = ExclusionSet::Create({absl::StrCat("zone.", Id(i), ".**")});
      if (own.ok()) node->own = *own;
    }
    nodes_.push_back(std::move(node));
    Boot(*nodes_.back());
  }
}

v1::AgentConfig ClusterSim::ConfigFor(int node) const {
  v1::AgentConfig c;
  c.mutable_cluster()->set_name("sim");
  c.mutable_node()->set_id(Id(node));
  c.mutable_node()->set_priority(node < static_cast<int>(options_.priorities.size())
                                     ? options_.priorities[node]
                                     : 200 - 10 * node);
  for (int j = 0; j < options_.nodes; ++j) {
    if (j == node) continue;
    v1::PeerConfig* peer = c.add_peers();
    peer->set_id(Id(j));
    peer->add_addresses(absl::StrCat(Id(j), ":7801"));
  }
  c.mutable_heartbeat()->set_interval_ms(options_.interval_ms);
  c.mutable_heartbeat()->set_lost_threshold(options_.lost_threshold);
  v1::ElectionConfig* e = c.mutable_election();
  e->set_override(options_.override_);
  e->set_hello_holddown_s(options_.hello_holddown_s);
  e->set_failover_hold_s(options_.failover_hold_s);
  e->set_override_wait_s(options_.override_wait_s);
  e->set_uptime_margin_s(300);
  return c;
}

void ClusterSim::Boot(Node& node) {
  v1::AgentConfig config = ConfigFor(node.index);
  node.alive = true;
  node.boot_id = rng_();
  node.pending_primary_hooks.clear();
  node.sequence.clear();
  node.penalty = 0;
  node.in_sync = true;
  node.next_hello = now_;
  node.lease_wanted = false;
  node.witness_answered = false;
  node.may_hold = false;
  node.held_until = absl::InfinitePast();
  node.next_ask = absl::InfinitePast();
  node.env = std::make_unique<Env>(this, &node);
  Record(absl::StrCat(Id(node.index), " boots with stored epoch ", node.stored_epoch));
  node.local = std::make_unique<LocalNode>(config, node.boot_id, now_);
  node.membership = std::make_unique<Membership>(config);
  node.role = v1::STARTING;
  node.role_epoch = 0;
  node.primary.clear();
  node.live.clear();
  node.handing_over = false;
  node.follow_stream = 0;
  node.redial_at.clear();
  if (options_.config) OpenConfig(node);
  node.core = std::make_unique<NodeCore>(config, node.stored_epoch, now_, node.membership.get(),
                                         node.local.get(), node.env.get());
  node.core->Publish(now_);
}

void ClusterSim::Crash(int node) {
  Node& n = *nodes_[node];
  if (n.alive) Record(absl::StrCat(Id(node), " crashes"));
  n.alive = false;
  std::vector<uint64_t> ends;
  for (const auto& [id, stream] : streams_) {
    if (stream->primary == node || stream->secondary == node) ends.push_back(id);
  }
  for (uint64_t id : ends) CloseStream(id);
  CloseConfig(n);
  n.core.reset();
  n.membership.reset();
  n.local.reset();
  n.env.reset();
}

void ClusterSim::Restart(int node) {
  if (!nodes_[node]->alive) Boot(*nodes_[node]);
}

void ClusterSim::Partition(const std::vector<std::set<int>>& groups) {
  std::fill(group_.begin(), group_.end(), -1);
  for (size_t g = 0; g < groups.size(); ++g) {
    for (int node : groups[g]) group_[node] = static_cast<int>(g);
  }
  partitioned_ = true;
  std::string shape;
  for (const auto& g : groups) {
    std::vector<std::string> ids;
    for (int node : g) ids.push_back(Id(node));
    absl::StrAppend(&shape, " {", absl::StrJoin(ids, ","), "}");
  }
  Record(absl::StrCat("partition", shape));
}

void ClusterSim::Heal() {
  if (partitioned_) Record("heal");
  std::fill(group_.begin(), group_.end(), 0);
  partitioned_ = false;
}

void ClusterSim::Record(std::string what) {
  history_.push_back(absl::StrCat(absl::FormatTime("%H:%M:%E3S", now_, absl::UTCTimeZone()),
                                  " ", what));
  if (history_.size() > 200) history_.pop_front();
}

std::string ClusterSim::History() const { return absl::StrJoin(history_, "\n"); }

bool ClusterSim::LinkUp(int a, int b) const {
  return group_[a] >= 0 && group_[a] == group_[b];
}

void ClusterSim::Send(Message m) {
  if (!LinkUp(m.from, m.to)) return;
  if (loss_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < loss_) return;
  int64_t lo = absl::ToInt64Microseconds(options_.min_delay);
  int64_t hi = absl::ToInt64Microseconds(options_.max_delay);
  m.at = now_ + absl::Microseconds(std::uniform_int_distribution<int64_t>(lo, hi)(rng_));
  m.order = order_++;
  in_flight_.push(std::move(m));
}

void ClusterSim::SendHellos(Node& node) {
  if (!node.alive || now_ < node.next_hello) return;
  for (int j = 0; j < options_.nodes; ++j) {
    if (j == node.index) continue;
    v1::Hello hello = node.local->MakeHello(now_, Id(j));
    uint64_t sequence = ++node.sequence[j];
    hello.set_sequence(sequence);
    hello.set_send_time_us(absl::ToUnixMicros(now_));
    hello.set_path_index(0);
    node.membership->OnHelloSent(Id(j), 0, sequence, now_);
    Message m;
    m.from = node.index;
    m.to = j;
    m.from_boot = node.boot_id;
    m.reply = false;
    m.sent = now_;
    m.hello = std::move(hello);
    Send(std::move(m));
  }
  node.next_hello = now_ + absl::Milliseconds(options_.interval_ms);
}

void ClusterSim::Deliver(const Message& m) {
  if (m.stream != 0) {
    DeliverConfig(m);
    return;
  }
  Node& to = *nodes_[m.to];
  if (!to.alive) return;
  if (m.reply) {
    // A reply to a hello of an incarnation that has crashed since is lost
    // with its stream.
    if (m.from_boot != to.boot_id) return;
    to.membership->OnReply(Id(m.from), 0, m.hello, now_ - m.sent, now_);
    return;
  }
  to.membership->OnInboundHello(Id(m.from), m.hello, now_);
  v1::Hello reply = to.local->MakeHello(now_, Id(m.from));
  reply.set_echo_sequence(m.hello.sequence());
  reply.set_echo_send_time_us(m.hello.send_time_us());
  reply.set_path_index(0);
  Message r;
  r.from = m.to;
  r.to = m.from;
  r.from_boot = m.from_boot;  // the incarnation whose hello this answers
  r.reply = true;
  r.sent = m.sent;
  r.hello = std::move(reply);
  Send(std::move(r));
}

void ClusterSim::StepLease(Node& node) {
  if (witness_ == nullptr || !node.alive) return;
  const absl::Duration ttl = options_.lease_ttl;
  const bool release = !node.lease_wanted && node.may_hold;
  if (!release && (!node.lease_wanted || now_ < node.next_ask)) return;
  if (!node.reaches_witness) {
    node.witness_answered = false;
    node.next_ask = now_ + std::min(ttl / 4, absl::Milliseconds(200));
    return;
  }
  node.witness_answered = true;
  if (release) {
    witness_->Release("sim", Id(node.index), node.lease_epoch, node.fence);
    node.may_hold = false;
    node.held_until = absl::InfinitePast();
    return;
  }
  absl::StatusOr<v1::LeaseReply> r =
      witness_->Acquire("sim", Id(node.index), ttl, node.lease_epoch,
                        /*renew=*/now_ < node.held_until, node.fence);
  if (r.ok() && r->granted()) {
    node.fence = r->fence();
    if (now_ >= node.held_until) {
      Record(absl::StrCat(Id(node.index), " gets the lease, fence ", r->fence()));
    }
    node.may_hold = true;
    node.held_until = ArbiterClient::HeldUntil(now_, ttl, 500);
    node.next_ask = now_ + ttl / 4;
    return;
  }
  node.may_hold = false;
  node.held_until = absl::InfinitePast();
  node.next_ask = now_ + std::min(ttl / 4, absl::Milliseconds(r.ok() ? r->remaining_ms() : 0) +
                                               absl::Milliseconds(10));
}

void ClusterSim::StepOnce() {
  absl::Time next = now_ + options_.step;
  while (!in_flight_.empty() && in_flight_.top().at <= next) {
    Message m = in_flight_.top();
    in_flight_.pop();
    now_ = std::max(now_, m.at);
    Deliver(m);
  }
  now_ = next;
  for (auto& node : nodes_) SendHellos(*node);
  for (auto& node : nodes_) {
    if (!node->alive) continue;
    StepLease(*node);
    node->core->Step(now_);
    if (options_.config) StepConfig(*node);
    std::vector<std::pair<uint64_t, absl::Time>> hooks = std::move(node->pending_primary_hooks);
    node->pending_primary_hooks.clear();
    for (const auto& [epoch, done_at] : hooks) {
      if (done_at > now_) {
        node->pending_primary_hooks.emplace_back(epoch, done_at);
        continue;
      }
      bool ok = std::uniform_real_distribution<double>(0, 1)(rng_) >= options_.hook_failure;
      node->core->OnPrimaryHooksDone(epoch, ok, ok ? "" : "simulated hook failure", now_);
    }
  }
  if (options_.writes_per_s > 0) {
    // The admin API's writes: each primary takes some, and now and then a
    // node writes a path of its own zone (allowed whatever its role).
    const double p = options_.writes_per_s * absl::ToDoubleSeconds(options_.step);
    for (auto& node : nodes_) {
      if (!node->alive || node->committer == nullptr) continue;
      std::uniform_real_distribution<double> coin(0, 1);
      if (node->role == v1::PRIMARY && coin(rng_) < p) {
        (void)Write(node->index, absl::StrCat("app.r", round_, ".w", next_write_),
                    absl::StrCat("v", next_write_));
        ++next_write_;
      }
      if (coin(rng_) < p / 10) {
        (void)Write(node->index, absl::StrCat("zone.", Id(node->index), ".r", round_, ".w",
                                              next_write_),
                    absl::StrCat("v", next_write_));
        ++next_write_;
      }
    }
  }
  CheckInvariants();
}

void ClusterSim::RunFor(absl::Duration d) {
  absl::Time end = now_ + d;
  while (now_ < end) StepOnce();
}

absl::StatusOr<std::string> ClusterSim::Handover(int node, const std::string& to) {
  Node& n = *nodes_[node];
  if (!n.alive) return absl::FailedPreconditionError(absl::StrCat(Id(node), " is down"));
  if (options_.config) {
    // Agent::HandOver: writes pause, and what was acknowledged reaches the
    // target (every secondary) first, or nothing is handed over.
    n.handing_over = true;
    bool replicated = RunUntil(
        [&] { return !n.alive || (n.role == v1::PRIMARY && CaughtUp(n, to)); }, absl::Seconds(2));
    if (!n.alive) return absl::FailedPreconditionError(absl::StrCat(Id(node), " is down"));
    if (!replicated) {
      n.handing_over = false;
      Record(absl::StrCat(Id(node), " refuses a handover: a secondary has not applied the last "
                          "commit"));
      return absl::UnavailableError("a secondary has not applied the last config commit");
    }
  }
  absl::StatusOr<std::string> target = n.core->RequestHandover(to, now_);
  n.handing_over = false;
  if (target.ok() && options_.config) {
    // The target holds every write this primary acknowledged and still
    // holds (over the paths the pair syncs).
    for (int j = 0; j < options_.nodes; ++j) {
      if (Id(j) != *target || !nodes_[j]->alive) continue;
      const Node& t = *nodes_[j];
      ExclusionSet effective = n.own.Union(t.own);
      for (const AckedWrite& w : acked_) {
        if (effective.Excludes(w.path)) continue;
        std::optional<StoredEntry> here = n.store->Get(w.path);
        if (!here.has_value() || here->value != w.value) continue;
        std::optional<StoredEntry> there = t.store->Get(w.path);
        if (!there.has_value() || there->value != w.value) {
          Violation(absl::StrCat("handover from ", Id(node), " to ", *target, " loses ", w.path,
                                 " = ", w.value, " (acknowledged by ", Id(w.node), ")"));
        }
      }
    }
  }
  CheckInvariants();
  return target;
}

bool ClusterSim::RandomTrouble(std::mt19937_64& rng, bool health, bool witness) {
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int nodes = options_.nodes;
  switch (uniform(0, witness ? 6 : health ? 5 : 4)) {
    case 0: {  // a random partition into up to three groups
      std::vector<std::set<int>> groups(3);
      for (int node = 0; node < nodes; ++node) groups[uniform(0, 2)].insert(node);
      Partition(groups);
      return false;
    }
    case 1:
      Crash(uniform(0, nodes - 1));
      return false;
    case 2:
      SetLoss(uniform(0, 50) / 100.0);
      return false;
    case 3: {
      std::vector<int> primaries = Primaries();
      if (primaries.empty()) return false;
      int target = uniform(0, nodes - 1);
      return Handover(primaries[0], target == primaries[0] ? "" : Id(target)).ok();
    }
    case 5: {  // a node turns unhealthy or falls out of sync
      int node = uniform(0, nodes - 1);
      if (alive(node)) SetHealth(node, uniform(0, 1) * 10, uniform(0, 1) == 1);
      return false;
    }
    case 6:  // a node loses (or regains) the witness
      SetWitnessReachable(uniform(0, nodes - 1), uniform(0, 2) != 0);
      return false;
    default:
      Heal();
      return false;
  }
}

NodeCore::View ClusterSim::view(int node) const {
  if (!nodes_[node]->alive) return NodeCore::View{};
  return nodes_[node]->core->view(now_);
}

std::vector<int> ClusterSim::Primaries() const {
  std::vector<int> out;
  for (int i = 0; i < options_.nodes; ++i) {
    if (nodes_[i]->alive && view(i).role == v1::PRIMARY) out.push_back(i);
  }
  return out;
}

bool ClusterSim::Settled() const {
  std::vector<int> primaries = Primaries();
  if (primaries.size() != 1) return false;
  NodeCore::View p = view(primaries[0]);
  for (int i = 0; i < options_.nodes; ++i) {
    if (!nodes_[i]->alive || i == primaries[0]) continue;
    NodeCore::View v = view(i);
    if (v.role != v1::SECONDARY || v.primary != Id(primaries[0]) || v.known_epoch != p.epoch) {
      return false;
    }
  }
  return true;
}

void ClusterSim::Violation(std::string what) {
  violations_.push_back(absl::StrCat("at ", absl::FormatTime(now_), ": ", what));
}

void ClusterSim::CheckInvariants() {
  if (options_.config) CheckConfigInvariants();
  for (auto& node : nodes_) {
    if (!node->alive) continue;
    NodeCore::View v = node->core->view(now_);
    const std::string id = Id(node->index);
    if (v.known_epoch < node->highest_known_epoch) {
      Violation(absl::StrCat(id, "'s epoch went back from ", node->highest_known_epoch, " to ",
                             v.known_epoch));
    }
    node->highest_known_epoch = std::max(node->highest_known_epoch, v.known_epoch);
  }
  // Two primaries that hear each other: a violation once they have for
  // longer than detection takes (on a lossy network "hearing" is not
  // certain, so only without loss). Two primaries at one epoch in
  // different partitions are counted (see same_epoch_across_partitions).
  const absl::Duration detection =
      absl::Milliseconds(options_.interval_ms) * (options_.lost_threshold + 1) + options_.step;
  for (int i = 0; i < options_.nodes; ++i) {
    for (int j = i + 1; j < options_.nodes; ++j) {
      std::pair<int, int> pair(i, j);
      bool both_primary = false;
      bool connected = false;
      uint64_t epoch_i = 0, epoch_j = 0;
      if (nodes_[i]->alive && nodes_[j]->alive) {
        NodeCore::View a = nodes_[i]->core->view(now_);
        NodeCore::View b = nodes_[j]->core->view(now_);
        both_primary = a.role == v1::PRIMARY && b.role == v1::PRIMARY;
        connected = LinkUp(i, j) && loss_ == 0;
        epoch_i = a.epoch;
        epoch_j = b.epoch;
      }
      if (!both_primary || !connected) dual_since_.erase(pair);
      if (!both_primary) continue;
      if (!LinkUp(i, j)) {
        if (epoch_i == epoch_j && same_epoch_epochs_.insert(epoch_i).second) {
          ++same_epoch_across_partitions_;
        }
        if (options_.arbiter && reported_pairs_.insert(pair).second) {
          Violation(absl::StrCat("split brain: ", Id(i), " (epoch ", epoch_i, ") and ", Id(j),
                                 " (epoch ", epoch_j, ") are both primary and cut off from "
                                 "each other"));
        }
        continue;
      }
      if (!connected) continue;
      absl::Time since = dual_since_.emplace(pair, now_).first->second;
      if (now_ - since > detection && reported_pairs_.insert(pair).second) {
        Violation(absl::StrCat(Id(i), " (epoch ", epoch_i, ") and ", Id(j), " (epoch ", epoch_j,
                               ") are both primary and have heard each other for ",
                               absl::FormatDuration(now_ - since)));
      }
    }
  }
}

// ---- Config replication (Options::config) ----

void ClusterSim::OpenConfig(Node& node) {
  ConfigStore::Options options;
  options.clock = sim_clock_.get();
  absl::StatusOr<std::unique_ptr<ConfigStore>> store =
      ConfigStore::Open(absl::StrCat(node.config_dir, "/config.db"), options);
  if (!store.ok()) {
    Violation(absl::StrCat(Id(node.index), "'s config store does not open: ", store.status().message()));
    return;
  }
  node.store = *std::move(store);
  node.outboxes = std::make_unique<ConfigOutboxRegistry>();
  Node* n = &node;
  node.committer = std::make_unique<ConfigCommitter>(
      node.store.get(),
      [this, n](const std::vector<ConfigChange>& changes) { return CheckWritable(*n, changes); },
      [n](const ConfigCommitResult& result, bool) { n->outboxes->Publish(result, *n->store); });
  ConfigFollowerOptions follow;
  follow.own = node.own;
  follow.replaced_file = absl::StrCat(node.config_dir, "/config-replaced.jsonl");
  follow.still_follows = [this, n](const std::string& primary) { return StillFollows(*n, primary); };
  node.follower = std::make_unique<ConfigFollower>(std::move(follow), node.committer.get(),
                                                   options.clock);
}

void ClusterSim::CloseConfig(Node& node) {
  node.follower.reset();
  node.committer.reset();
  node.outboxes.reset();
  node.store.reset();
  node.follow_stream = 0;
}

bool ClusterSim::ConfigInSync(const Node& node) const {
  // ConfigSync::in_sync.
  if (!options_.config || node.follower == nullptr) return true;
  if (node.role == v1::PRIMARY || node.primary.empty()) return true;
  return node.follower->synced_with() == node.primary;
}

absl::Status ClusterSim::CheckWritable(const Node& node,
                                       const std::vector<ConfigChange>& changes) const {
  // ConfigSync::CheckWritable: zone-local paths always, synced ones on a
  // primary that is not handing over.
  for (const ConfigChange& c : changes) {
    if (node.own.Excludes(c.path)) continue;
    if (node.role != v1::PRIMARY) {
      return absl::FailedPreconditionError(absl::StrCat(c.path, " is synced from the primary"));
    }
    if (node.handing_over) return absl::UnavailableError("handing the primary role over");
  }
  return absl::OkStatus();
}

absl::Status ClusterSim::StillFollows(const Node& node, const std::string& primary) const {
  // ConfigSync::StillFollows.
  if (node.role == v1::PRIMARY || (!node.primary.empty() && node.primary != primary)) {
    return absl::AbortedError(absl::StrCat("the config stream from ", primary, " was superseded"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ClusterSim::Write(int node, const std::string& path,
                                          const std::string& value) {
  Node& n = *nodes_[node];
  if (!n.alive || n.committer == nullptr) {
    return absl::UnavailableError(absl::StrCat(Id(node), " is down"));
  }
  absl::StatusOr<ConfigCommitResult> r = n.committer->WriteLocal({{path, value}});
  if (!r.ok()) return r.status();
  acked_.push_back({node, path, value});
  ++writes_acked_total_;
  return r->revision;
}

void ClusterSim::StepConfig(Node& node) {
  const int me = node.index;
  // The follower side (ConfigSync::Update): a stream from a primary this
  // node no longer follows ends.
  if (node.follow_stream != 0) {
    auto it = streams_.find(node.follow_stream);
    if (it == streams_.end()) {
      node.follow_stream = 0;
    } else if (node.role == v1::PRIMARY ||
               (!node.primary.empty() && node.primary != Id(it->second->primary))) {
      CloseStream(node.follow_stream);
    }
  }
  // The pushers (ConfigSync::Reconcile): one stream per live peer while
  // primary, at this epoch.
  std::vector<uint64_t> ends;
  std::set<int> pushing;
  for (const auto& [id, s] : streams_) {
    if (s->primary != me) continue;
    if (node.role != v1::PRIMARY || s->epoch != node.role_epoch ||
        node.live.count(s->secondary) == 0) {
      ends.push_back(id);
    } else {
      pushing.insert(s->secondary);
    }
  }
  for (uint64_t id : ends) CloseStream(id);
  if (node.role == v1::PRIMARY) {
    for (int peer : node.live) {
      if (pushing.count(peer) != 0 || now_ < node.redial_at[peer]) continue;
      uint64_t id = next_stream_++;
      auto stream = std::make_unique<ConfigStream>();
      stream->primary = me;
      stream->secondary = peer;
      stream->epoch = node.role_epoch;
      stream->primary_boot = node.boot_id;
      stream->secondary_boot = nodes_[peer]->alive ? nodes_[peer]->boot_id : 0;
      ConfigStream& s = *stream;
      streams_[id] = std::move(stream);
      SendConfig(s, id, /*to_secondary=*/true,
                 ConfigPushSession::OpenMessage(node.role_epoch, *node.store, node.own));
    }
  }
  // What the sessions queued goes out.
  std::vector<std::pair<uint64_t, std::vector<v1::ConfigSyncMessage>>> out;
  std::vector<uint64_t> overflowed;
  for (const auto& [id, s] : streams_) {
    if (s->primary != me || s->session == nullptr) continue;
    absl::StatusOr<std::vector<v1::ConfigSyncMessage>> m =
        s->session->TakeOutgoing([] { return true; }, absl::ZeroDuration());
    if (!m.ok()) {
      overflowed.push_back(id);
    } else if (!m->empty()) {
      out.emplace_back(id, *std::move(m));
    }
  }
  for (uint64_t id : overflowed) CloseStream(id);
  for (auto& [id, messages] : out) {
    for (v1::ConfigSyncMessage& m : messages) {
      // A send over a cut link ends the stream.
      auto it = streams_.find(id);
      if (it == streams_.end()) break;
      SendConfig(*it->second, id, true, std::move(m));
    }
  }
}

void ClusterSim::SendConfig(ConfigStream& s, uint64_t id, bool to_secondary,
                            v1::ConfigSyncMessage m) {
  Message msg;
  msg.from = to_secondary ? s.primary : s.secondary;
  msg.to = to_secondary ? s.secondary : s.primary;
  msg.from_boot = 0;
  msg.reply = !to_secondary;
  msg.stream = id;
  msg.config = std::move(m);
  if (!LinkUp(msg.from, msg.to)) {
    // A cut link breaks the stream (gRPC's keepalive would notice).
    CloseStream(id);
    return;
  }
  int64_t lo = absl::ToInt64Microseconds(options_.min_delay);
  int64_t hi = absl::ToInt64Microseconds(options_.max_delay);
  absl::Time at = now_ + absl::Microseconds(std::uniform_int_distribution<int64_t>(lo, hi)(rng_));
  // One stream is ordered (HTTP/2 over TCP), and loss on it is TCP's to
  // repair: no hello-style loss here.
  absl::Time& last = to_secondary ? s.last_to_secondary : s.last_to_primary;
  at = std::max(at, last);
  last = at;
  msg.at = at;
  msg.order = order_++;
  in_flight_.push(std::move(msg));
}

void ClusterSim::DeliverConfig(const Message& m) {
  auto it = streams_.find(m.stream);
  if (it == streams_.end()) return;  // the stream ended meanwhile
  ConfigStream& s = *it->second;
  const uint64_t id = m.stream;
  if (!LinkUp(s.primary, s.secondary)) {
    CloseStream(id);
    return;
  }
  if (!m.reply) {
    Node& to = *nodes_[s.secondary];
    if (!to.alive || to.boot_id != s.secondary_boot || to.follower == nullptr) {
      CloseStream(id);
      return;
    }
    if (m.config.has_open()) {
      // ConfigSync::Serve.
      absl::Status sender = CheckStreamFromPrimary(to.role, to.role_epoch, to.primary,
                                                   Id(s.primary), m.config.open().epoch(),
                                                   "config");
      absl::StatusOr<ConfigFollower::Opened> opened =
          sender.ok() ? to.follower->Open(Id(s.primary), m.config.open())
                      : absl::StatusOr<ConfigFollower::Opened>(sender);
      if (!opened.ok()) {
        // The pusher retries (ConfigPusher's backoff, at its shortest).
        nodes_[s.primary]->redial_at[s.secondary] = now_ + absl::Milliseconds(100);
        CloseStream(id);
        return;
      }
      if (to.follow_stream != 0 && to.follow_stream != id) CloseStream(to.follow_stream);
      to.follow_stream = id;
      s.follower_id = opened->stream;
      opened->reply.mutable_open()->set_epoch(to.role_epoch);
      SendConfig(s, id, false, std::move(opened->reply));
      return;
    }
    absl::StatusOr<std::optional<v1::ConfigSyncMessage>> reply =
        to.follower->OnMessage(s.follower_id, m.config);
    auto again = streams_.find(id);
    if (again == streams_.end()) return;
    if (!reply.ok()) {
      CloseStream(id);
      return;
    }
    if (reply->has_value()) SendConfig(s, id, false, **std::move(reply));
    return;
  }
  Node& from = *nodes_[s.primary];
  if (!from.alive || from.boot_id != s.primary_boot) {
    CloseStream(id);
    return;
  }
  if (s.session == nullptr) {
    absl::StatusOr<std::unique_ptr<ConfigPushSession>> started = ConfigPushSession::Start(
        Id(s.secondary), from.own, m.config, from.committer.get(), from.outboxes.get());
    if (!started.ok()) {
      CloseStream(id);
      return;
    }
    s.session = *std::move(started);
    return;
  }
  if (!s.session->OnMessage(m.config).ok()) CloseStream(id);
}

void ClusterSim::CloseStream(uint64_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::unique_ptr<ConfigStream> s = std::move(it->second);
  streams_.erase(it);
  Node& secondary = *nodes_[s->secondary];
  if (s->follower_id != 0 && secondary.alive && secondary.boot_id == s->secondary_boot &&
      secondary.follower != nullptr) {
    secondary.follower->Close(s->follower_id);
  }
  if (secondary.follow_stream == id) secondary.follow_stream = 0;
  // The session (its outbox) goes with the stream; the pusher redials.
  s->session.reset();
  Node& primary = *nodes_[s->primary];
  absl::Time& redial = primary.redial_at[s->secondary];
  redial = std::max(redial, now_ + absl::Milliseconds(100));
}

bool ClusterSim::CaughtUp(const Node& primary, const std::string& only) const {
  // ConfigSync::WaitReplicated: every live secondary (or `only`) has an
  // outbox that is caught up.
  for (int peer : primary.live) {
    if (!only.empty() && Id(peer) != only) continue;
    if (!primary.outboxes->CaughtUp(Id(peer))) return false;
  }
  return true;
}

bool ClusterSim::ConfigConverged() const {
  if (!Settled()) return false;
  const int p = Primaries()[0];
  const Node& primary = *nodes_[p];
  for (int i = 0; i < options_.nodes; ++i) {
    if (i == p || !nodes_[i]->alive) continue;
    const Node& n = *nodes_[i];
    if (n.follower->synced_with() != Id(p) ||
        n.follower->primary_revision() != primary.store->revision() ||
        !primary.outboxes->CaughtUp(Id(i))) {
      return false;
    }
  }
  return true;
}

void ClusterSim::CheckConfigInvariants() {
  // A secondary that holds the primary's content by its follower's word, at
  // the primary's revision, has the primary's root checksum.
  for (auto& node : nodes_) {
    if (!node->alive || node->follower == nullptr || node->role != v1::SECONDARY) continue;
    const std::string with = node->follower->synced_with();
    if (with.empty() || with != node->primary) continue;
    for (auto& p : nodes_) {
      if (Id(p->index) != with || !p->alive || p->role != v1::PRIMARY) continue;
      if (node->follower->primary_revision() != p->store->revision()) continue;
      ExclusionSet effective = p->own.Union(node->own);
      std::string mine = node->store->Checksum("", effective).checksum;
      std::string theirs = p->store->Checksum("", effective).checksum;
      if (mine != theirs) {
        Violation(absl::StrCat(Id(node->index), " is in sync with ", with, " at revision ",
                               p->store->revision(), " but their root checksums differ"));
      }
    }
  }
}

const std::set<std::pair<std::string, std::string>>& ClusterSim::SavedValues() {
  // Only the lines appended since the last call: the files only grow.
  for (const auto& node : nodes_) {
    std::ifstream in(absl::StrCat(node->config_dir, "/config-replaced.jsonl"));
    in.seekg(node->replaced_read);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a partial last line: read it whole next time
      node->replaced_read = in.tellg();
      google::protobuf::Struct record;
      if (!google::protobuf::util::JsonStringToMessage(line, &record).ok()) {
        Violation(absl::StrCat(Id(node->index), "'s config-replaced.jsonl has a bad line: ", line));
        continue;
      }
      const auto& f = record.fields();
      auto path = f.find("path");
      auto local = f.find("local");
      if (path != f.end() && local != f.end()) {
        saved_.emplace(path->second.string_value(), local->second.string_value());
      }
    }
  }
  return saved_;
}

void ClusterSim::EndRound() {
  if (!ConfigConverged()) {
    Violation("EndRound before the config converged");
    return;
  }
  const Node& primary = *nodes_[Primaries()[0]];
  const std::set<std::pair<std::string, std::string>>& saved = SavedValues();
  std::vector<ConfigChange> cleanup;
  std::map<int, std::vector<ConfigChange>> local_cleanup;
  for (const AckedWrite& w : acked_) {
    std::optional<StoredEntry> e = primary.store->Get(w.path);
    bool on_primary = e.has_value() && e->value == w.value;
    // Zone-local paths stay where they were written.
    if (nodes_[w.node]->own.Excludes(w.path)) {
      std::optional<StoredEntry> local = nodes_[w.node]->store->Get(w.path);
      if (!local.has_value() || local->value != w.value) {
        Violation(absl::StrCat(Id(w.node), " lost its zone-local ", w.path, " = ", w.value));
      }
      local_cleanup[w.node].push_back({w.path, std::nullopt});
      continue;
    }
    if (on_primary) {
      cleanup.push_back({w.path, std::nullopt});
    } else if (saved.count({w.path, w.value}) != 0) {
      ++writes_saved_total_;
    } else {
      Violation(absl::StrCat("acknowledged write ", w.path, " = ", w.value, " (by ", Id(w.node),
                             ") is lost: not on the primary ", Id(primary.index),
                             " and not saved by a resync"));
    }
  }
  acked_.clear();
  ++round_;
  if (!cleanup.empty()) {
    absl::StatusOr<ConfigCommitResult> r = primary.committer->WriteLocal(cleanup);
    if (!r.ok()) Violation(absl::StrCat("the round's cleanup was refused: ", r.status().message()));
  }
  for (auto& [node, changes] : local_cleanup) {
    if (!nodes_[node]->alive) continue;
    absl::StatusOr<ConfigCommitResult> r = nodes_[node]->committer->WriteLocal(changes);
    if (!r.ok()) Violation(absl::StrCat(Id(node), "'s zone-local cleanup was refused: ", r.status().message()));
  }
}
}  // namespace cloudha
