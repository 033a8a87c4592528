// The peers as this node sees them: their hellos, heartbeat paths,
// round-trip times, and whether each peer is alive.
//
// The failure detector is time-driven and deterministic: every method takes
// the current monotonic time, so tests drive it without a clock or threads.
// A peer is UP while a hello arrived from it on any path (a reply on one of
// our paths, or a hello on a stream it dialed) within
// interval * lost_threshold; a path is UP while a reply arrived on it within
// the same window. A change of the peer's boot id is a restart, noticed even
// when no hello was missed.
#ifndef CLOUDHA_AGENT_MEMBERSHIP_H_
#define CLOUDHA_AGENT_MEMBERSHIP_H_

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cloudha/v1/admin.pb.h"
#include "cloudha/v1/config.pb.h"
#include "cloudha/v1/peer.pb.h"

namespace cloudha {

// Thread-safe: every method takes an internal lock.
class Membership {
 public:
  // Something that changed, for the log and the event history.
  struct Change {
    enum class Kind { kPeerUp, kPeerDown, kPeerRestarted, kPathUp, kPathDown };
    Kind kind;
    std::string peer;
    // For path changes: the path's index and address.
    int path = -1;
    std::string address;
  };

  explicit Membership(const v1::AgentConfig& config);

  // Called (without the lock held, on the thread that delivered the hello)
  // when a hello brings news: a peer's new role state or a new incarnation.
  // Set before hellos flow.
  void SetNewsCallback(std::function<void()> on_news) { on_news_ = std::move(on_news); }
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Hello `sequence` went out on `path` of `peer`.
  void OnHelloSent(const std::string& peer, int path, uint64_t sequence, absl::Time now);

  // A reply to one of our hellos arrived on `path`, `rtt` after the hello it
  // answers left.
  void OnReply(const std::string& peer, int path, const v1::Hello& reply, absl::Duration rtt,
               absl::Time now);

  // A hello arrived on a stream the peer dialed.
  void OnInboundHello(const std::string& peer, const v1::Hello& hello, absl::Time now);

  // A stream to or from the peer was refused (identity, cluster or group
  // mismatch); `reason` shows in status until a hello is accepted.
  void OnRefused(const std::string& peer, const std::string& reason);

  // A stream on `path` failed for a transport reason (connection refused,
  // TLS handshake, silence); shows on the path until a reply arrives.
  void OnPathError(const std::string& peer, int path, const std::string& reason);

  // Re-evaluates every peer and path at `now` and returns what changed since
  // the previous call (restarts first, then path and peer transitions).
  std::vector<Change> Evaluate(absl::Time now);

  // Peer and path status as of `now`, in configuration order.
  std::vector<v1::PeerStatus> Status(absl::Time now) const;

  // The earliest time at which a peer or path that is UP now would be lost
  // if nothing more arrives; nullopt when nothing is UP. The agent wakes
  // then, so detection does not wait for the next regular tick.
  std::optional<absl::Time> NextExpiry() const;

  // New heartbeat timers (a reload): a peer or path is lost after `d` of
  // silence. A longer window counts at once; a shorter one from `from` on
  // (when hellos at the new pace have had time to come).
  void SetLostAfter(absl::Duration d, absl::Time from);

  // Whether `peer` is UP as of the last Evaluate().
  bool IsUp(const std::string& peer) const;

  // The last hello of every peer that is UP at `now`, with its uptime moved
  // on by the hello's age.
  struct LivePeer {
    std::string id;
    v1::Hello hello;
    // Since its last hello arrived.
    absl::Duration age;
    // When our latest hello left that the peer, in its reply, said it saw
    // this node after (none yet: nullopt). See Hello.sees.
    std::optional<absl::Time> saw_us_after;
  };
  std::vector<LivePeer> Live(absl::Time now) const;

 private:
  struct Sent {
    uint64_t sequence;
    absl::Time at;
    bool replied;
  };
  // Hellos whose replies the loss figure looks at.
  static constexpr size_t kLossWindow = 100;
  struct Path {
    std::string address;
    std::deque<Sent> recent;
    std::optional<absl::Time> last_reply;
    bool up = false;
    uint64_t sent = 0;
    uint64_t received = 0;
    double rtt_ms = 0;
    double last_rtt_ms = 0;
    std::string last_error;
  };
  struct Peer {
    std::string id;
    std::vector<Path> paths;
    std::optional<absl::Time> last_hello;
    bool up = false;
    uint64_t inbound = 0;
    v1::Hello last;
    uint64_t restarts = 0;
    double rtt_ms = 0;
    std::string last_error;
    // The send time of our latest hello whose reply listed this node among
    // those the peer sees: proof, on our own clock, that the peer saw us
    // after that time (a reply delayed in a dead link proves only what it
    // echoes).
    std::optional<absl::Time> saw_us_after;
  };

  Peer* Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RecordReply(const std::string& peer_id, int path_index, const v1::Hello& reply,
                   absl::Duration rtt, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns whether the hello is news (see SetNewsCallback).
  bool Observe(Peer& peer, const v1::Hello& hello, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Fresh(const std::optional<absl::Time>& t, absl::Time now) const;

  // interval * lost_threshold; a reload may change it (SetLostAfter).
  // Read through LostAfter(now), which applies a pending shorter window.
  absl::Duration lost_after_;  // guarded by mu_
  absl::Duration pending_lost_after_;  // guarded by mu_
  absl::Time pending_from_ = absl::InfiniteFuture();  // guarded by mu_
  absl::Duration LostAfter(absl::Time now) const;  // requires mu_
  const std::string self_;
  std::function<void()> on_news_;
  mutable absl::Mutex mu_;
  std::vector<Peer> peers_ ABSL_GUARDED_BY(mu_);
  std::vector<Change> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_MEMBERSHIP_H_
