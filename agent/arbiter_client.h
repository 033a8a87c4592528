// This node's side of the split-brain arbiter: asks for the primary lease
// when the role machine wants it (a primary, or a node that would promote
// without a majority of peers), renews it while wanted, gives it up when
// not, and says whether the lease is held by this node's own monotonic
// clock. The rules that use it are in arbiter_rules.h; docs/arbiter.md
// tells the whole story.
//
// Timing. A request sent at local time t for a lease of `ttl` is granted by
// the arbiter at t' >= t (real time) until t' + ttl on the arbiter's clock.
// This node counts the lease as held until t + ttl - margin on its own
// clock, where margin = 2 * max_clock_drift * ttl + 50 ms: so it gives the
// lease up before the arbiter lets anyone else take it, even when its own
// clock runs slow and the arbiter's fast by the drift allowed. The lease is
// renewed every ttl / 4; when it ends, on_change runs at once so that the
// role is re-decided (a primary steps down) without waiting for a tick.
//
// A node that does not want the lease still asks the arbiter every ttl / 2
// (a release, a no-op when it holds nothing), so that status shows whether
// it could reach the arbiter and who holds the lease.
//
// The back end (witness, or another lease keeper) is injected.
//
// Thread-safe. Start runs one thread; Stop releases a held lease and joins.
#ifndef CLOUDHA_AGENT_ARBITER_CLIENT_H_
#define CLOUDHA_AGENT_ARBITER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/arbiter_rules.h"
#include "base/clock.h"
#include "cloudha/v1/witness.pb.h"

namespace cloudha {

// A lease keeper the client talks to. Calls block for at most `timeout`.
class ArbiterBackend {
 public:
  virtual ~ArbiterBackend() = default;
  // `renew`: this node still counts a lease of its own.
  virtual absl::StatusOr<v1::LeaseReply> Acquire(absl::Duration ttl, uint64_t epoch, bool renew,
                                                 absl::Duration timeout) = 0;
  // Gives up the lease this back end was granted last (only that one: a
  // release that arrives late must not end a newer lease).
  virtual absl::StatusOr<v1::LeaseReply> Release(uint64_t epoch, absl::Duration timeout) = 0;
  // Who holds the lease; changes nothing (reachability for a node that
  // wants no lease).
  virtual absl::StatusOr<v1::LeaseReply> Query(absl::Duration timeout) = 0;
  // "witness" (what status shows as the back end) and the address used last.
  virtual std::string kind() const = 0;
  virtual std::string address() const = 0;
};

class ArbiterClient {
 public:
  struct Options {
    absl::Duration ttl = absl::Seconds(2);
    uint32_t max_clock_drift_ppm = 500;
    bool keep_on_isolation = false;
    // An event for `cloudha events` (lease gained or lost, arbiter lost or
    // back). Optional.
    std::function<void(const std::string& message)> note;
  };
  // Runs (on the client's thread) when the lease is gained or lost, or the
  // arbiter becomes reachable or unreachable.
  using ChangeFn = std::function<void()>;

  ArbiterClient(Options options, std::unique_ptr<ArbiterBackend> backend, Clock* clock,
                ChangeFn on_change);
  ~ArbiterClient();
  ArbiterClient(const ArbiterClient&) = delete;
  ArbiterClient& operator=(const ArbiterClient&) = delete;

  void Start();
  // Releases a lease still held (bounded), then joins.
  void Stop();

  // Whether this node wants the lease now, and its epoch (for the
  // arbiter's log). Cheap; wakes the thread when `want` changes.
  void SetWanted(bool want, uint64_t epoch);

  // What the role rules see at `now`.
  ArbiterInput Input(absl::Time now) const;

  struct View {
    std::string kind;
    std::string address;
    bool reachable = false;
    bool held = false;
    // Time left of this node's own view of its lease (0 when not held).
    absl::Duration remaining;
    // The holder the arbiter named last ("" when nobody), and the fence of
    // this node's last lease (0 before the first).
    std::string holder;
    uint64_t fence = 0;
    std::string last_error;
    bool wanted = false;
  };
  View view(absl::Time now) const;

  // The fence of the lease this node holds at `now`; 0 when none.
  uint64_t fence(absl::Time now) const;
  // When this node stops counting its lease (InfinitePast when it holds
  // none): the role thread wakes then too, whatever this thread is doing.
  absl::Time held_until() const;

  // When a lease asked for at `sent` stops counting here.
  static absl::Time HeldUntil(absl::Time sent, absl::Duration ttl, uint32_t drift_ppm);

 private:
  void Run();
  // One request to the arbiter; updates the state and returns when to ask
  // next.
  absl::Time Ask(bool want, uint64_t epoch);
  void Note(const std::string& message) const;
  bool HeldLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return now < held_until_;
  }

  const Options options_;
  const std::unique_ptr<ArbiterBackend> backend_;
  Clock* const clock_;
  const ChangeFn on_change_;

  mutable absl::Mutex mu_;
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool reachable_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time held_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The arbiter may still count a lease of ours (granted and not released).
  bool may_hold_ ABSL_GUARDED_BY(mu_) = false;
  std::string holder_ ABSL_GUARDED_BY(mu_);
  uint64_t fence_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<absl::Notification> wake_ ABSL_GUARDED_BY(mu_);

  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ARBITER_CLIENT_H_
