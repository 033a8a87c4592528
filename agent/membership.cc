#include "agent/membership.h"

#include <algorithm>

namespace cloudha {
namespace {

// Weight of a new sample in the smoothed round-trip time (TCP's SRTT uses
// the same 1/8).
constexpr double kRttGain = 0.125;

double Smooth(double old, double sample) {
  return old == 0 ? sample : old + kRttGain * (sample - old);
}

}  // namespace

Membership::Membership(const v1::AgentConfig& config)
    : lost_after_(absl::Milliseconds(config.heartbeat().interval_ms()) *
                  config.heartbeat().lost_threshold()),
      self_(config.node().id()) {
  for (const auto& pc : config.peers()) {
    Peer peer;
    peer.id = pc.id();
    for (const auto& address : pc.addresses()) {
      Path path;
      path.address = address;
      peer.paths.push_back(path);
    }
    peers_.push_back(std::move(peer));
  }
}

Membership::Peer* Membership::Find(const std::string& id) {
  for (Peer& peer : peers_) {
    if (peer.id == id) return &peer;
  }
  return nullptr;
}

void Membership::SetLostAfter(absl::Duration d, absl::Time from) {
  absl::MutexLock lock(&mu_);
  if (d >= lost_after_) {
    lost_after_ = d;
    pending_from_ = absl::InfiniteFuture();
  } else {
    pending_lost_after_ = d;
    pending_from_ = from;
  }
}

absl::Duration Membership::LostAfter(absl::Time now) const {
  return now >= pending_from_ ? pending_lost_after_ : lost_after_;
}

bool Membership::Fresh(const std::optional<absl::Time>& t, absl::Time now) const {
  return t.has_value() && now - *t < LostAfter(now);
}

bool Membership::Observe(Peer& peer, const v1::Hello& hello, absl::Time now) {
  bool news = hello.boot_id() != peer.last.boot_id() ||
              hello.state_version() > peer.last.state_version();
  if (peer.last.boot_id() != 0 && hello.boot_id() != peer.last.boot_id()) {
    ++peer.restarts;
    pending_.push_back({Change::Kind::kPeerRestarted, peer.id});
    // What the earlier incarnation saw says nothing about this one.
    peer.saw_us_after.reset();
  }
  // A hello that took a slower path is proof of life, not news: it must not
  // roll the peer's state back.
  bool older = hello.boot_id() == peer.last.boot_id() &&
               hello.state_version() < peer.last.state_version();
  if (!older) peer.last = hello;
  peer.last_hello = now;
  peer.last_error.clear();
  return news;
}

void Membership::OnHelloSent(const std::string& peer_id, int path, uint64_t sequence,
                             absl::Time now) {
  absl::MutexLock lock(&mu_);
  Peer* peer = Find(peer_id);
  if (peer == nullptr || path < 0 || path >= static_cast<int>(peer->paths.size())) return;
  Path& p = peer->paths[path];
  ++p.sent;
  p.recent.push_back({sequence, now, false});
  while (p.recent.size() > kLossWindow) p.recent.pop_front();
}

void Membership::OnReply(const std::string& peer_id, int path_index, const v1::Hello& reply,
                         absl::Duration rtt, absl::Time now) {
  bool news = false;
  {
    absl::MutexLock lock(&mu_);
    news = RecordReply(peer_id, path_index, reply, rtt, now);
  }
  if (news && on_news_) on_news_();
}

bool Membership::RecordReply(const std::string& peer_id, int path_index, const v1::Hello& reply,
                             absl::Duration rtt, absl::Time now) {
  Peer* peer = Find(peer_id);
  if (peer == nullptr || path_index < 0 ||
      path_index >= static_cast<int>(peer->paths.size())) {
    return false;
  }
  Path& path = peer->paths[path_index];
  path.last_error.clear();
  // When the hello this reply answers left, as recorded here (not as the
  // reply's echo says).
  std::optional<absl::Time> answered_sent;
  for (auto it = path.recent.rbegin(); it != path.recent.rend(); ++it) {
    if (it->sequence == reply.echo_sequence() && !it->replied) {
      it->replied = true;
      answered_sent = it->at;
      break;
    }
  }
  double ms = absl::ToDoubleMilliseconds(rtt);
  ++path.received;
  path.last_reply = now;
  path.last_rtt_ms = ms;
  path.rtt_ms = Smooth(path.rtt_ms, ms);
  peer->rtt_ms = Smooth(peer->rtt_ms, ms);
  // (A restart, seen here, drops the vote of the peer's earlier life.)
  const bool news = Observe(*peer, reply, now);
  if (answered_sent.has_value() &&
      std::find(reply.sees().begin(), reply.sees().end(), self_) != reply.sees().end()) {
    if (!peer->saw_us_after.has_value() || *answered_sent > *peer->saw_us_after) {
      peer->saw_us_after = answered_sent;
    }
  }
  return news;
}

void Membership::OnInboundHello(const std::string& peer_id, const v1::Hello& hello,
                                absl::Time now) {
  bool news = false;
  {
    absl::MutexLock lock(&mu_);
    Peer* peer = Find(peer_id);
    if (peer == nullptr) return;
    ++peer->inbound;
    news = Observe(*peer, hello, now);
  }
  if (news && on_news_) on_news_();
}

void Membership::OnPathError(const std::string& peer_id, int path, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  Peer* peer = Find(peer_id);
  if (peer == nullptr || path < 0 || path >= static_cast<int>(peer->paths.size())) return;
  peer->paths[path].last_error = reason;
}

void Membership::OnRefused(const std::string& peer_id, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  Peer* peer = Find(peer_id);
  if (peer != nullptr) peer->last_error = reason;
}

std::vector<Membership::Change> Membership::Evaluate(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<Change> changes = std::move(pending_);
  pending_.clear();
  for (Peer& peer : peers_) {
    for (size_t i = 0; i < peer.paths.size(); ++i) {
      Path& path = peer.paths[i];
      bool up = Fresh(path.last_reply, now);
      if (up != path.up) {
        path.up = up;
        changes.push_back({up ? Change::Kind::kPathUp : Change::Kind::kPathDown, peer.id,
                           static_cast<int>(i), path.address});
      }
    }
    bool up = Fresh(peer.last_hello, now);
    if (up != peer.up) {
      peer.up = up;
      changes.push_back({up ? Change::Kind::kPeerUp : Change::Kind::kPeerDown, peer.id});
    }
  }
  return changes;
}

std::vector<Membership::LivePeer> Membership::Live(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<LivePeer> out;
  for (const Peer& peer : peers_) {
    if (!Fresh(peer.last_hello, now)) continue;
    LivePeer live{peer.id, peer.last, now - *peer.last_hello, peer.saw_us_after};
    // The uptime is the peer's word, any int64: Duration arithmetic
    // saturates where int64 would overflow.
    live.hello.set_uptime_ms(absl::ToInt64Milliseconds(absl::Milliseconds(peer.last.uptime_ms()) +
                                                       (now - *peer.last_hello)));
    out.push_back(std::move(live));
  }
  return out;
}

std::optional<absl::Time> Membership::NextExpiry() const {
  absl::MutexLock lock(&mu_);
  std::optional<absl::Time> earliest;
  auto consider = [&](bool up, const std::optional<absl::Time>& last) {
    if (!up || !last.has_value()) return;
    // A pending shorter window may start before then: the earlier wake.
    absl::Time expiry = *last + (pending_from_ == absl::InfiniteFuture()
                                     ? lost_after_
                                     : std::min(lost_after_, pending_lost_after_));
    if (!earliest.has_value() || expiry < *earliest) earliest = expiry;
  };
  for (const Peer& peer : peers_) {
    consider(peer.up, peer.last_hello);
    for (const Path& path : peer.paths) consider(path.up, path.last_reply);
  }
  return earliest;
}

bool Membership::IsUp(const std::string& peer_id) const {
  absl::MutexLock lock(&mu_);
  for (const Peer& peer : peers_) {
    if (peer.id == peer_id) return peer.up;
  }
  return false;
}

std::vector<v1::PeerStatus> Membership::Status(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::PeerStatus> out;
  for (const Peer& peer : peers_) {
    v1::PeerStatus s;
    s.set_id(peer.id);
    s.set_state(Fresh(peer.last_hello, now) ? v1::PeerStatus::UP : v1::PeerStatus::DOWN);
    s.set_last_hello_age_ms(peer.last_hello ? absl::ToInt64Milliseconds(now - *peer.last_hello)
                                            : -1);
    s.set_rtt_ms(peer.rtt_ms);
    uint64_t sent = 0;
    uint64_t received = peer.inbound;
    for (const Path& path : peer.paths) {
      sent += path.sent;
      received += path.received;
      v1::PathStatus* p = s.add_paths();
      p->set_address(path.address);
      p->set_state(Fresh(path.last_reply, now) ? v1::PeerStatus::UP : v1::PeerStatus::DOWN);
      p->set_rtt_ms(path.rtt_ms);
      p->set_last_rtt_ms(path.last_rtt_ms);
      p->set_hellos_sent(path.sent);
      p->set_hellos_received(path.received);
      p->set_last_error(path.last_error);
      p->set_last_reply_age_ms(
          path.last_reply ? absl::ToInt64Milliseconds(now - *path.last_reply) : -1);
      // Hellos younger than the loss window are still in flight.
      int counted = 0;
      int lost = 0;
      for (const Sent& sent : path.recent) {
        if (now - sent.at < LostAfter(now)) continue;
        ++counted;
        if (!sent.replied) ++lost;
      }
      p->set_loss_pct(counted == 0 ? 0.0 : 100.0 * lost / counted);
    }
    s.set_hellos_sent(sent);
    s.set_hellos_received(received);
    s.set_role(peer.last.role());
    s.set_boot_id(peer.last.boot_id());
    s.set_restarts(peer.restarts);
    s.set_uptime_ms(peer.last.uptime_ms());
    s.set_priority(peer.last.priority());
    s.set_last_error(peer.last_error);
    s.set_epoch(peer.last.epoch());
    s.set_health_penalty(peer.last.health_penalty());
    s.set_sync_state(peer.last.sync_state());
    s.set_version(peer.last.version());
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace cloudha
