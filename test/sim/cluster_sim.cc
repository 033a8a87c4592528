#include "test/sim/cluster_sim.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/arbiter_client.h"

namespace cloudha {

absl::Status ClusterSim::Env::StoreEpoch(uint64_t epoch) {
  node_->stored_epoch = std::max(node_->stored_epoch, epoch);
  return absl::OkStatus();
}

void ClusterSim::Env::FollowRole(v1::Role role, uint64_t epoch, const std::string& /*primary*/,
                                 const std::vector<Membership::LivePeer>& /*live*/) {
  // Called before the state reaches LocalNode, and so any hello.
  if (role == v1::PRIMARY && epoch > node_->stored_epoch) {
    sim_->Violation(absl::StrCat(Id(node_->index), " publishes primary at epoch ", epoch,
                                 " before storing it (stored ", node_->stored_epoch, ")"));
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
}

ClusterSim::ClusterSim(Options options)
    : options_(std::move(options)),
      rng_(options_.seed),
      // Any fixed origin: simulated time only moves by steps.
      now_(absl::FromUnixSeconds(1'800'000'000)),
      group_(options_.nodes, 0) {
  if (options_.arbiter) {
    char dir[] = "/tmp/cloudha-sim-XXXXXX";
    if (mkdtemp(dir) != nullptr) witness_dir_ = dir;
    witness_clock_ = std::make_unique<SimClock>(&now_);
    absl::StatusOr<std::unique_ptr<WitnessLeases>> w =
        WitnessLeases::Open(witness_dir_, "witness", witness_clock_.get());
    if (w.ok()) witness_ = *std::move(w);
    if (witness_ == nullptr) Violation("the simulated witness could not open its state");
  }
  for (int i = 0; i < options_.nodes; ++i) {
    auto node = std::make_unique<Node>();
    node->index = i;
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
  node.core = std::make_unique<NodeCore>(config, node.stored_epoch, now_, node.membership.get(),
                                         node.local.get(), node.env.get());
  node.core->Publish(now_);
}

void ClusterSim::Crash(int node) {
  Node& n = *nodes_[node];
  if (n.alive) Record(absl::StrCat(Id(node), " crashes"));
  n.alive = false;
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
  CheckInvariants();
}

void ClusterSim::RunFor(absl::Duration d) {
  absl::Time end = now_ + d;
  while (now_ < end) StepOnce();
}

absl::StatusOr<std::string> ClusterSim::Handover(int node, const std::string& to) {
  Node& n = *nodes_[node];
  if (!n.alive) return absl::FailedPreconditionError(absl::StrCat(Id(node), " is down"));
  absl::StatusOr<std::string> target = n.core->RequestHandover(to, now_);
  CheckInvariants();
  return target;
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

}  // namespace cloudha
